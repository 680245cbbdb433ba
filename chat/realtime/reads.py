"""Several reads in one round trip to the database, on the hot path without the ORM.

A read is a `values_list` queryset (built only when it runs through the ORM), what to make of
its rows, and, for the message writer's reads, the same query in PostgreSQL's SQL with array
parameters, so that its text never changes. On PostgreSQL `run_together` sends a batch of reads
at once in psycopg's pipeline mode and takes the results back at once: one round trip instead of
one each, and no queryset built or compiled. Elsewhere (SQLite, the embedded default) the
querysets run one after another.

Why: the writer (chat.realtime.writer) runs on its own thread and reads four or five things
before each batch it writes. Measured on 30 Nov 2026 at 200 msg/s (docs/performance.md), building
and compiling those querysets cost 7.9 ms of the writer's CPU per batch, out of 11.7, and each
round trip ends with the writer waiting for the GIL while the event loop holds it. A read's SQL is
checked against its queryset, row for row, in tests/escalation/test_reads.py.
"""

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import psycopg
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet
from django.db.models.query import ValuesListIterable

Row = tuple[Any, ...]
Query = Callable[[], "QuerySet[Any, Any]"]


@dataclass(frozen=True, slots=True)
class Read[T]:
    """`query` makes the queryset (a `values_list` that is not flat; None: nothing to read),
    `build` turns its rows into the result. `sql` and `params`, when given, are the same read
    for PostgreSQL, used there instead of the queryset."""

    query: Query | None
    build: Callable[[list[Row]], T]
    sql: str = ""
    params: Sequence[Any] = ()
    using: str = "default"

    def run(self) -> T:
        result: T = run_together([self])[0]
        return result

    def run_orm(self) -> T:
        """Through the queryset, whatever the database (what `sql` is checked against)."""
        if self.query is None:
            return self.build([])
        queryset = self.query()
        if queryset._iterable_class is not ValuesListIterable:
            raise TypeError("a Read's query is a values_list() queryset that is not flat")
        return self.build(list(queryset))


def columns(model: Any, attnames: Sequence[str], alias: str = "") -> str:
    """The SQL column list of these fields of `model`, in this order, quoted (for a Read's
    `sql`, whose names come from the models)."""
    prefix = f'"{alias}".' if alias else ""
    return ", ".join(f'{prefix}"{model._meta.get_field(name).column}"' for name in attnames)


def table(model: Any) -> str:
    return f'"{model._meta.db_table}"'


def _on_postgresql(alias: str) -> bool:
    return bool(connections[alias].vendor == "postgresql")


def run_together(reads: Sequence[Read[Any]]) -> list[Any]:
    """The results of these reads, in order. On PostgreSQL the queries go out in one pipeline
    (in the caller's transaction, in order, so row locks are taken in the order given); a query
    that fails raises as it would alone."""
    aliases = {read.using for read in reads if read.query is not None}
    if len(aliases) != 1 or not _on_postgresql(next(iter(aliases))):
        return [read.run_orm() for read in reads]
    connection = connections[aliases.pop()]
    statements: list[tuple[str, Sequence[Any], Any] | None] = []
    for read in reads:
        if read.query is None:
            statements.append(None)
        elif read.sql:
            statements.append((read.sql, read.params, None))
        else:
            compiler = read.query().query.get_compiler(using=read.using)
            try:
                sql, params = compiler.as_sql()
            except EmptyResultSet:  # e.g. `pk__in=[]`: the ORM would not ask either
                statements.append(None)
                continue
            statements.append((sql, params, compiler))
    with connection.cursor() as wrapper:  # a connection and its health check, as any read
        raw = wrapper.cursor.connection
    cursors: list[Any] = []
    several = sum(statement is not None for statement in statements) > 1
    with connection.wrap_database_errors, raw.pipeline() if several else nullcontext():
        for statement in statements:
            cursor = None
            if statement is not None:
                # Our SQL with server-side binding (constant text: PostgreSQL prepares it after
                # a few runs); the ORM's as Django runs it.
                cursor = raw.cursor() if statement[2] is not None else psycopg.Cursor(raw)
                cursor.execute(statement[0], statement[1])
            cursors.append(cursor)
    results: list[Any] = []
    for read, statement, cursor in zip(reads, statements, cursors, strict=True):
        if statement is None or cursor is None:
            results.append(read.build([]))
            continue
        with connection.wrap_database_errors:
            rows: list[Row] = cursor.fetchall()
        cursor.close()
        compiler = statement[2]
        if compiler is not None:
            rows = _as_the_orm_would(compiler, rows)
        results.append(read.build(rows))
    return results


def _as_the_orm_would(compiler: Any, rows: list[Row]) -> list[Row]:
    if compiler.has_extra_select:  # ORDER BY columns that DISTINCT needs selected: not ours
        rows = [row[: compiler.col_count] for row in rows]
    converters = compiler.get_converters(
        [column[0] for column in compiler.select[: compiler.col_count]]
    )
    if converters:
        rows = [tuple(row) for row in compiler.apply_converters(rows, converters)]
    return rows
