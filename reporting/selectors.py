"""Report queries. Read-only; the definitions here are part of the product (docs/reports.md).

- The reports are about one tier, level 1 unless the tier filter says otherwise.
- *Escalated*: an agent of that tier escalated the chat (command, button or API), counted at the
  time it was requested; a chat that came back and was escalated again counts each time (each
  tier-1 assignment has one outcome), while the escalated-chats list has one row per chat.
  Moves made by timeouts and fallbacks are not escalations: they are in the
  timeouts-and-fallbacks report. A hand-over the agent stayed in the chat for (warm, or to a
  colleague) counts once its receiver took the chat: one nobody accepted, declined or that was
  cancelled left the chat where it was.
- *Handled*: an assignment at that tier ended with the chat ending there (the agent resolved it,
  or the visitor closed it while talking to the agent), counted when the assignment ended.
- Days and weeks are those of the site's time zone (TIME_ZONE); a period is from the start of its
  first day to the end of its last day there.
"""

import statistics
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import connections, transaction
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
)

from chat.models import ChatSession, FlowEvent
from chat.selectors import visitor_details
from escalation.frames import HANDOVER_FLOW_KINDS, flow_text
from escalation.models import (
    Agent,
    Assignment,
    Escalation,
    QueueEntry,
    Stage,
    SurveyAnswer,
    Tier,
)
from escalation.selectors import chat_tags
from reporting import summaries
from reporting.csvsafe import safe_text
from reporting.flowwords import flow_details
from reporting.summaries import AGENT_REQUESTS, MOVED_THE_CHAT, Metric


@dataclass(frozen=True)
class ReportFilter:
    start: date
    end: date
    tier_level: int = 1
    group_id: int | None = None
    agent_id: int | None = None
    pipeline_id: int | None = None
    tag_id: int | None = None  # the escalated-chats list only (chats with this tag)

    @cached_property
    def tier_ids(self) -> list[int]:
        """The tier's ids, looked up first: the planner estimates `from_tier_id IN (…)` from its
        statistics, where a join to the tier table would be a guess."""
        return list(Tier.objects.filter(level=self.tier_level).values_list("pk", flat=True))

    @property
    def site_tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=self.site_tz)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=self.site_tz)

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def _narrowed(rows: QuerySet[Any], f: ReportFilter, *, prefix: str = "") -> QuerySet[Any]:
    """Apply the group, agent and pipeline filters (fields named with `prefix`, e.g. "from_")."""
    if f.group_id:
        rows = rows.filter(**{f"{prefix}group_id": f.group_id})
    if f.agent_id:
        rows = rows.filter(**{f"{prefix}agent_id": f.agent_id})
    if f.pipeline_id:
        rows = rows.filter(**{f"{prefix}stage__pipeline_id": f.pipeline_id})
    return rows


def escalations(f: ReportFilter) -> QuerySet[Escalation]:
    """Agent escalations out of the report's tier in the period, filtered."""
    rows = Escalation.objects.filter(
        from_tier_id__in=f.tier_ids,
        requested_by__in=AGENT_REQUESTS,
        requested_at__gte=f.since,
        requested_at__lt=f.until,
    ).filter(MOVED_THE_CHAT)
    if f.tag_id:
        rows = rows.filter(chat__tags__tag_id=f.tag_id)
    return _narrowed(rows, f, prefix="from_")


def _tier_assignments(f: ReportFilter, end_reasons: tuple[str, ...]) -> QuerySet[Assignment]:
    rows = Assignment.objects.filter(
        tier_id__in=f.tier_ids,
        end_reason__in=end_reasons,
        ended_at__gte=f.since,
        ended_at__lt=f.until,
    )
    return _narrowed(rows, f)


# --- Level 1 escalated chats -------------------------------------------------------------------

ESCALATED_SORTS: dict[str, tuple[Any, ...]] = {
    "when": ("requested_at", "pk"),
    "-when": ("-requested_at", "-pk"),
    "agent": ("from_agent__display_name", "requested_at"),
    "wait": (F("wait").asc(nulls_last=True), "requested_at"),
    "-wait": (F("wait").desc(nulls_last=True), "requested_at"),
}


