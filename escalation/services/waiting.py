"""While a chat waits: the stage's "still searching" notice every N seconds.

Each notice is stored like every other message (the visitor replays it after a reconnect; its
page collapses a run of them into the latest). The schedule is the entry's `next_notice_at`,
run by the same timer machinery as wait-timeouts (see timers).
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from escalation import selectors
from escalation.models import QueueEntry
from escalation.services import timers
from escalation.services.queueing import arm_notice_timer, shown_estimate
from escalation.services.route import lock_route, notify_visitor


@transaction.atomic
def send_still_searching(*, entry_id: int, due: datetime | None = None) -> str:
    """Tell the visitor waiting in `entry_id` that we are still searching, with its place and
    estimate, and schedule the next notice. `due` is the time the calling task was armed for:
    a task whose time is no longer the entry's schedule (a duplicate, or superseded) does
    nothing. The sweep passes None: whatever is due now."""
    entry = QueueEntry.objects.filter(pk=entry_id).only("chat_id").first()
    if entry is None:
        return "gone"
    chat, route = lock_route(chat_id=entry.chat_id)
    entry = QueueEntry.objects.select_related("stage", "tier", "group", "chat").get(pk=entry_id)
    if entry.left_at is not None or route.entry_id != entry.pk or entry.next_notice_at is None:
        return "stale"
    if due is not None and entry.next_notice_at != due:
        return "stale"
    now = timezone.now()
    if entry.next_notice_at > now:
        arm_notice_timer(entry)  # woke early (capped countdown): sleep again
        return "early"
    interval = entry.stage.still_searching_seconds
    if interval <= 0:  # the admin turned the notices off while the chat waited
        entry.next_notice_at = None
        entry.save(update_fields=["next_notice_at"])
        return "off"
    position, estimate = shown_estimate(entry=entry, now=now)
    notify_visitor(
        chat=chat,
        event="still_searching",
        stage=entry.stage,
        team=selectors.public_team(entry),
        tier=entry.tier.public,
        position=str(position),
        wait=estimate.as_text() if estimate else "wait not known yet",
    )
    # Keep the cadence (a notice that ran late does not push the next ones back), but never
    # schedule one in the past: after a long stall the next comes one interval from now.
    following = entry.next_notice_at + timedelta(seconds=interval)
    entry.next_notice_at = following if following > now else now + timedelta(seconds=interval)
    entry.save(update_fields=["next_notice_at"])
    arm_notice_timer(entry)
    return "sent"


def sweep_due_notices(*, limit: int = 200) -> int:
    """Catch still-searching notices whose timer task was lost."""
    due = QueueEntry.objects.filter(left_at__isnull=True, next_notice_at__lte=timezone.now())
    return timers.sweep(
        due.order_by("next_notice_at").values_list("pk", flat=True)[:limit],
        lambda pk: send_still_searching(entry_id=pk),
        "sent",
    )
