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


# CSAT in the by-agent report: the average survey rating (1 to 5) and the number of answers, for
# the chats the agent was the last to hold at the report's tier (an answer counts for the last
# assignment), answered in the period; the group, agent and pipeline filters apply.
NO_CSAT: dict[str, Any] = {"answers": 0, "average": None}
CSAT_CSV_COLUMNS = ["csat_answers", "csat_average"]


def csat_by_agent(f: ReportFilter) -> dict[int, dict[str, Any]]:
    """Per agent id: {"answers": n, "average": mean rating} (one aggregate query)."""
    answers = SurveyAnswer.objects.filter(
        answered_at__gte=f.since,
        answered_at__lt=f.until,
        assignment__tier_id__in=f.tier_ids,
    )
    if f.group_id is not None:
        answers = answers.filter(assignment__group_id=f.group_id)
    if f.agent_id is not None:
        answers = answers.filter(assignment__agent_id=f.agent_id)
    if f.pipeline_id is not None:
        answers = answers.filter(chat__route__pipeline_id=f.pipeline_id)
    rows = (
        answers.values("assignment__agent_id")
        .annotate(answers=Count("pk"), average=Avg("rating"))
        .order_by()
    )
    return {
        row["assignment__agent_id"]: {"answers": row["answers"], "average": row["average"]}
        for row in rows
    }


def csat_csv_values(stats: dict[str, Any]) -> list[Any]:
    return [stats["answers"], "" if stats["average"] is None else f"{stats['average']:.2f}"]