def escalated_chats(f: ReportFilter, sort: str = "-when") -> QuerySet[Escalation]:
    """One row per chat that left the tier by escalation in the period: its first such
    escalation there (a chat escalated twice from tier 1 is one row).

    A chat's escalations are written in order under its row lock, so "first" is the lowest id. Most
    rows are a chat's first escalation from its tier ever (`repeat` unset) and need no look back;
    only the others are checked for an earlier matching row in the period."""
    matching = escalations(f)
    earlier = matching.filter(chat_id=OuterRef("chat_id"), pk__lt=OuterRef("pk"))
    order = ESCALATED_SORTS.get(sort, ESCALATED_SORTS["-when"])
    return (
        matching.filter(Q(repeat=False) | ~Exists(earlier))
        .select_related("chat", "from_agent", "from_group", "to_tier", "taken_by")
        .annotate(
            wait=ExpressionWrapper(F("taken_at") - F("requested_at"), output_field=DurationField())
        )
        .order_by(*order)
    )


def final_outcome(escalation: Escalation) -> str:
    chat = escalation.chat
    if chat.status == ChatSession.Status.ENDED:
        return "Ended"
    if chat.status == ChatSession.Status.MISSED:
        return "Missed (nobody took it)"
    if chat.status == ChatSession.Status.ABANDONED:
        return "Abandoned by the visitor"
    return "Still open"


def row_of(e: Escalation) -> dict[str, Any]:
    wait = getattr(e, "wait", None)
    return {
        "chat_id": e.chat_id,
        "visitor": e.chat.visitor_name,
        "when": e.requested_at,
        "from_agent": e.from_agent.display_name if e.from_agent else "",
        "from_group": e.from_group.name if e.from_group else "",
        "to": f"{e.target_label} ({e.to_tier.name})" + (" · warm" if e.warm else ""),
        "reason": e.reason,
        "wait_seconds": int(wait.total_seconds()) if wait is not None else None,
        "taken_by": e.taken_by.display_name if e.taken_by else "",
        "outcome": final_outcome(e),
    }


ESCALATED_CSV_HEADER = [
    "chat",
    "visitor",
    "escalated_at",
    "from_agent",
    "from_group",
    "to",
    "reason",
    "wait_after_escalation_seconds",
    "taken_by",
    "final_outcome",
]


CSV_FIRST_WINDOW = timedelta(days=7)


def escalated_csv_querysets(f: ReportFilter, sort: str = "-when") -> Iterator[QuerySet[Any, Any]]:
    """The CSV's rows as consecutive queries. Sorted by time, the week at the front first, then
    the rest: the first rows leave at once (no sort of a whole year before the first byte), the
    rest is one query, and together they are exactly the one query's rows. Other sorts are one
    query."""
    if sort not in ("when", "-when") or f.until - f.since <= CSV_FIRST_WINDOW:
        yield escalated_csv_queryset(f, sort)
        return
    if sort == "-when":
        cut = f.until - CSV_FIRST_WINDOW
        yield escalated_csv_queryset(f, sort, window=(cut, f.until))
        yield escalated_csv_queryset(f, sort, window=(f.since, cut))
    else:
        cut = f.since + CSV_FIRST_WINDOW
        yield escalated_csv_queryset(f, sort, window=(f.since, cut))
        yield escalated_csv_queryset(f, sort, window=(cut, f.until))


def escalated_csv_queryset(
    f: ReportFilter, sort: str = "-when", window: tuple[datetime, datetime] | None = None
) -> QuerySet[Any, Any]:
    """The CSV's columns computed by the database (PostgreSQL), in the page's order, so that a
    year of rows streams through COPY without a Python object per row."""
    from django.db.models import Case as SqlCase
    from django.db.models import CharField, DateTimeField, Func, IntegerField, Value, When
    from django.db.models.functions import Coalesce, Concat

    rows = escalated_chats(f, sort)
    if window is not None:
        rows = rows.filter(requested_at__gte=window[0], requested_at__lt=window[1])
    return rows.values_list(
        "chat_id",
        safe_text(F("chat__visitor_name")),
        Func(  # the site's local time, as on the page
            Func(
                Value(settings.TIME_ZONE),
                F("requested_at"),
                function="timezone",
                output_field=DateTimeField(),
            ),
            Value("YYYY-MM-DD HH24:MI:SS"),
            function="to_char",
            output_field=CharField(),
        ),
        safe_text(Coalesce("from_agent__display_name", Value(""))),
        safe_text(Coalesce("from_group__name", Value(""))),
        safe_text(
            Concat(
                "target_label", Value(" ("), "to_tier__name", Value(")"), output_field=CharField()
            )
        ),
        safe_text(F("reason")),
        Func(
            F("wait"),
            template="EXTRACT(EPOCH FROM %(expressions)s)::int",
            output_field=IntegerField(),
        ),
        safe_text(Coalesce("taken_by__display_name", Value(""))),
        SqlCase(
            When(chat__status=ChatSession.Status.ENDED, then=Value("Ended")),
            When(chat__status=ChatSession.Status.MISSED, then=Value("Missed (nobody took it)")),
            When(chat__status=ChatSession.Status.ABANDONED, then=Value("Abandoned by the visitor")),
            default=Value("Still open"),
            output_field=CharField(),
        ),
    )


