"""The friction report: where chats stall on their way to an agent and with one. Read-only; the
definitions are part of the product (docs/reports.md).

A chat waits in a queue once when it starts and again after every escalation, fallback, return
to the queue or move to a drop stage: each wait is a queue entry, counted at the tier and stage
it waited for (an escalated chat's second wait belongs to the receiving tier). Each figure is
counted in the period where its moment falls, in days of the site's time zone:

- *Chats started*: waits that began a chat, at their start.
- *Answered*: an agent took a waiting chat (one assignment), at the take. *Speed to answer*: from
  that wait's start (entering this queue, not the chat's start) to the take. A turn that began
  without a wait (a receiver taking over in a warm hand-over, a colleague accepting a chat handed
  to them) answered nothing; its first response and handle time count like any turn's.
- *Abandoned*: the visitor left while waiting, at the leaving, with how long it had waited. A
  wait at a drop stage is not counted again: its visitor had left already.
- *Dropped*: waits at a drop stage (the visitor left a queue whose stage sends such chats on), at
  the drop: these are also counted as abandoned where the visitor left.
- *First response*: from the take to the agent's first visitor-visible message in that turn
  (Assignment.replied_at), for the chats answered in the period. A turn without one (the agent
  had replied in an earlier turn of the chat, or never did) has no first response.
- *Handle time*: from the take to the end of the turn (resolved, escalated, returned, ...), for
  the chats answered in the period whose turn has ended; the total is their sum.

Medians and 90th percentiles are percentile_cont's, each over the rows that have the measure,
read from per-day duration histograms (reporting/durations.py: the bucketing and its error bound,
at most 0.5 s under an hour and 30 s above). The tier table shows every tier, to compare them;
the tier filter chooses the tier of everything else. The group and agent filters narrow the
answers; abandoned and dropped waits belong to no agent, and a stage's queue is shared by its
groups, so they are by tier and stage only, as are chats started.
"""

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

from django.db import connections, router, transaction

from escalation.models import Agent, AgentGroup, Stage, Tier
from reporting import durations, periods
from reporting.models import DailyDuration
from reporting.selectors import ReportFilter

BREAKDOWNS = ("tier", "stage", "group", "agent")
DAY_SERIES = ("started", "answered", "abandoned")  # the chart per day
ANSWER_ONLY = ("group", "agent")  # the breakdowns without queue figures (see above)
QUEUE_FIGURES = ("started", "abandoned", "abandoned_median", "abandoned_p90", "dropped")
ANSWER_FIGURES = (
    "answered",
    "answer_median",
    "answer_p90",
    "replied",
    "reply_median",
    "reply_p90",
    "handled",
    "handle_median",
    "handle_p90",
    "handle_total",
)
FIGURES = QUEUE_FIGURES + ANSWER_FIGURES
CSV_HEADER = [
    "breakdown",
    "name",
    "chats_started",
    "abandoned",
    "abandoned_wait_median_seconds",
    "abandoned_wait_p90_seconds",
    "dropped",
    "answered",
    "speed_to_answer_median_seconds",
    "speed_to_answer_p90_seconds",
    "first_responses",
    "first_response_median_seconds",
    "first_response_p90_seconds",
    "handled",
    "handle_time_median_seconds",
    "handle_time_p90_seconds",
    "handle_time_total_seconds",
]


# --- Grouping: every breakdown of the merged histograms at once ------------------------------

Key = tuple[str, Any]  # ("total", None), ("tier", 3), ("day", date(...)), ...
PERCENTILES = (0.5, 0.9)
# GROUPING(tier_id, stage_id, group_id, agent_id, day) of each grouping set: a bit is set for
# each column the set leaves out (the day is never in them).
GROUPING_SETS = {
    "(metric, in_tier, seconds)": (31, "total"),
    "(metric, tier_id, seconds)": (15, "tier"),
    "(metric, in_tier, stage_id, seconds)": (23, "stage"),
    "(metric, in_tier, group_id, seconds)": (27, "group"),
    "(metric, in_tier, agent_id, seconds)": (29, "agent"),
}
PER_DAY = 30  # the same bits for the chart's counts per day


