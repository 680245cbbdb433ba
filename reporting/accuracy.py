"""Predicted vs actual wait: every estimate shown to a visitor against the wait that followed.

An estimate is *compared* when it had numbers (low and high) and its queue entry ended with an
agent taking the chat; the actual wait is from the moment it was shown to that take. Per stage
(and for all stages): estimates shown, compared, the median error (actual minus the middle of the
range, counted to the half second), the share within ±25% of the middle, and the share of waits
longer than the range's high end.

The numbers are grouped by (stage, error in half seconds), which adds up across days: finished
days come from DailyAccuracy (written with the other daily summaries, once every entry that got an
estimate that day has left its queue), the other days from the raw rows, grouped the same way.
"""

import zoneinfo
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.db import connections, router
from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from escalation.models import QueueEntry, Stage, WaitEstimate
from reporting import periods
from reporting.models import DailyAccuracy


@dataclass(frozen=True)
class Group:
    """Estimates of one stage with one error (None: shown but not compared), on one day."""

    day: date | None
    stage_id: int
    pipeline_id: int
    error_halves: int | None
    shown: int
    within: int
    longer: int


def raw_groups(spans: Sequence[tuple[datetime, datetime]], *, by_day: bool) -> Iterator[Group]:
    """The estimates shown in `spans`, grouped; in the database on PostgreSQL."""
    if not spans:
        return
    if connections[router.db_for_read(WaitEstimate)].vendor == "postgresql":
        yield from _sql_groups(spans, by_day=by_day)
    else:
        yield from _python_groups(spans, by_day=by_day)


def _sql_groups(spans: Sequence[tuple[datetime, datetime]], *, by_day: bool) -> Iterator[Group]:
    w, e, s = WaitEstimate._meta.db_table, QueueEntry._meta.db_table, Stage._meta.db_table
    when = " OR ".join("(w.created_at >= %s AND w.created_at < %s)" for _ in spans)
    day = "(w.created_at AT TIME ZONE %s)::date" if by_day else "NULL::date"
    params: list[Any] = [settings.TIME_ZONE] if by_day else []
    params += [QueueEntry.Outcome.TAKEN]
    for low, high in spans:
        params += [low, high]
    sql = f"""
        WITH d AS (
          SELECT {day} AS day, e.stage_id, st.pipeline_id, w.high_seconds AS high,
            (w.low_seconds + w.high_seconds) / 2.0 AS predicted,
            CASE WHEN e.outcome = %s AND e.left_at IS NOT NULL THEN
              EXTRACT(EPOCH FROM (e.left_at - w.created_at)) END AS actual
          FROM {w} w JOIN {e} e ON e.id = w.entry_id JOIN {s} st ON st.id = e.stage_id
          WHERE {when}
        )
        SELECT day, stage_id, pipeline_id, round(2 * (actual - predicted))::int AS error_halves,
          count(*),
          count(*) FILTER (WHERE abs(actual - predicted) <= 0.25 * predicted),
          count(*) FILTER (WHERE actual - predicted IS NOT NULL AND actual > high)
        FROM d GROUP BY 1, 2, 3, 4
    """  # noqa: S608 - table names from the models; every value is bound
    # The reports replica where there is one (reporting/routers.py), inside a report.
    with connections[router.db_for_read(WaitEstimate)].cursor() as cursor:
        cursor.execute(sql, params)
        for row in cursor.fetchall():
            yield Group(*row)


def _python_groups(spans: Sequence[tuple[datetime, datetime]], *, by_day: bool) -> Iterator[Group]:
    when = periods.in_spans(spans, "created_at")
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    counts: dict[tuple[Any, ...], list[int]] = {}
    row: Any
    for row in (
        WaitEstimate.objects.filter(when)
        .values_list(
            "created_at",
            "entry__stage_id",
            "entry__stage__pipeline_id",
            "low_seconds",
            "high_seconds",
            "entry__outcome",
            "entry__left_at",
        )
        .iterator()
    ):
        created_at, stage_id, pipeline_id, low, high, outcome, left_at = row
        error = within = longer = None
        if (
            low is not None
            and high is not None
            and outcome == QueueEntry.Outcome.TAKEN
            and left_at is not None
        ):
            actual = (left_at - created_at).total_seconds()
            predicted = (low + high) / 2
            error = round(2 * (actual - predicted))
            within = abs(actual - predicted) <= 0.25 * predicted
            longer = actual > high
        day = timezone.localtime(created_at, tz).date() if by_day else None
        tally = counts.setdefault((day, stage_id, pipeline_id, error), [0, 0, 0])
        tally[0] += 1
        tally[1] += bool(within)
        tally[2] += bool(longer)
    for (day, stage_id, pipeline_id, error), (shown, within_n, longer_n) in counts.items():
        yield Group(day, stage_id, pipeline_id, error, shown, within_n, longer_n)