def escalated_csv_rows(f: ReportFilter, sort: str = "-when") -> Iterator[list[Any]]:
    """The same rows in Python (SQLite, the embedded default)."""
    tz = f.site_tz
    for r in escalated_rows(f, sort):
        yield [
            r["chat_id"],
            r["visitor"],
            r["when"].astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
            r["from_agent"],
            r["from_group"],
            r["to"],
            r["reason"],
            r["wait_seconds"],
            r["taken_by"],
            r["outcome"],
        ]


def escalated_rows(f: ReportFilter, sort: str = "-when") -> Iterator[dict[str, Any]]:
    """The CSV's rows: streamed from the database in chunks (constant memory)."""
    for e in escalated_chats(f, sort).iterator(chunk_size=2000):
        yield row_of(e)


# --- Handled vs escalated over time ------------------------------------------------------------


def _tally(f: ReportFilter, metric: str, by: list[str], **narrow: Any) -> Counter[tuple[Any, ...]]:
    """Counts from the daily summaries (finished days) plus the raw rows (the rest)."""
    filters: dict[str, Any] = {
        "tier_level": f.tier_level,
        "group_id": f.group_id,
        "agent_id": f.agent_id,
        "pipeline_id": f.pipeline_id,
    }
    filters.update(narrow)
    return summaries.tally(metric, start=f.start, end=f.end, by=by, **filters)


def handled_vs_escalated_over_time(
    f: ReportFilter, *, by_week: bool = False
) -> list[dict[str, Any]]:
    def bucket_of(day: date) -> date:
        return day - timedelta(days=day.weekday()) if by_week else day

    counts: dict[str, Counter[date]] = {}
    for metric in (Metric.HANDLED, Metric.ESCALATED):
        per_bucket: Counter[date] = Counter()
        for (day,), n in _tally(f, metric, ["day"]).items():
            per_bucket[bucket_of(day)] += n
        counts[metric] = per_bucket
    buckets = list(dict.fromkeys(bucket_of(day) for day in f.days()))
    return [
        {
            "bucket": bucket,
            "handled": counts[Metric.HANDLED][bucket],
            "escalated": counts[Metric.ESCALATED][bucket],
        }
        for bucket in buckets
    ]


# --- By agent ----------------------------------------------------------------------------------


def by_agent(f: ReportFilter) -> list[dict[str, Any]]:
    """Every agent of the tier's groups (or the filtered group/agent), with zeros where none."""
    agents = Agent.objects.filter(groups__tier__level=f.tier_level)
    if f.group_id:
        agents = agents.filter(groups=f.group_id)
    if f.agent_id:
        agents = agents.filter(pk=f.agent_id)
    names = dict(agents.distinct().values_list("pk", "display_name"))
    handled_counts = {k[0]: n for k, n in _tally(f, Metric.HANDLED, ["agent_id"]).items()}
    escalated_counts = {k[0]: n for k, n in _tally(f, Metric.ESCALATED, ["agent_id"]).items()}
    for agent_id in set(handled_counts) | set(escalated_counts):
        if agent_id is not None and agent_id not in names:  # since moved to another group
            names[agent_id] = Agent.objects.get(pk=agent_id).display_name
    rows: list[dict[str, Any]] = []
    for agent_id, name in names.items():
        h, e = handled_counts.get(agent_id, 0), escalated_counts.get(agent_id, 0)
        rows.append(
            {
                "agent_id": agent_id,
                "agent": name,
                "handled": h,
                "escalated": e,
                "escalation_rate": (e / (h + e)) if h + e else None,
            }
        )
    rows.sort(key=lambda r: (-(r["handled"] + r["escalated"]), r["agent"]))
    return rows


# --- Beyond the three --------------------------------------------------------------------------


def by_reason(f: ReportFilter) -> list[dict[str, Any]]:
    counts = _tally(f, Metric.ESCALATED, ["reason"])
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0][0]))
    return [{"reason": reason or "(no reason given)", "escalations": n} for (reason,), n in rows]