def _in_scope(dimension: str, metric: str, in_tier: bool) -> bool:
    """The tier table has every tier; the total and the other breakdowns the report's tier.
    A queue's waits belong to no group or agent; the chart counts three series."""
    if dimension in ANSWER_ONLY and metric in durations.QUEUE_METRICS:
        return False
    if dimension == "day" and metric not in DAY_METRICS:
        return False
    return in_tier or dimension == "tier"


def _figures(metric: str, n: int, total: float | None, cuts: list[float | None]) -> dict[str, Any]:
    count, stem = METRIC_FIGURES[metric]
    figures: dict[str, Any] = {count: n}
    if stem:
        figures[f"{stem}_cuts"] = cuts
    if metric == durations.Metric.HANDLE:
        figures["handle_total"] = total
    return figures


METRIC_FIGURES: dict[str, tuple[str, str | None]] = {  # metric: (its count, its cuts' stem)
    durations.Metric.STARTED: ("started", None),
    durations.Metric.DROPPED: ("dropped", None),
    durations.Metric.ABANDONED: ("abandoned", "abandoned"),
    durations.Metric.ANSWER: ("answered", "answer"),
    durations.Metric.REPLY: ("replied", "reply"),
    durations.Metric.HANDLE: ("handled", "handle"),
}
DAY_METRICS = (durations.Metric.STARTED, durations.Metric.ANSWER, durations.Metric.ABANDONED)


def _wanted(b: durations.Bucket, f: ReportFilter) -> bool:
    """The pipeline filter narrows everything; the group and agent filters the answers."""
    if f.pipeline_id and b.pipeline_id != f.pipeline_id:
        return False
    if b.metric in durations.QUEUE_METRICS:
        return True
    return (not f.group_id or b.group_id == f.group_id) and (
        not f.agent_id or b.agent_id == f.agent_id
    )


def _grouped_in_python(
    f: ReportFilter, buckets: Iterable[durations.Bucket]
) -> dict[Key, dict[str, Any]]:
    """The embedded default's SQLite: the histograms merged in Python, the same figures as
    PostgreSQL's."""
    tier_ids = set(f.tier_ids)
    histograms: dict[tuple[Key, str], Counter[int]] = defaultdict(Counter)
    counts: Counter[tuple[Key, str]] = Counter()
    totals: dict[tuple[Key, str], float] = defaultdict(float)
    for b in buckets:
        if not _wanted(b, f):
            continue
        in_tier = b.tier_id in tier_ids
        for dimension in ("total", *BREAKDOWNS, "day"):
            if not _in_scope(dimension, b.metric, in_tier):
                continue
            id_ = None if dimension == "total" else getattr(b, _field(dimension))
            slot = ((dimension, id_), b.metric)
            counts[slot] += b.n
            if b.seconds is not None:
                histograms[slot][b.seconds] += b.n
                totals[slot] += b.seconds_total or 0.0
    result: dict[Key, dict[str, Any]] = defaultdict(dict)
    for (key, metric), n in counts.items():
        histogram = histograms.get((key, metric), Counter())
        cuts = [durations.percentile(histogram, p) for p in PERCENTILES] if histogram else []
        total = totals[(key, metric)] if histogram else None
        result[key].update(_figures(metric, n, total, cuts))
    return result


def _field(dimension: str) -> str:
    return "day" if dimension == "day" else f"{dimension}_id"


