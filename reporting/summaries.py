"""Daily summaries behind the count reports: finished days from DailyFact, the rest raw.

Each count report asks `tally(filter, metric, by=[...])`. The period is split into the days already
summarised (in the current site time zone) and the others; the first are summed from DailyFact, the
others counted in the raw tables exactly as the summary would have counted them, and the two are
added. So a report is right whether or not the summary task has run, and a year of history costs a
few thousand small rows instead of a scan of a million chats.

A day is summarised once it is over in the site's time zone plus CLOSE_MARGIN (a transaction that
began before midnight has committed by then), by the periodic task `summarise_days` or by
`manage.py summarise_reports`. The same run writes, for the same days, the wait estimates'
groups of the predicted-vs-actual report (reporting/accuracy.py) and the duration histograms of
the friction report (reporting/durations.py), which those reports read in the same way.
"""

import contextlib
import zoneinfo
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import CharField, Count, F, Q, Sum, Value
from django.db.models.functions import Concat, TruncDate
from django.utils import timezone

from chat.models import ChatSession, FlowEvent
from escalation.models import Assignment, Escalation, QueueEntry, Tier
from reporting import accuracy, durations
from reporting.models import DailyAccuracy, DailyDuration, DailyFact, SummarisedDay
from reporting.periods import day_bounds, in_days, in_spans, runs, site_tz, summarised_days

AGENT_REQUESTS = (
    Escalation.RequestedBy.COMMAND,
    Escalation.RequestedBy.BUTTON,
    Escalation.RequestedBy.API,
)
HANDLED_ENDINGS = (Assignment.EndReason.RESOLVED, Assignment.EndReason.VISITOR_LEFT)
# An agent's request that moved the chat: a cold one queues it at once (it has an entry); one
# the first agent stayed in for (warm, or to a colleague) only once the receiver took it. A
# hand-over nobody accepted, that was declined or cancelled, left the chat where it was.
MOVED_THE_CHAT = Q(entry__isnull=False) | Q(outcome=Escalation.Outcome.TAKEN)
CLOSE_MARGIN = timedelta(minutes=10)
Metric = DailyFact.Metric


@dataclass(frozen=True)
class Source:
    """Where a metric's events are in the raw tables, and how each dimension is read there."""

    model: type[models.Model]
    time: str
    where: dict[str, Any]
    dims: dict[str, Any] = field(default_factory=dict)
    also: Q | None = None  # a condition `where` cannot say (an OR)

    def rows(self) -> models.QuerySet[Any]:
        rows = self.model._default_manager.filter(**self.where)
        return rows if self.also is None else rows.filter(self.also)


SOURCES: dict[str, Source] = {
    Metric.HANDLED: Source(
        Assignment,
        "ended_at",
        {"end_reason__in": HANDLED_ENDINGS},
        {
            "tier_id": F("tier_id"),
            "stage_id": F("stage_id"),
            "pipeline_id": F("stage__pipeline_id"),
            "group_id": F("group_id"),
            "agent_id": F("agent_id"),
        },
    ),
    Metric.ESCALATED: Source(
        Escalation,
        "requested_at",
        {"requested_by__in": AGENT_REQUESTS},
        also=MOVED_THE_CHAT,
        dims={
            "tier_id": F("from_tier_id"),
            "stage_id": F("from_stage_id"),
            "pipeline_id": F("from_stage__pipeline_id"),
            "group_id": F("from_group_id"),
            "agent_id": F("from_agent_id"),
            "reason": F("reason"),
            "target": Concat(
                "target_label", Value(" ("), "to_tier__name", Value(")"), output_field=CharField()
            ),
        },
    ),
    Metric.TIMED_OUT: Source(
        QueueEntry,
        "left_at",
        {"outcome": QueueEntry.Outcome.TIMED_OUT},
        {
            "tier_id": F("tier_id"),
            "stage_id": F("stage_id"),
            "pipeline_id": F("stage__pipeline_id"),
        },
    ),
    Metric.MOVED: Source(
        Escalation,
        "requested_at",
        {"requested_by__in": (Escalation.RequestedBy.TIMEOUT, Escalation.RequestedBy.FALLBACK)},
        {
            "tier_id": F("from_tier_id"),
            "stage_id": F("from_stage_id"),
            "pipeline_id": F("from_stage__pipeline_id"),
        },
    ),
    Metric.LEFT_MESSAGE: Source(
        FlowEvent,
        "at",
        {"kind": FlowEvent.Kind.FELL_BACK, "data__action": "leave_message"},
        {"stage_id": F("chat__route__stage_id"), "pipeline_id": F("chat__route__pipeline_id")},
    ),
    Metric.ENDED: Source(
        FlowEvent,
        "at",
        {"kind": FlowEvent.Kind.FELL_BACK, "data__action": "end"},
        {"stage_id": F("chat__route__stage_id"), "pipeline_id": F("chat__route__pipeline_id")},
    ),
}


