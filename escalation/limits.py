"""Caps on what anonymous visitors can make the desk do (issue 13). Reads only."""

from django.conf import settings

from escalation.models import QueueEntry


def pipeline_queue_is_full(*, topic_name: str) -> bool:
    """Whether the pipeline that `topic_name` starts in already has MAX_WAITING_CHATS_PER_PIPELINE
    chats waiting in its queues (any stage). Past that a new visitor is offered the "leave a
    message" form instead of a place in line: each waiting chat makes every queue change cost
    more (positions, estimates, console lists), and nobody is served faster by a longer line.
    Counts at most the cap's rows (index entry_stage_open)."""
    cap = settings.MAX_WAITING_CHATS_PER_PIPELINE
    waiting = QueueEntry.objects.filter(
        left_at__isnull=True, stage__pipeline__topics__name=topic_name
    )
    return waiting[:cap].count() >= cap
