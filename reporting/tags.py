"""Chats by tag: what chats were about, with how many were escalated and how they were rated.

A chat counts under each of its tags, once, when it started in the period; the pipeline filter
applies (the tier, group and agent filters do not: a chat's tags are the chat's, not a turn's).
"Escalated": moved by an agent at least once. Ratings: the chats' survey answers."""

from typing import Any

from django.db.models import Avg, Count, Exists, OuterRef, Q

from escalation.models import ChatTag, Escalation
from reporting.selectors import ReportFilter
from reporting.summaries import AGENT_REQUESTS, MOVED_THE_CHAT

CSV_HEADER = ["tag", "chats", "escalated", "escalation_rate", "survey_answers", "average_rating"]


def by_tag(f: ReportFilter) -> list[dict[str, Any]]:
    tagged = ChatTag.objects.filter(chat__created_at__gte=f.since, chat__created_at__lt=f.until)
    if f.pipeline_id:
        tagged = tagged.filter(chat__route__pipeline_id=f.pipeline_id)
    moved = Exists(
        Escalation.objects.filter(
            MOVED_THE_CHAT, chat_id=OuterRef("chat_id"), requested_by__in=AGENT_REQUESTS
        )
    )
    rows = (
        tagged.values("tag__name")
        .annotate(
            chats=Count("pk"),
            escalated=Count("pk", filter=Q(moved)),
            answers=Count("chat__survey"),
            average=Avg("chat__survey__rating"),
        )
        .order_by("-chats", "tag__name")
    )
    return [
        {
            "tag": row["tag__name"],
            "chats": row["chats"],
            "escalated": row["escalated"],
            "rate": row["escalated"] / row["chats"],
            "answers": row["answers"],
            "average": float(row["average"]) if row["average"] is not None else None,
        }
        for row in rows
    ]


def csv_rows(f: ReportFilter) -> list[list[Any]]:
    return [
        [
            r["tag"],
            r["chats"],
            r["escalated"],
            f"{r['rate']:.3f}",
            r["answers"],
            "" if r["average"] is None else f"{r['average']:.2f}",
        ]
        for r in by_tag(f)
    ]