def tally(
    metric: str,
    *,
    start: date,
    end: date,
    by: Sequence[str],
    tier_level: int | None = None,
    group_id: int | None = None,
    agent_id: int | None = None,
    pipeline_id: int | None = None,
) -> Counter[tuple[Any, ...]]:
    """Count `metric`'s events from `start` to `end` (site days), grouped by the dimensions `by`
    ("day" or any DailyFact dimension), narrowed by the filters given."""
    tz = site_tz()
    filters: dict[str, Any] = {}
    if tier_level is not None:
        filters["tier_id__in"] = list(
            Tier.objects.filter(level=tier_level).values_list("pk", flat=True)
        )
    for name, value in (
        ("group_id", group_id),
        ("agent_id", agent_id),
        ("pipeline_id", pipeline_id),
    ):
        if value:
            filters[name] = value
    done = summarised_days(start, end)
    all_days = {start + timedelta(days=i) for i in range((end - start).days + 1)}
    counts: Counter[tuple[Any, ...]] = Counter()
    if done:
        facts = (
            DailyFact.objects.filter(metric=metric)
            .filter(in_days(runs(done)))
            .filter(**filters)
            .values(*by)
            .annotate(total=Sum("n"))
            .order_by()
        )
        for row in facts:
            counts[tuple(row[name] for name in by)] += row["total"]
    raw_days = all_days - done
    if raw_days:
        source = SOURCES[metric]
        spans = [day_bounds(first, last, tz) for first, last in runs(raw_days)]
        rows = _annotated(source, tz, set(by) | {k.split("__")[0] for k in filters})
        rows = rows.filter(in_spans(spans, source.time)).filter(
            **{f"d_{key}": value for key, value in filters.items()}
        )
        for row in rows.values(*[f"d_{name}" for name in by]).annotate(n=Count("pk")).order_by():
            counts[tuple(row[f"d_{name}"] for name in by)] += row["n"]
    return counts


def _annotated(source: Source, tz: zoneinfo.ZoneInfo, names: Iterable[str]) -> Any:
    annotations: dict[str, Any] = {}
    for name in names:
        if name == "day":
            annotations["d_day"] = TruncDate(source.time, tzinfo=tz)
        else:
            annotations[f"d_{name}"] = source.dims[name]
    return source.rows().annotate(**annotations)


# --- Writing the summaries ------------------------------------------------------------------------


def last_closed_day(now: datetime | None = None) -> date:
    """The latest day that is over, with its margin, in the site's time zone."""
    local = timezone.localtime(now or timezone.now(), site_tz())
    return (local - CLOSE_MARGIN).date() - timedelta(days=1)


def summarise(first: date, last: date) -> int:
    """Count the days from `first` to `last` (clipped to the days that are over) into DailyFact,
    replacing what was there. Returns the number of days summarised."""
    tz = site_tz()
    last = min(last, last_closed_day())
    if last < first:
        return 0
    since, until = day_bounds(first, last, tz)
    # A day whose estimates still wait for their outcome is summarised on a later run; one with
    # a turn still open is, but without its duration histograms (a later run adds them).
    blocked = accuracy.blocked_days(since, until)
    open_turns = durations.blocked_days(since, until)
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    done = 0
    for a, b in runs(d for d in days if d not in blocked):
        with contextlib.suppress(IntegrityError):  # another run counted them at the same time
            done += _summarise(a, b, *day_bounds(a, b, tz), tz, open_turns)
    return done


def _summarise(
    first: date,
    last: date,
    since: datetime,
    until: datetime,
    tz: zoneinfo.ZoneInfo,
    open_turns: set[date],
) -> int:
    with transaction.atomic():
        SummarisedDay.objects.filter(day__gte=first, day__lte=last).delete()
        DailyFact.objects.filter(day__gte=first, day__lte=last).delete()
        facts: list[DailyFact] = []
        for metric, source in SOURCES.items():
            names = ["day", *source.dims]
            rows = _annotated(source, tz, names).filter(
                **{f"{source.time}__gte": since, f"{source.time}__lt": until}
            )
            for row in (
                rows.values(*[f"d_{name}" for name in names]).annotate(n=Count("pk")).order_by()
            ):
                values = {name: row[f"d_{name}"] for name in names}
                values["reason"] = values.get("reason") or ""
                values["target"] = values.get("target") or ""
                facts.append(DailyFact(metric=metric, n=row["n"], **values))
        DailyFact.objects.bulk_create(facts, batch_size=2000)
        DailyAccuracy.objects.filter(day__gte=first, day__lte=last).delete()
        DailyAccuracy.objects.bulk_create(accuracy.summary_rows(since, until), batch_size=2000)
        DailyDuration.objects.filter(day__gte=first, day__lte=last).delete()
        durations.write_summary(since, until)
        DailyDuration.objects.filter(day__in=open_turns).delete()  # not final: read raw
        days = (last - first).days + 1
        SummarisedDay.objects.bulk_create(
            SummarisedDay(
                day=day, time_zone=settings.TIME_ZONE, has_durations=day not in open_turns
            )
            for day in (first + timedelta(days=i) for i in range(days))
        )
    return days


def summarise_pending(max_days: int = 400) -> int:
    """Summarise the finished days that are not yet, from the first chat on (at most `max_days`
    of them, oldest first). Called periodically; cheap when there is nothing to do."""
    first_chat = ChatSession.objects.order_by("created_at").values_list("created_at", flat=True)[:1]
    if not first_chat:
        return 0
    tz = site_tz()
    first = timezone.localtime(first_chat[0], tz).date()
    last = last_closed_day()
    if last < first:
        return 0
    done = summarised_days(first, last)
    # Days summarised while a turn of theirs was open, whose turns have all ended since.
    unfinished = done - summarised_days(first, last, with_durations=True)
    if unfinished:
        unfinished -= durations.blocked_days(*day_bounds(min(unfinished), max(unfinished), tz))
    pending = sorted(
        d
        for d in (first + timedelta(days=i) for i in range((last - first).days + 1))
        if d not in done or d in unfinished
    )[:max_days]
    return sum(summarise(a, b) for a, b in runs(pending))


def forget_all() -> None:
    """Drop every summary: the reports count from the raw rows until the days are summarised."""
    with transaction.atomic():
        SummarisedDay.objects.all().delete()
        DailyFact.objects.all().delete()
        DailyAccuracy.objects.all().delete()
        DailyDuration.objects.all().delete()
