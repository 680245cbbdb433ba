"""The friction report: where chats stall on their way to an agent and with one. Read-only; the
definitions are part of the product (docs/reports.md).

A chat waits in a queue once when it starts and again after every escalation, fallback, return
to the queue or move to a drop stage: each wait is a queue entry, counted at the tier and stage
it waited for (an escalated chat's second wait belongs to the receiving tier). Each figure is
counted in the period where its moment falls, in days of the site's time zone:

- *Chats started*: waits that began a chat, at their start.
- *Answered*: an agent took a waiting chat (one assignment), at the take. *Speed to answer*: from
  that wait's start (entering this queue, not the chat's start) to the take.
- *Abandoned*: the visitor left while waiting, at the leaving, with how long it had waited. A
  wait at a drop stage is not counted again: its visitor had left already.
- *Dropped*: waits at a drop stage (the visitor left a queue whose stage sends such chats on), at
  the drop: these are also counted as abandoned where the visitor left.
- *First response*: from the take to the agent's first visitor-visible message in that turn
  (Assignment.replied_at), for the chats answered in the period. A turn without one (the agent
  had replied in an earlier turn of the chat, or never did) has no first response.
- *Handle time*: from the take to the end of the turn (resolved, escalated, returned, ...), for
  the chats answered in the period whose turn has ended; the total is their sum.

Medians and 90th percentiles are exact (percentile_cont), each over the rows that have the
measure. The tier table shows every tier, to compare them; the tier filter chooses the tier of
everything else. The group and agent filters narrow the answers; abandoned and dropped waits
belong to no agent, and a stage's queue is shared by its groups, so they are by tier and stage
only, as are chats started.
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from django.db import connections, transaction
from django.db.models import (
    BooleanField,
    DurationField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import TruncDate

from escalation.models import Agent, AgentGroup, Assignment, QueueEntry, Stage, Tier
from reporting.selectors import ReportFilter, _percentiles

BREAKDOWNS = ("tier", "stage", "group", "agent")
DAY_SERIES = ("started", "answered", "abandoned")  # the chart per day
ANSWER_ONLY = ("group", "agent")  # the breakdowns without queue figures (see above)
ANSWER_FIELDS = ("tier_id", "stage_id", "group_id", "agent_id")  # an answer's breakdowns
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


@dataclass(frozen=True)
class Measure:
    """One figure of a source's rows: a count (of the rows, of those where `column` is set, or
    of those whose `where` column has a value), the [median, 90th percentile] of a duration
    `column` in seconds, or its sum."""

    name: str
    op: Literal["count", "cuts", "sum"]
    column: str | None = None
    where: tuple[str, str] | None = None


@dataclass(frozen=True)
class Source:
    rows: QuerySet[Any]
    dimensions: tuple[str, ...]
    measures: tuple[Measure, ...]
    # PostgreSQL: a query around the rows' SQL ("{rows}"), with its own values after the rows'
    # (the answers join their waits there).
    sql: str = "{rows}"
    sql_params: tuple[Any, ...] = ()


def _scoped(rows: QuerySet[Any], f: ReportFilter, moment: str) -> QuerySet[Any]:
    """The period, the pipeline filter, the day of `moment` and whether the row is at the
    report's tier (the tier table alone shows the others)."""
    rows = rows.filter(**{f"{moment}__gte": f.since, f"{moment}__lt": f.until})
    if f.pipeline_id:
        rows = rows.filter(stage__pipeline_id=f.pipeline_id)
    scoped: QuerySet[Any] = rows.annotate(
        day=TruncDate(moment, tzinfo=f.site_tz),
        in_tier=ExpressionWrapper(Q(tier_id__in=f.tier_ids), output_field=BooleanField()),
    )
    return scoped


def _waits(f: ReportFilter) -> Source:
    rows = _scoped(
        QueueEntry.objects.filter(reason__in=(QueueEntry.Reason.START, QueueEntry.Reason.DROPPED)),
        f,
        "entered_at",
    )
    return Source(
        rows.values("tier_id", "stage_id", "day", "in_tier", "reason"),
        ("tier", "stage", "day"),
        (
            Measure("started", "count", where=("reason", QueueEntry.Reason.START)),
            Measure("dropped", "count", where=("reason", QueueEntry.Reason.DROPPED)),
        ),
    )


