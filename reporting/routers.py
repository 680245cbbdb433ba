"""Report reads on a PostgreSQL read replica (REPORTS_DATABASE_URL), everything else on the primary.

The reports are the only heavy reads and may lag the primary by a few seconds, so only code that
runs inside `report_reads()` (the report pages, their CSV streams and the reports API) is routed
to the `reports` alias; the console, the consumers and every write stay on `default`, which must
see its own writes at once. Without REPORTS_DATABASE_URL there is no `reports` alias and the router
sends nothing anywhere else.
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

REPORTS_DB = "reports"

_reading_reports: ContextVar[bool] = ContextVar("tierline_reading_reports", default=False)


def reports_alias() -> str:
    """Where report reads go now: the replica if one is configured, else the primary."""
    return REPORTS_DB if REPORTS_DB in settings.DATABASES else DEFAULT_DB_ALIAS


@contextmanager
def report_reads() -> Iterator[None]:
    token = _reading_reports.set(True)
    try:
        yield
    finally:
        _reading_reports.reset(token)


def stream_report_reads(chunks: Iterable[Any]) -> Iterator[Any]:
    """A streamed response's chunks, each produced inside `report_reads()`: the stream runs after
    the view has returned (and on whatever thread the server picks), so the flag is set around
    every step of it, not once."""
    iterator = iter(chunks)
    while True:
        with report_reads():
            try:
                chunk = next(iterator)
            except StopIteration:
                return
        yield chunk


class ReportsReplicaRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        if _reading_reports.get() and REPORTS_DB in settings.DATABASES:
            return REPORTS_DB
        return None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return None  # always the primary

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return True  # the replica holds the same rows as the primary

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return db != REPORTS_DB  # the replica follows the primary; never migrate it
