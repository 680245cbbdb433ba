"""The embedded default's Celery: a worker and beat as threads of the server process.

With no REDIS_URL the broker is kombu's in-memory transport, which only reaches threads of the
same process; so the server runs the worker and beat itself and wait-timers work with nothing
installed. With REDIS_URL, `celery worker` and `celery beat` run as their own processes instead.
"""

import threading
from typing import Any

from celery.beat import EmbeddedService
from celery.contrib.testing.worker import TestWorkController
from django.conf import settings

from helpdesk.celery import app


class EmbeddedCelery:
    def __init__(self, *, concurrency: int = 2) -> None:
        self.worker: Any = TestWorkController(
            app=app,
            hostname="embedded@tierline",
            pool="threads",
            concurrency=concurrency,
            loglevel="WARNING",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        schedule = settings.VAR_DIR / "celerybeat-schedule"
        self.beat: Any = EmbeddedService(app, thread=True, schedule_filename=str(schedule))
        self._thread = threading.Thread(target=self.worker.start, name="celery-worker", daemon=True)

    def start(self) -> None:
        if not settings.EMBEDDED_WORKER:
            raise RuntimeError("REDIS_URL is set: run `celery worker` and `celery beat` instead.")
        settings.VAR_DIR.mkdir(exist_ok=True)
        self._thread.start()
        self.worker.ensure_started()
        self.beat.start()

    def stop(self) -> None:
        self.beat.stop()
        self.worker.stop(in_sighandler=False)
