"""The flush between transactional tests survives a deadlock with another connection's
transaction (tests/flush.py), as it meets one when a live daphne finishes a transaction while the
test's database is emptied."""

import threading
import time

import psycopg
import pytest
from django.db import connection, connections

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def two_tables():
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE flush_probe_a (id int); CREATE TABLE flush_probe_b (id int)")
        cur.execute("INSERT INTO flush_probe_a VALUES (1); INSERT INTO flush_probe_b VALUES (1)")
    yield
    with connection.cursor() as cur:
        cur.execute("DROP TABLE flush_probe_a; DROP TABLE flush_probe_b")


def waiting_for_a_lock(pid: int) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cur.fetchone()
    return bool(row and row[0])


def test_a_flush_aborted_by_a_deadlock_runs_again(two_tables):
    settings = connection.settings_dict
    other = psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        dbname=settings["NAME"],
        autocommit=False,
    )
    # The other side waits ten times longer before it looks for a deadlock, so that PostgreSQL
    # aborts the flush, never it: the case the retry is for.
    other.execute("SET deadlock_timeout = '10s'")
    other.execute("SELECT * FROM flush_probe_b").fetchall()  # holds b
    flushed: list[BaseException | None] = []
    started = threading.Event()
    pid: list[int] = []

    def flush() -> None:
        try:
            pid.append(connections["default"].cursor().connection.info.backend_pid)
            started.set()
            connections["default"].ops.execute_sql_flush(
                ["TRUNCATE flush_probe_a, flush_probe_b"]
            )  # locks a, then waits for b
            flushed.append(None)
        except BaseException as exc:  # handed to the test's thread
            flushed.append(exc)
        finally:
            connections.close_all()

    worker = threading.Thread(target=flush)
    worker.start()
    assert started.wait(10)
    deadline = time.monotonic() + 30
    while not waiting_for_a_lock(pid[0]):  # until the flush holds a and waits for b
        assert worker.is_alive() and time.monotonic() < deadline, flushed
    other.execute("SELECT * FROM flush_probe_a").fetchall()  # a deadlock: the flush is aborted
    other.commit()  # this side was not the one aborted
    other.close()
    worker.join(30)
    assert flushed == [None]
    with connection.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM flush_probe_a) + (SELECT count(*) FROM flush_probe_b)"
        )
        assert cur.fetchone() == (0,)
