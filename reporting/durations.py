"""Per-day duration histograms behind the friction report (reporting/friction.py).

A median or a 90th percentile cannot be added up from daily figures, but a histogram can: how
many durations fell in each bucket, per day, metric, tier, stage, group and agent. The friction
report adds the histograms of the days already summarised (DailyDuration, written with the other
daily summaries) to the same histograms counted from the raw rows of the other days (today,
normally), and reads its percentiles from the sum. Both halves are bucketed alike, so a figure is
the same whether or not the summary task has run.

Buckets: a duration is rounded to the whole second under an hour (EXACT_BELOW_SECONDS), and to
the whole minute from an hour on. Rounding keeps the order of the durations, so each ranked
duration a percentile is read from moves by at most the rounding, and so does the percentile
(linear between two of them, as percentile_cont): it is within 0.5 s of the exact one when both
durations it is read from are under an hour, and within 30 s otherwise. The page shows whole
seconds under an hour and whole minutes from an hour on (the CSV whole seconds), so a figure
shown is the exact figure's or the next one up or down, never further. Counts and the total
handle time are exact (each bucket keeps the sum of its exact durations).

A day's histograms are final once every turn taken that day has ended (their first responses
and handle times are known then). A day summarised while one was still open keeps its other
summaries but gets no histograms (SummarisedDay.has_durations stays false, and the friction
report reads that day raw); a later run of the summaries, once the turns have ended, counts the
day again with them.
"""

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.db import connections, router
from django.db.models import DurationField, ExpressionWrapper, F, OuterRef, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from escalation.models import Assignment, QueueEntry, Stage
from reporting import periods
from reporting.models import DailyDuration

Metric = DailyDuration.Metric
EXACT_BELOW_SECONDS = 3600
COARSE_SECONDS = 60
QUEUE_METRICS = (Metric.STARTED, Metric.DROPPED, Metric.ABANDONED)
ANSWER_METRICS = (Metric.ANSWER, Metric.REPLY, Metric.HANDLE)


def bucket(seconds: float) -> int:
    """The bucket of a duration (SQL: BUCKET_SQL, the same arithmetic on the same doubles)."""
    if seconds < EXACT_BELOW_SECONDS:
        return math.floor(seconds + 0.5)
    return COARSE_SECONDS * math.floor(seconds / COARSE_SECONDS + 0.5)


BUCKET_SQL = (
    f"CASE WHEN {{s}} < {EXACT_BELOW_SECONDS} THEN floor({{s}} + 0.5)"
    f" ELSE {COARSE_SECONDS} * floor({{s}} / {COARSE_SECONDS} + 0.5) END"
)


@dataclass(frozen=True)
class Bucket:
    day: date
    metric: str
    tier_id: int
    stage_id: int
    pipeline_id: int | None
    group_id: int | None
    agent_id: int | None
    seconds: int | None
    n: int
    seconds_total: float | None


def _postgresql() -> bool:
    return connections[router.db_for_read(Assignment)].vendor == "postgresql"


def _when(column: str, spans: Sequence[tuple[datetime, datetime]]) -> tuple[str, list[Any]]:
    sql = " OR ".join(f"({column} >= %s AND {column} < %s)" for _ in spans)
    return f"({sql})", [moment for span in spans for moment in span]


