"""Deadlines on rows, acted on by Celery tasks, with a periodic sweep as the safety net.

Wait-timeouts (QueueEntry.deadline), offer accept timeouts (Offer.deadline), hand-over accept
timeouts (Handover.deadline) and still-searching notices (QueueEntry.next_notice_at) all work the
same way:

- the deadline is stored on the row in the transaction that sets it;
- after commit a task is scheduled for it (`arm`), with its countdown capped far below the
  broker's visibility timeout (Redis would redeliver a task held longer); a task that wakes
  before the deadline re-arms itself;
- the task's service locks the chat row and acts only if the row still matches what the task was
  armed for (still open, same deadline), so duplicate, late or redelivered tasks change nothing;
- beat runs `sweep` every TIMER_SWEEP_SECONDS for deadlines whose task was lost (a killed
  worker, a flushed broker).

Tasks are named, not imported: `escalation.tasks` calls these services, so the services must not
import it back.
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from celery import current_app, signature
from django.conf import settings
from django.db import transaction
from django.utils import timezone

WAIT_TIMEOUT = "escalation.tasks.wait_timeout"
OFFER_TIMEOUT = "escalation.tasks.offer_timeout"
HANDOVER_TIMEOUT = "escalation.tasks.handover_timeout"
STILL_SEARCHING = "escalation.tasks.still_searching"
PUBLISH_QUEUE = "escalation.tasks.publish_queue"
SEND_EMAIL = "escalation.tasks.send_email"


Scheduler = Callable[[str, tuple[Any, ...], float], None]
_scheduler: ContextVar[Scheduler | None] = ContextVar("timer_scheduler", default=None)


@contextmanager
def scheduled_in_process(scheduler: Scheduler) -> Iterator[None]:
    """Inside this block tasks go to `scheduler(task_name, args, countdown)` instead of the
    broker. The demo's replay of past days (escalation.demo_history) runs them at their times on
    its simulated clock: a broker would run them late, on the real clock, after the history has
    moved on."""
    token = _scheduler.set(scheduler)
    try:
        yield
    finally:
        _scheduler.reset(token)


def run_later(task_name: str, args: tuple[Any, ...], *, countdown: float) -> None:
    """Queue the task `task_name` now, to run `countdown` seconds from now."""
    scheduler = _scheduler.get()
    if scheduler is not None:
        scheduler(task_name, args, countdown)
        return
    signature(task_name, args=args, app=current_app).apply_async(countdown=countdown)


def arm(task_name: str, *args: Any, deadline: datetime | None) -> None:
    """After commit, run the task `task_name(*args)` at `deadline` (or at the countdown cap, to
    re-arm)."""
    if deadline is None:
        return
    seconds = max(0.0, (deadline - timezone.now()).total_seconds())
    countdown = min(seconds, settings.MAX_TIMER_COUNTDOWN_SECONDS)
    # robust: with the broker down the state change still stands and its caller still gets its
    # answer (not an error after the commit); the sweep fires the lost timer once beat runs again.
    transaction.on_commit(lambda: run_later(task_name, args, countdown=countdown), robust=True)


def sweep(overdue_ids: Iterable[int], handle: Callable[[int], str], fired: str) -> int:
    """Run `handle` on each overdue row (each in its own transaction); count those that fired."""
    return sum(handle(pk) == fired for pk in list(overdue_ids))
