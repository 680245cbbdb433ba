"""The database flush between transactional tests, made to survive a deadlock.

The e2e and browser tests keep one daphne and one Celery worker running across a module's tests
while pytest-django empties the database after each test with one TRUNCATE of every table. A
server that is still finishing a transaction of its own (a console closed by the browser's
teardown, an offer timer) can hold a table the TRUNCATE has yet to lock while waiting for one it
has locked: PostgreSQL then aborts one of the two. When the flush is the one aborted, it is run
again, a few times, once the server's transaction has gone.
"""

from collections.abc import Callable
from typing import Any

import psycopg.errors
from django.db import OperationalError

ATTEMPTS = 5


def is_deadlock(exc: BaseException) -> bool:
    return isinstance(exc.__cause__, psycopg.errors.DeadlockDetected)


def retrying_deadlocks(
    execute_sql_flush: Callable[[Any, list[str]], None],
) -> Callable[[Any, list[str]], None]:
    def execute(self: Any, sql_list: list[str]) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return execute_sql_flush(self, sql_list)
            except OperationalError as exc:
                if attempt == ATTEMPTS or not is_deadlock(exc):
                    raise

    return execute