def raw_sql(spans: Sequence[tuple[datetime, datetime]]) -> tuple[str, list[Any]]:
    """PostgreSQL: the histograms of the raw rows in `spans` (non-empty), one row per Bucket
    (its fields as columns, in order)."""
    e, a, s = QueueEntry._meta.db_table, Assignment._meta.db_table, Stage._meta.db_table
    entered, entered_params = _when("e.entered_at", spans)
    left, left_params = _when("e.left_at", spans)
    started, started_params = _when("a.started_at", spans)
    seconds = BUCKET_SQL.format(s="r.seconds")
    # The wait an assignment answered: its chat's queue entry that was taken at the
    # assignment's start (both are written in one transaction, the entry's left_at a moment
    # after started_at); no entry can have been taken before the first span began.
    sql = f"""
        WITH turns AS (
          SELECT DISTINCT ON (a.id) a.started_at, a.tier_id, a.stage_id, a.group_id, a.agent_id,
                 date_part('epoch', a.started_at - w.entered_at) AS answer,
                 date_part('epoch', a.replied_at - a.started_at) AS reply,
                 date_part('epoch', a.ended_at - a.started_at) AS handle
          FROM {a} a
          LEFT JOIN {e} w
            ON w.chat_id = a.chat_id AND w.outcome = %s AND w.entered_at <= a.started_at
           AND w.left_at >= a.started_at AND w.left_at >= %s
          WHERE {started}
          ORDER BY a.id, w.entered_at DESC, w.id DESC
        ), events AS (
          SELECT e.entered_at AS at,
                 CASE WHEN e.reason = %s THEN %s ELSE %s END AS metric,
                 e.tier_id, e.stage_id, NULL::integer AS group_id, NULL::integer AS agent_id,
                 NULL::double precision AS seconds
          FROM {e} e WHERE e.reason IN (%s, %s) AND {entered}
          UNION ALL
          SELECT e.left_at, %s, e.tier_id, e.stage_id, NULL, NULL,
                 date_part('epoch', e.left_at - e.entered_at)
          FROM {e} e WHERE e.outcome = %s AND e.reason <> %s AND {left}
          UNION ALL
          SELECT t.started_at, m.metric, t.tier_id, t.stage_id, t.group_id, t.agent_id,
                 m.seconds
          FROM turns t CROSS JOIN LATERAL (
            VALUES (%s, t.answer), (%s, t.reply), (%s, t.handle)
          ) AS m (metric, seconds)
          WHERE m.seconds IS NOT NULL
        )
        SELECT (r.at AT TIME ZONE %s)::date, r.metric, r.tier_id, r.stage_id, st.pipeline_id,
               r.group_id, r.agent_id, ({seconds})::integer, count(*), sum(r.seconds)
        FROM events r LEFT JOIN {s} st ON st.id = r.stage_id
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    """  # noqa: S608 - table names from the models; every value is bound
    reason, outcome = QueueEntry.Reason, QueueEntry.Outcome
    params: list[Any] = [outcome.TAKEN, spans[0][0], *started_params]
    params += [reason.START, Metric.STARTED, Metric.DROPPED, reason.START, reason.DROPPED]
    params += [*entered_params, Metric.ABANDONED, outcome.ABANDONED, reason.DROPPED, *left_params]
    params += [Metric.ANSWER, Metric.REPLY, Metric.HANDLE, settings.TIME_ZONE]
    return sql, params


def raw_buckets(spans: Sequence[tuple[datetime, datetime]]) -> Iterator[Bucket]:
    """The histograms of the raw rows in `spans` (sorted, not overlapping), by day."""
    if not spans:
        return
    if _postgresql():
        sql, params = raw_sql(spans)
        with connections[router.db_for_read(Assignment)].cursor() as cursor:
            cursor.execute(sql, params)
            for row in cursor.fetchall():
                yield Bucket(*row)
        return
    yield from _python_buckets(spans)


def _python_buckets(spans: Sequence[tuple[datetime, datetime]]) -> Iterator[Bucket]:
    """The embedded default's SQLite: the rows in Python, bucketed as PostgreSQL does."""
    tz = periods.site_tz()
    counts: Counter[tuple[Any, ...]] = Counter()
    totals: dict[tuple[Any, ...], float] = {}

    def add(at: datetime, metric: str, dims: tuple[Any, ...], seconds: float | None) -> None:
        key = (timezone.localtime(at, tz).date(), metric, *dims)
        key += (None if seconds is None else bucket(seconds),)
        counts[key] += 1
        if seconds is not None:
            totals[key] = totals.get(key, 0.0) + seconds

    for at, reason, *dims in QueueEntry.objects.filter(
        periods.in_spans(spans, "entered_at"),
        reason__in=(QueueEntry.Reason.START, QueueEntry.Reason.DROPPED),
    ).values_list("entered_at", "reason", "tier_id", "stage_id", "stage__pipeline_id"):
        metric = Metric.STARTED if reason == QueueEntry.Reason.START else Metric.DROPPED
        add(at, metric, (*dims, None, None), None)
    row: Any
    for row in (
        QueueEntry.objects.filter(
            periods.in_spans(spans, "left_at"), outcome=QueueEntry.Outcome.ABANDONED
        )
        .exclude(reason=QueueEntry.Reason.DROPPED)
        .values_list("entered_at", "left_at", "tier_id", "stage_id", "stage__pipeline_id")
    ):
        entered, left, *dims = row
        add(left, Metric.ABANDONED, (*dims, None, None), (left - entered).total_seconds())
    taken = QueueEntry.objects.filter(
        chat_id=OuterRef("chat_id"),
        outcome=QueueEntry.Outcome.TAKEN,
        entered_at__lte=OuterRef("started_at"),
        left_at__gte=OuterRef("started_at"),
    ).order_by("-entered_at", "-pk")
    turns = Assignment.objects.filter(periods.in_spans(spans, "started_at")).annotate(
        answer=ExpressionWrapper(
            F("started_at") - Subquery(taken.values("entered_at")[:1]), DurationField()
        ),
        reply=ExpressionWrapper(F("replied_at") - F("started_at"), DurationField()),
        handle=ExpressionWrapper(F("ended_at") - F("started_at"), DurationField()),
    )
    for started, answer, reply, handle, *dims in turns.values_list(
        "started_at",
        "answer",
        "reply",
        "handle",
        "tier_id",
        "stage_id",
        "stage__pipeline_id",
        "group_id",
        "agent_id",
    ):
        # A turn that answered no wait (taken over in a warm hand-over, or handed to a colleague
        # who accepted) is no answer: the chat never waited for it.
        for metric, length in (
            (Metric.ANSWER, answer),
            (Metric.REPLY, reply),
            (Metric.HANDLE, handle),
        ):
            if length is not None:
                add(started, metric, tuple(dims), length.total_seconds())
    for key, n in counts.items():
        day, metric, tier_id, stage_id, pipeline_id, group_id, agent_id, seconds = key
        yield Bucket(
            day, metric, tier_id, stage_id, pipeline_id, group_id, agent_id, seconds, n,
            totals.get(key),
        )  # fmt: skip