def by_target(f: ReportFilter) -> list[dict[str, Any]]:
    counts = _tally(f, Metric.ESCALATED, ["target"])
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0][0]))
    return [{"target": target, "escalations": n} for (target,), n in rows]


def _percentiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], values[0]
    cuts = statistics.quantiles(values, n=10, method="inclusive")
    return statistics.median(values), cuts[8]


class _MedianAndP90(Aggregate):
    """PostgreSQL: [median, 90th percentile] of a duration in seconds, in the same scan."""

    function = "percentile_cont"
    template = (
        "%(function)s(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM %(expressions)s))"
    )
    output_field = ArrayField(FloatField())


def _duration_stats(
    rows: QuerySet[Any], start: str, end: str, **counts: Any
) -> tuple[dict[str, int], float | None, float | None]:
    """Counts, then the median and 90th percentile of `end - start` in seconds (rows where both
    are set): one query on PostgreSQL, values in Python elsewhere (the embedded SQLite)."""
    db = connections[rows.db]
    if db.vendor == "postgresql":
        with transaction.atomic(using=rows.db), db.cursor() as cursor:
            # A year of durations sorts in memory instead of in temporary files.
            cursor.execute("SET LOCAL work_mem = '64MB'")
            result = rows.aggregate(
                **counts,
                cuts=_MedianAndP90(
                    ExpressionWrapper(F(end) - F(start), output_field=DurationField())
                ),
            )
        cuts = result.pop("cuts") or [None, None]
        return result, cuts[0], cuts[1]
    values = sorted(
        (b - a).total_seconds()
        for a, b in rows.values_list(start, end)
        if a is not None and b is not None
    )
    median, p90 = _percentiles(values)
    return rows.aggregate(**counts), median, p90


def wait_after_escalation(f: ReportFilter) -> dict[str, Any]:
    counts, median, p90 = _duration_stats(
        escalations(f),
        "requested_at",
        "taken_at",
        escalations=Count("pk"),
        taken=Count("taken_at"),
    )
    return {**counts, "median_seconds": median, "p90_seconds": p90}


def time_to_escalate(f: ReportFilter) -> dict[str, Any]:
    """From the agent taking the chat at the tier to escalating it."""
    counts, median, p90 = _duration_stats(
        _tier_assignments(f, (Assignment.EndReason.ESCALATED,)),
        "started_at",
        "ended_at",
        escalations=Count("pk"),
    )
    return {**counts, "median_seconds": median, "p90_seconds": p90}


def timeouts_and_fallbacks(f: ReportFilter) -> list[dict[str, Any]]:
    """Per stage: waits that timed out, and what the fallback did (all tiers, groups and agents;
    the pipeline filter applies)."""
    columns = {
        Metric.TIMED_OUT: "timed_out",
        Metric.MOVED: "moved",
        Metric.LEFT_MESSAGE: "left_message",
        Metric.ENDED: "ended",
    }
    per_stage: dict[int | None, Counter[str]] = {}
    for metric, column in columns.items():
        counts = _tally(f, metric, ["stage_id"], tier_level=None, group_id=None, agent_id=None)
        for (stage_id,), n in counts.items():
            per_stage.setdefault(stage_id, Counter())[column] += n
    labels = {
        s.pk: f"{s.pipeline.name} › {s.name}"
        for s in Stage.objects.filter(pk__in=[k for k in per_stage if k]).select_related("pipeline")
    }
    stats: dict[str, dict[str, Any]] = {}
    for stage_id, stage_counts in per_stage.items():
        label = labels.get(stage_id, "(stage deleted)") if stage_id else "(no stage)"
        row = stats.setdefault(label, {"stage": label, **dict.fromkeys(columns.values(), 0)})
        for column, n in stage_counts.items():
            row[column] += n
    return sorted(stats.values(), key=lambda r: r["stage"])


def tiers() -> QuerySet[Tier]:
    return Tier.objects.order_by("level")


# --- One chat: Metadata and Flow ------------------------------------------------------------------


# What the start form and the visitor's browser keep in visitor_context (chat.selectors
# .visitor_details reads them); anything else there is shown as it is.
KNOWN_CONTEXT = frozenset(
    {
        "page",
        "page_title",
        "referrer",
        "user_agent",
        "language",
        "time_zone",
        "utc_offset_minutes",
        "fields",
        "attributes",
    }
)