def _grouped_in_postgresql(
    f: ReportFilter,
    done: list[tuple[date, date]],
    spans: list[tuple[datetime, datetime]],
) -> dict[Key, dict[str, Any]]:
    """One query: the summarised histograms and the raw rows' together, added up over the days
    first (a year is a row per day, agent and bucket; once the days are gone a few thousand are
    left) in the same pass as the chart's counts per day, then every breakdown at once
    (GROUPING SETS), and each group's percentiles read from its cumulative counts."""
    dims = "day, metric, tier_id, stage_id, pipeline_id, group_id, agent_id, seconds"
    parts: list[str] = []
    params: list[Any] = []
    if done:
        table, days = (
            DailyDuration._meta.db_table,
            " OR ".join("(day BETWEEN %s AND %s)" for _ in done),
        )
        parts.append(
            f"SELECT {dims}, n, seconds_total FROM {table} WHERE {days}"  # noqa: S608 - names ours, values bound
        )
        params += [day for run in done for day in run]
    if spans:
        raw, raw_params = durations.raw_sql(spans)
        parts.append(f"SELECT * FROM ({raw}) AS raw")  # noqa: S608 - our SQL; values bound
        params += raw_params
    narrow: list[str] = ["TRUE"]
    narrow_params: list[Any] = []
    if f.pipeline_id:
        narrow.append("pipeline_id = %s")
        narrow_params.append(f.pipeline_id)
    queue = ", ".join(["%s"] * len(durations.QUEUE_METRICS))
    answers = [f"metric IN ({queue})"]  # the queue's figures: not narrowed by group or agent
    narrow_params += durations.QUEUE_METRICS
    answers += ["group_id = %s"] * bool(f.group_id) + ["agent_id = %s"] * bool(f.agent_id)
    narrow_params += [value for value in (f.group_id, f.agent_id) if value]
    narrow.append(f"({answers[0]} OR ({' AND '.join(['TRUE', *answers[1:]])}))")
    keys = "grouping, in_tier, metric, tier_id, stage_id, group_id, agent_id, day"
    rank = "floor(%s::float8 * (valued - 1)::float8)"
    picks = []
    for _ in PERCENTILES:
        picks.append(f"min(seconds) FILTER (WHERE upto > {rank})")
        picks.append(f"min(seconds) FILTER (WHERE upto > {rank.replace('floor', 'ceil')})")
    sql = f"""
        WITH merged ({dims}, n, total) AS ({" UNION ALL ".join(parts)}),
        narrowed AS (
          SELECT *, tier_id = ANY(%s) AS in_tier FROM merged WHERE {" AND ".join(narrow)}
        ),
        collapsed AS (
          SELECT GROUPING(day) AS all_days, metric, in_tier, tier_id, stage_id, group_id,
                 agent_id, day, seconds, sum(n) AS n, sum(total) AS total
          FROM narrowed GROUP BY GROUPING SETS (
            (metric, in_tier, tier_id, stage_id, group_id, agent_id, seconds),
            (metric, in_tier, day)
          )
        ),
        grouped AS (
          SELECT GROUPING(tier_id, stage_id, group_id, agent_id) * 2 + 1 AS grouping, in_tier,
                 metric, tier_id, stage_id, group_id, agent_id, NULL::date AS day, seconds,
                 sum(n) AS n, sum(total) AS total
          FROM collapsed WHERE all_days = 1 GROUP BY GROUPING SETS ({", ".join(GROUPING_SETS)})
          UNION ALL
          SELECT {PER_DAY}, in_tier, metric, NULL, NULL, NULL, NULL, day, NULL, n, NULL
          FROM collapsed
          WHERE all_days = 0 AND in_tier AND metric IN ({", ".join(["%s"] * len(DAY_METRICS))})
        ),
        ranked AS (
          SELECT grouped.*,
                 sum(n) FILTER (WHERE seconds IS NOT NULL) OVER (PARTITION BY {keys}) AS valued,
                 sum(n) FILTER (WHERE seconds IS NOT NULL)
                   OVER (PARTITION BY {keys} ORDER BY seconds) AS upto
          FROM grouped
        )
        SELECT {keys}, sum(n), sum(total) FILTER (WHERE seconds IS NOT NULL), max(valued),
               {", ".join(picks)}
        FROM ranked GROUP BY {keys}
    """  # noqa: S608 - table and column names are ours; every value is bound
    pick_params = [p for p in PERCENTILES for _ in range(2)]
    connection = connections[router.db_for_read(DailyDuration)]  # the reports replica if any
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        # A period never summarised (or a rebuild in progress) groups a year of raw rows.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(sql, [*params, f.tier_ids, *narrow_params, *DAY_METRICS, *pick_params])
        fetched = cursor.fetchall()
    dimensions = {**dict(GROUPING_SETS.values()), PER_DAY: "day"}
    result: dict[Key, dict[str, Any]] = defaultdict(dict)
    for row in fetched:
        grouping, in_tier, metric, *ids, day = row[:8]
        n, total, valued, *picks_found = row[8:]
        dimension = dimensions[grouping]
        if not _in_scope(dimension, metric, bool(in_tier)):
            continue
        if dimension == "total":
            key: Key = ("total", None)
        elif dimension == "day":
            key = ("day", day)
        else:
            key = (dimension, ids[BREAKDOWNS.index(dimension)])
        cuts: list[float | None] = []
        if valued:
            lows_and_highs = iter(picks_found)
            for p, low, high in zip(PERCENTILES, lows_and_highs, lows_and_highs, strict=True):
                cuts.append(durations.between(low, high, p, int(valued)))
        result[key].update(_figures(metric, int(n), total, cuts))
    return result


