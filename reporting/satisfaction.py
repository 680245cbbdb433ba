"""The satisfaction report: survey answers per tier, group and agent, counted for the last agent
who held each chat (its assignment's tier and group), by when they were answered (the period, in
the site's time zone); the pipeline filter applies, the tier, group and agent filters do not (the
report is split by those)."""

from typing import Any

from django.db.models import Avg, Count, F, Q

from escalation.models import SurveyAnswer
from reporting.selectors import ReportFilter

BREAKDOWNS = {
    "tier": "assignment__tier__name",
    "group": "assignment__group__name",
    "agent": "assignment__agent__display_name",
}
CSV_HEADER = ["answers", "average_rating", "satisfied_share"]


def satisfaction(f: ReportFilter, by: str) -> list[dict[str, Any]]:
    """One row per tier, group or agent (`by`): answers, average rating and the share of
    satisfied answers (4 or 5), best-rated first."""
    answers = SurveyAnswer.objects.filter(answered_at__gte=f.since, answered_at__lt=f.until)
    if f.pipeline_id is not None:
        answers = answers.filter(chat__route__pipeline_id=f.pipeline_id)
    rows = (
        answers.values(label=F(BREAKDOWNS[by]))
        .annotate(
            answers=Count("pk"),
            average=Avg("rating"),
            satisfied=Count("pk", filter=Q(rating__gte=4)),
        )
        .order_by("-average", "label")
    )
    return [
        {
            "label": row["label"] or "(no agent recorded)",
            "answers": row["answers"],
            "average": row["average"],
            "satisfied_share": row["satisfied"] / row["answers"],
        }
        for row in rows
    ]