def _abandons(f: ReportFilter) -> Source:
    rows = _scoped(
        QueueEntry.objects.filter(outcome=QueueEntry.Outcome.ABANDONED).exclude(
            reason=QueueEntry.Reason.DROPPED
        ),
        f,
        "left_at",
    ).annotate(waited=ExpressionWrapper(F("left_at") - F("entered_at"), DurationField()))
    return Source(
        rows.values("tier_id", "stage_id", "day", "in_tier", "waited"),
        ("tier", "stage", "day"),
        (
            Measure("abandoned", "count"),
            Measure("abandoned_cuts", "cuts", "waited"),
        ),
    )


# The wait an assignment answered: its chat's queue entry that was taken at the assignment's
# start (both are written in one transaction, the entry's left_at a moment after started_at).
# PostgreSQL joins them in one pass; elsewhere a subquery per assignment finds it.
ANSWERS_SQL = """
    SELECT DISTINCT ON (a.id) a.tier_id, a.stage_id, a.group_id, a.agent_id, a.in_tier,
           a.started_at - e.entered_at AS answer,
           a.replied_at - a.started_at AS reply,
           a.ended_at - a.started_at AS handle
    FROM ({rows}) AS a
    LEFT JOIN %(entries)s AS e
      ON e.chat_id = a.chat_id AND e.outcome = 'taken' AND e.entered_at <= a.started_at
     AND e.left_at >= a.started_at AND e.left_at >= %%s
    ORDER BY a.id, e.entered_at DESC, e.id DESC
"""


def _turns(f: ReportFilter) -> QuerySet[Any]:
    """The assignments that began in the period: one per take (the group and agent filters
    narrow them)."""
    rows = _scoped(Assignment.objects.all(), f, "started_at")
    if f.group_id:
        rows = rows.filter(group_id=f.group_id)
    if f.agent_id:
        rows = rows.filter(agent_id=f.agent_id)
    return rows


def _answers(f: ReportFilter, *, postgresql: bool) -> Source:
    rows = _turns(f)
    measures = (
        Measure("answered", "count"),
        Measure("answer_cuts", "cuts", "answer"),
        Measure("replied", "count", "reply"),
        Measure("reply_cuts", "cuts", "reply"),
        Measure("handled", "count", "handle"),
        Measure("handle_cuts", "cuts", "handle"),
        Measure("handle_total", "sum", "handle"),
    )
    dimensions = ("tier", "stage", "group", "agent")  # the days only count: _answers_per_day
    if postgresql:
        columns = ("id", "chat_id", "started_at", "replied_at", "ended_at")
        sql = ANSWERS_SQL % {"entries": QueueEntry._meta.db_table}
        return Source(
            rows.values(*ANSWER_FIELDS, "in_tier", *columns),
            dimensions,
            measures,
            sql,
            (f.since,),
        )
    taken = QueueEntry.objects.filter(
        chat_id=OuterRef("chat_id"),
        outcome=QueueEntry.Outcome.TAKEN,
        entered_at__lte=OuterRef("started_at"),
        left_at__gte=OuterRef("started_at"),
    ).order_by("-entered_at", "-pk")
    rows = rows.annotate(
        answer=ExpressionWrapper(
            F("started_at") - Subquery(taken.values("entered_at")[:1]), DurationField()
        ),
        reply=ExpressionWrapper(F("replied_at") - F("started_at"), DurationField()),
        handle=ExpressionWrapper(F("ended_at") - F("started_at"), DurationField()),
    )
    return Source(
        rows.values(*ANSWER_FIELDS, "in_tier", "answer", "reply", "handle"), dimensions, measures
    )


def _answers_per_day(f: ReportFilter) -> Source:
    """The chart's answers: a count per day, without the percentiles of the answers' pass (each
    grouping there sorts every duration again)."""
    return Source(_turns(f).values("day", "in_tier"), ("day",), (Measure("answered", "count"),))


# --- Grouping: every breakdown of a source at once -------------------------------------------

Key = tuple[str, Any]  # ("total", None), ("tier", 3), ("day", date(...)), ...