def _grouped(f: ReportFilter) -> dict[Key, dict[str, Any]]:
    """The figures of every breakdown: the summarised days from their histograms, the others
    from the raw rows, bucketed alike."""
    done = periods.summarised_days(f.start, f.end, with_durations=True)
    raw_days = set(f.days()) - done
    spans = [periods.day_bounds(a, b, f.site_tz) for a, b in periods.runs(raw_days)]
    if connections[router.db_for_read(DailyDuration)].vendor == "postgresql":
        return _grouped_in_postgresql(f, list(periods.runs(done)), spans)
    buckets = itertools.chain(
        durations.summary_buckets(list(periods.runs(done))) if done else (),
        durations.raw_buckets(spans),
    )
    return _grouped_in_python(f, buckets)


# --- The report ----------------------------------------------------------------------------


def _empty_row(label: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(FIGURES)
    row.update(label=label, started=0, abandoned=0, dropped=0, answered=0, replied=0, handled=0)
    return row


def _fill(row: dict[str, Any], figures: dict[str, Any]) -> None:
    for name, value in figures.items():
        if name.endswith("_cuts"):
            stem = name.removesuffix("_cuts")
            row[f"{stem}_median"], row[f"{stem}_p90"] = value or (None, None)
        else:
            row[name] = value


def _labels(breakdown: str, ids: Iterable[Any]) -> dict[Any, tuple[Any, str]]:
    """id -> (sort key, label) for the rows of one breakdown."""
    wanted = [i for i in ids if i is not None]
    if breakdown == "tier":
        return {t.pk: ((t.level,), t.name) for t in Tier.objects.filter(pk__in=wanted)}
    if breakdown == "stage":
        return {
            s.pk: ((s.pipeline.name, s.position, s.name), f"{s.pipeline.name} › {s.name}")
            for s in Stage.objects.filter(pk__in=wanted).select_related("pipeline")
        }
    if breakdown == "group":
        return {g.pk: ((g.name,), g.name) for g in AgentGroup.objects.filter(pk__in=wanted)}
    return {a.pk: ((a.display_name,), a.display_name) for a in Agent.objects.filter(pk__in=wanted)}


def friction(f: ReportFilter) -> dict[str, Any]:
    """The totals at the report's tier, a table per breakdown and the days of the period."""
    grouped = _grouped(f)
    totals = _empty_row("All")
    _fill(totals, grouped.get(("total", None), {}))
    tables: dict[str, list[dict[str, Any]]] = {}
    for breakdown in BREAKDOWNS:
        ids = [key[1] for key in grouped if key[0] == breakdown]
        labels = _labels(breakdown, ids)
        rows = []
        for i in ids:
            sort, label = labels.get(i, ((), "(no group)" if i is None else "(deleted)"))
            row = _empty_row(label)
            _fill(row, grouped[(breakdown, i)])
            if breakdown in ANSWER_ONLY:
                row.update(dict.fromkeys(QUEUE_FIGURES))
            rows.append((sort == (), sort, label, row))
        tables[breakdown] = [row for *_, row in sorted(rows, key=lambda r: r[:3])]
    days = []
    for day in f.days():
        figures = grouped.get(("day", day), {})
        days.append(
            {
                "day": day,
                "started": figures.get("started", 0),
                "answered": figures.get("answered", 0),
                "abandoned": figures.get("abandoned", 0),
            }
        )
    return {"totals": totals, "tables": tables, "days": days}


def csv_rows(report: dict[str, Any], breakdowns: Sequence[str]) -> Iterator[list[Any]]:
    """The totals, each breakdown's rows and the days, as the page shows them."""
    yield _csv_row("total", "All", report["totals"])
    for breakdown in breakdowns:
        for row in report["tables"][breakdown]:
            yield _csv_row(breakdown, row["label"], row)
    for day in report["days"]:
        yield _csv_row("day", day["day"].isoformat(), day)


def _csv_row(kind: str, name: str, row: dict[str, Any]) -> list[Any]:
    values: list[Any] = [kind, name]
    for figure in FIGURES:
        value = row.get(figure)
        values.append(f"{value:.0f}" if isinstance(value, float) else value)
    return values