def chat_detail(*, chat_id: int) -> dict[str, Any]:
    from django.http import Http404
    from django.utils import timezone

    chat = ChatSession.objects.filter(pk=chat_id).first()
    if chat is None:
        raise Http404("No such chat.")
    now = timezone.now()
    end = chat.ended_at or now
    entries = list(
        QueueEntry.objects.filter(chat=chat)
        .select_related("stage", "tier", "group")
        .order_by("entered_at", "pk")
    )
    assignments = list(
        Assignment.objects.filter(chat=chat)
        .select_related("agent", "tier", "stage", "group")
        .order_by("started_at", "pk")
    )
    escalation_rows = list(
        Escalation.objects.filter(chat=chat)
        .select_related("from_agent", "from_tier", "to_tier", "taken_by")
        .order_by("requested_at", "pk")
    )
    segments: list[dict[str, Any]] = []
    for e in entries:
        segments.append(
            {
                "kind": "waiting",
                "tier": e.tier.name,
                "tier_level": e.tier.level,
                "who": e.group.name if e.group else e.stage.name,
                "where": e.stage.name,
                "start": e.entered_at,
                "end": e.left_at or end,
                "why": e.get_reason_display(),
                "outcome": e.get_outcome_display() if e.outcome else "waiting",
            }
        )
    for a in assignments:
        segments.append(
            {
                "kind": "agent",
                "tier": a.tier.name,
                "tier_level": a.tier.level,
                "who": a.agent.display_name,
                "where": a.group.name if a.group else a.stage.name,
                "start": a.started_at,
                "end": a.ended_at or end,
                "why": "",
                "outcome": a.get_end_reason_display() if a.end_reason else "holding",
            }
        )
    segments.sort(key=lambda s: (s["start"], 0 if s["kind"] == "waiting" else 1))
    per_tier: dict[str, float] = {}
    for seg in segments:
        seg["seconds"] = (seg["end"] - seg["start"]).total_seconds()
        per_tier[seg["tier"]] = per_tier.get(seg["tier"], 0) + seg["seconds"]
    context = chat.visitor_context if isinstance(chat.visitor_context, dict) else {}
    route = getattr(chat, "route", None)
    return {
        "chat": chat,
        "pipeline": route.pipeline.name if route else "",
        "visitor": visitor_details(chat),
        "custom_fields": {k: v for k, v in context.items() if k not in KNOWN_CONTEXT},
        "total_seconds": (end - chat.created_at).total_seconds(),
        "per_tier": sorted(per_tier.items()),
        "tiers_visited": list(dict.fromkeys(s["tier"] for s in segments)),
        "agents": list(dict.fromkeys(a.agent.display_name for a in assignments)),
        "segments": segments,
        "escalations": escalation_rows,
        "flow": [
            {
                "at": ev.at,
                # A hand-over's events read as what happened ("Sam took over").
                "kind": flow_text(ev) if ev.kind in HANDOVER_FLOW_KINDS else ev.get_kind_display(),
                "details": flow_details(ev.data),
            }
            for ev in FlowEvent.objects.filter(chat=chat).order_by("pk")
        ],
        "timeline": _timeline(segments, chat.created_at, end),
        "survey": SurveyAnswer.objects.filter(chat=chat).first(),
        "tags": chat_tags(chat_id=chat.pk),
    }


def _timeline(segments: list[dict[str, Any]], start: datetime, end: datetime) -> dict[str, Any]:
    """Geometry of the Flow picture: one lane per tier, time left to right."""
    span = max((end - start).total_seconds(), 1.0)
    lanes = sorted({(s["tier_level"], s["tier"]) for s in segments})
    lane_y = {name: 30 + i * 46 for i, (_, name) in enumerate(lanes)}
    left, width = 110, 640
    bars = []
    for s in segments:
        x = left + width * (s["start"] - start).total_seconds() / span
        w = max(3.0, width * (s["end"] - s["start"]).total_seconds() / span)
        bars.append(
            {
                **s,
                "x": round(x, 1),
                "y": lane_y[s["tier"]],
                "w": round(w, 1),
                "seconds": int((s["end"] - s["start"]).total_seconds()),
            }
        )
    return {
        "lanes": [{"name": n, "y": lane_y[n]} for _, n in lanes],
        "bars": bars,
        "height": 40 + 46 * max(len(lanes), 1),
        "left": left,
        "width": width,
        "span_seconds": int(span),
    }