def blocked_days(since: datetime, until: datetime) -> set[date]:
    """Days whose histograms are not final: a turn taken that day has not ended."""
    return set(
        Assignment.objects.filter(
            ended_at__isnull=True, started_at__gte=since, started_at__lt=until
        )
        .annotate(day=TruncDate("started_at", tzinfo=periods.site_tz()))
        .values_list("day", flat=True)
        .distinct()
    )


def write_summary(since: datetime, until: datetime) -> None:
    """Store the histograms of the raw rows from `since` to `until` (whole days; the caller has
    deleted what was there). PostgreSQL writes them from the query itself: a year on 200,000
    chats is about 150,000 rows, which cost seconds more as Python objects."""
    connection = connections[router.db_for_write(DailyDuration)]
    if connection.vendor != "postgresql":
        DailyDuration.objects.bulk_create(
            (
                DailyDuration(
                    day=b.day,
                    metric=b.metric,
                    tier_id=b.tier_id,
                    stage_id=b.stage_id,
                    pipeline_id=b.pipeline_id,
                    group_id=b.group_id,
                    agent_id=b.agent_id,
                    seconds=b.seconds,
                    n=b.n,
                    seconds_total=b.seconds_total,
                )
                for b in _python_buckets([(since, until)])
            ),
            batch_size=2000,
        )
        return
    sql, params = raw_sql([(since, until)])
    table = DailyDuration._meta.db_table
    columns = (
        "day, metric, tier_id, stage_id, pipeline_id, group_id, agent_id, seconds, n, seconds_total"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({columns}) {sql}", params)


def summary_buckets(days: Sequence[tuple[date, date]]) -> Iterator[Bucket]:
    """The summarised histograms of the day runs `days`."""
    rows = DailyDuration.objects.filter(periods.in_days(days)).values_list(
        "day",
        "metric",
        "tier_id",
        "stage_id",
        "pipeline_id",
        "group_id",
        "agent_id",
        "seconds",
        "n",
        "seconds_total",
    )
    for row in rows.iterator(chunk_size=5000):
        yield Bucket(*row)


def percentile(histogram: dict[int, int], fraction: float) -> float | None:
    """percentile_cont of the durations counted in `histogram` (bucket → how many)."""
    n = sum(histogram.values())
    if n == 0:
        return None
    low_rank, high_rank = ranks(fraction, n)
    low = high = None
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if low is None and seen > low_rank:
            low = value
        if seen > high_rank:
            high = value
            break
    if low is None or high is None:  # (cannot happen: n > 0)
        return None
    return between(low, high, fraction, n)


def ranks(fraction: float, n: int) -> tuple[int, int]:
    """The two ranks (from 0) percentile_cont reads among `n` ordered values."""
    position = fraction * (n - 1)
    return math.floor(position), math.ceil(position)


def between(low: float, high: float, fraction: float, n: int) -> float:
    """percentile_cont's value from its two ranked values: linear between them, with
    PostgreSQL's arithmetic (in doubles)."""
    position = fraction * (n - 1)
    return low + (position - math.floor(position)) * (high - low)