def blocked_days(since: datetime, until: datetime) -> set[date]:
    """Days whose estimates cannot be summarised yet: an entry that got one is still waiting."""
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    return set(
        WaitEstimate.objects.filter(
            entry__left_at__isnull=True, created_at__gte=since, created_at__lt=until
        )
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values_list("day", flat=True)
        .distinct()
    )


def summary_rows(since: datetime, until: datetime) -> list[DailyAccuracy]:
    return [
        DailyAccuracy(
            day=g.day or date.min,  # (always set: grouped by day)
            stage_id=g.stage_id,
            pipeline_id=g.pipeline_id,
            error_halves=g.error_halves,
            shown=g.shown,
            within=g.within,
            longer=g.longer,
        )
        for g in raw_groups([(since, until)], by_day=True)
    ]


def _summary_groups(days: Iterable[tuple[date, date]], pipeline_id: int | None) -> Iterator[Group]:
    rows = DailyAccuracy.objects.filter(periods.in_days(days))
    if pipeline_id:
        rows = rows.filter(pipeline_id=pipeline_id)
    for r in (
        rows.values("stage_id", "pipeline_id", "error_halves")
        .annotate(shown_n=Sum("shown"), within_n=Sum("within"), longer_n=Sum("longer"))
        .order_by()
    ):
        yield Group(
            None,
            r["stage_id"],
            r["pipeline_id"],
            r["error_halves"],
            r["shown_n"],
            r["within_n"],
            r["longer_n"],
        )


@dataclass
class _Tally:
    shown: int = 0
    within: int = 0
    longer: int = 0

    def __post_init__(self) -> None:
        self.errors: Counter[int] = Counter()

    def add(self, g: Group) -> None:
        self.shown += g.shown
        self.within += g.within
        self.longer += g.longer
        if g.error_halves is not None:
            self.errors[g.error_halves] += g.shown


def weighted_median(counts: Counter[int]) -> float | None:
    """The median of a multiset given as value → count, interpolated like percentile_cont."""
    n = sum(counts.values())
    if n == 0:
        return None
    position = (n - 1) / 2
    below, upper = int(position), int(position) + (position % 1 > 0)
    seen = 0
    low_value = high_value = None
    for value in sorted(counts):
        seen += counts[value]
        if low_value is None and seen > below:
            low_value = value
        if seen > upper:
            high_value = value
            break
    if low_value is None or high_value is None:  # (cannot happen: n > 0)
        return None
    return (low_value + high_value) / 2


def _row(stage: str, t: _Tally) -> dict[str, Any]:
    compared = sum(t.errors.values())
    median = weighted_median(t.errors)
    return {
        "stage": stage,
        "shown": t.shown,
        "compared": compared,
        "median_error_seconds": median / 2 if median is not None else None,
        "within_25": t.within / compared if compared else None,
        "longer_than_promised": t.longer / compared if compared else None,
    }


def predicted_vs_actual(f: Any) -> list[dict[str, Any]]:
    """Per stage (sorted by name), then "All stages"; [] when no estimate was shown."""
    done = periods.summarised_days(f.start, f.end)
    every_day = set(f.days())
    tz = zoneinfo.ZoneInfo(f.site_tz.key)
    raw_spans = [
        periods.day_bounds(first, last, tz) for first, last in periods.runs(every_day - done)
    ]
    per_stage: dict[int, _Tally] = {}
    total = _Tally()
    groups = list(_summary_groups(periods.runs(done), f.pipeline_id)) if done else []
    for g in raw_groups(raw_spans, by_day=False):
        if not f.pipeline_id or g.pipeline_id == f.pipeline_id:
            groups.append(g)
    for g in groups:
        per_stage.setdefault(g.stage_id, _Tally()).add(g)
        total.add(g)
    if not per_stage:
        return []
    names = {
        pk: f"{pipeline} › {name}"
        for pk, pipeline, name in Stage.objects.filter(pk__in=list(per_stage)).values_list(
            "pk", "pipeline__name", "name"
        )
    }
    rows = sorted(
        (_row(names.get(stage_id, "(stage deleted)"), t) for stage_id, t in per_stage.items()),
        key=lambda r: r["stage"],
    )
    return [*rows, _row("All stages", total)]
