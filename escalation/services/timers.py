"""Deadlines on rows, acted on by Celery tasks, with a periodic sweep as the safety net.

Wait-timeouts (QueueEntry.deadline), offer accept timeouts (Offer.deadline) and still-searching
notices (QueueEntry.next_notice_at) all work the same way:

- the deadline is stored on the row in the transaction that sets it;
- after commit a task is scheduled for it (`arm`), with its countdown capped far below the
  broker's visibility timeout (Redis would redeliver a task held longer); a task that wakes
  before the deadline re-arms itself;
- the task's service locks the chat row and acts only if the row still matches what the task was
  armed for (still open, same deadline), so duplicate, late or redelivered tasks change nothing;
- beat runs `sweep` every TIMER_SWEEP_SECONDS for deadlines whose task was lost (a killed
  worker, a flushed broker).
"""

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone


def arm(task: Any, *args: Any, deadline: datetime | None) -> None:
    """After commit, run `task(*args)` at `deadline` (or at the countdown cap, to re-arm)."""
    if deadline is None:
        return
    seconds = max(0.0, (deadline - timezone.now()).total_seconds())
    task.apply_async_on_commit(
        args=args, countdown=min(seconds, settings.MAX_TIMER_COUNTDOWN_SECONDS)
    )


def sweep(overdue_ids: Iterable[int], handle: Callable[[int], str], fired: str) -> int:
    """Run `handle` on each overdue row (each in its own transaction); count those that fired."""
    return sum(handle(pk) == fired for pk in list(overdue_ids))