def _in_scope(dimension: str, in_tier: bool) -> bool:
    """The tier table has every tier; the total and the other breakdowns the report's tier."""
    return in_tier or dimension == "tier"


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _figures(measures: Sequence[Measure], rows: list[dict[str, Any]]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for m in measures:
        if m.op == "count":
            figures[m.name] = sum(
                1
                for r in rows
                if (m.where is None or r[m.where[0]] == m.where[1])
                and (m.column is None or r[m.column] is not None)
            )
            continue
        column = m.column or ""
        seconds = sorted(_seconds(r[column]) for r in rows if r[column] is not None)
        if m.op == "cuts":
            figures[m.name] = list(_percentiles(seconds))
        else:
            figures[m.name] = sum(seconds) if seconds else None
    return figures


def _grouped_in_python(source: Source) -> dict[Key, dict[str, Any]]:
    """The embedded default's SQLite: the rows in Python, the same figures as PostgreSQL's."""
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for row in source.rows:
        for dimension in ("total", *source.dimensions):
            if _in_scope(dimension, row["in_tier"]):
                key = (dimension, None if dimension == "total" else row[_field(dimension)])
                groups[key].append(row)
    return {key: _figures(source.measures, rows) for key, rows in groups.items()}


def _field(dimension: str) -> str:
    return "day" if dimension == "day" else f"{dimension}_id"


def _grouped_in_postgresql(source: Source) -> dict[Key, dict[str, Any]]:
    """One pass over the rows: GROUPING SETS give the total and every breakdown together."""
    rows_sql, params = source.rows.query.sql_with_params()
    inner = source.sql.replace("{rows}", rows_sql)
    inner_params = [*params, *source.sql_params]
    columns = [_field(d) for d in source.dimensions]
    bits = {d: 1 << (len(source.dimensions) - 1 - i) for i, d in enumerate(source.dimensions)}
    every = sum(bits.values())
    selects, select_params = [], []
    for m in source.measures:
        # date_part gives a double at once; EXTRACT a numeric, several times slower to sort.
        epoch = f"date_part('epoch', {m.column})" if m.column else ""
        if m.op == "count":
            expression = f"count({m.column or '*'})"
            if m.where is not None:
                expression += f" FILTER (WHERE {m.where[0]} = %s)"
                select_params.append(m.where[1])
        elif m.op == "cuts":
            expression = f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {epoch})"
        else:
            expression = f"date_part('epoch', sum({m.column}))"
        selects.append(expression)
    groupings = ", ".join(
        [
            "(in_tier)",
            *(f"(in_tier, {c})" for c in columns if c != "tier_id"),
            *(["(tier_id)"] if "tier_id" in columns else []),
        ]
    )
    sql = (
        f"SELECT GROUPING({', '.join(columns)}), in_tier, {', '.join(columns)}, "  # noqa: S608 - column names are ours; values are bound
        f"{', '.join(selects)} FROM ({inner}) AS source GROUP BY GROUPING SETS ({groupings})"
    )
    connection = connections[source.rows.db]  # the reports replica where there is one
    with transaction.atomic(using=source.rows.db), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '64MB'")  # a year of durations sorts in memory
        cursor.execute(sql, [*select_params, *inner_params])
        fetched = cursor.fetchall()
    result: dict[Key, dict[str, Any]] = {}
    for grouping, in_tier, *rest in fetched:
        keys, figures = rest[: len(columns)], rest[len(columns) :]
        if grouping == every:
            if not in_tier:
                continue  # the other tiers' rows together: only the tier table has them
            key: Key = ("total", None)
        else:
            dimension = next(d for d in source.dimensions if grouping == every - bits[d])
            if not _in_scope(dimension, bool(in_tier)):
                continue
            key = (dimension, keys[source.dimensions.index(dimension)])
        result[key] = {
            m.name: (list(value) if m.op == "cuts" and value else value)
            for m, value in zip(source.measures, figures, strict=True)
        }
    return result


def _grouped(source: Source) -> dict[Key, dict[str, Any]]:
    if connections[source.rows.db].vendor == "postgresql":
        return _grouped_in_postgresql(source)
    return _grouped_in_python(source)


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
    postgresql = connections[Assignment.objects.all().db].vendor == "postgresql"
    grouped: dict[Key, dict[str, Any]] = defaultdict(dict)
    sources = (_waits(f), _abandons(f), _answers(f, postgresql=postgresql), _answers_per_day(f))
    for source in sources:
        for key, figures in _grouped(source).items():
            grouped[key].update(figures)
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
