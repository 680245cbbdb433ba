"""Queues: putting a chat in a stage's queue and taking it out, the estimates shown to the
waiting visitor (each stored, for the predicted-vs-actual report), and publishing queue changes.
"""

from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from chat import services as chat_services
from chat.events import (
    Event,
    QueueItemAdded,
    QueueItemRemoved,
    VisitorHello,
    agent_group,
    chat_visitor_group,
    send_event_on_commit,
    stage_queue_group,
)
from chat.models import ChatSession, FlowEvent
from escalation import frames, selectors
from escalation.estimates import WaitRange
from escalation.models import (
    Agent,
    AgentGroup,
    ChatRoute,
    Escalation,
    QueueEntry,
    Stage,
    WaitEstimate,
)
from escalation.services import offering, timers

QUEUE_PUBLISH_DELAY_SECONDS = 1.0


def enqueue(
    *,
    chat: ChatSession,
    route: ChatRoute,
    stage: Stage,
    reason: str,
    group: AgentGroup | None = None,
    agents: list[Agent] | None = None,
    priority: int = 0,
    waiting_since: datetime | None = None,
    announce: bool = True,
) -> QueueEntry:
    """Put the chat in `stage`'s queue with a deadline. Caller holds the chat row lock.

    With `announce=False` the caller calls `announce_entry` itself, after the notices it sends
    the visitor: the work after commit runs in the order it was asked for, and the visitor's
    notice should not wait behind the timers and the consoles' new queue item."""
    now = timezone.now()
    # A chat in a drop stage has lost its visitor: nobody to tell that we are still searching.
    notices = stage.still_searching_seconds > 0 and reason != QueueEntry.Reason.DROPPED
    entry = QueueEntry.objects.create(
        chat=chat,
        stage=stage,
        tier=group.tier if group is not None else stage.tier,
        group=group,
        reason=reason,
        priority=priority,
        waiting_since=waiting_since or now,
        entered_at=now,
        deadline=now + timedelta(seconds=stage.wait_timeout_seconds),
        next_notice_at=now + timedelta(seconds=stage.still_searching_seconds) if notices else None,
    )
    if agents:
        entry.agents.set(agents)
    route.stage, route.tier, route.entry, route.agent = stage, entry.tier, entry, None
    route.save(update_fields=["stage", "tier", "entry", "agent"])
    if chat.status != ChatSession.Status.QUEUED:
        chat_services.change_status(chat=chat, to=ChatSession.Status.QUEUED)
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.QUEUED,
        data={
            "stage": stage.name,
            "stage_id": stage.pk,
            "tier": entry.tier.level,
            "team": selectors.team_name(entry),
            "reason": reason,
            "deadline": entry.deadline.isoformat() if entry.deadline else None,
        },
    )
    if announce:
        announce_entry(entry)
    return entry


def announce_entry(entry: QueueEntry, *, handover: dict[str, Any] | None = None) -> None:
    """After commit: arm the entry's timers, publish it to the consoles of its stage and the
    places of the stage's waiting visitors. The consoles first: the timers are seconds away.
    `handover`: the entry's hand-over, when the caller has just written it."""
    transaction.on_commit(lambda: publish_added(entry_id=entry.pk, handover=handover), robust=True)
    arm_wait_timer(entry)
    arm_notice_timer(entry)
    queue_changed(stage_id=entry.stage_id)


def publish_added(*, entry_id: int, handover: dict[str, Any] | None = None) -> None:
    """After the commit that queued it: the new queue item, read once (with the escalation and
    hand-over written later in the same transaction) for every console of the stage. An entry
    that left the queue in that same transaction (assigned at once) is not announced."""
    entry = (
        QueueEntry.objects.select_related("chat", "stage", "tier", "group")
        .filter(pk=entry_id, left_at__isnull=True)
        .first()
    )
    if entry is not None:
        agent_ids = list(entry.agents.values_list("pk", flat=True))
        item = frames.queue_item_for(entry, handover=handover, agent_ids=agent_ids)
        publish_queue_delta(entry, QueueItemAdded(item=item), agent_ids=agent_ids)


def arm_wait_timer(entry: QueueEntry) -> None:
    """After commit, schedule the wait-timeout task for the entry's deadline (see timers)."""
    timers.arm(timers.WAIT_TIMEOUT, entry.pk, deadline=entry.deadline)


def arm_notice_timer(entry: QueueEntry) -> None:
    """After commit, schedule the entry's next still-searching notice; the task carries the time
    it is for, so that only the task of the current schedule sends it."""
    if entry.next_notice_at is None:
        return
    timers.arm(
        timers.STILL_SEARCHING,
        entry.pk,
        entry.next_notice_at.isoformat(),
        deadline=entry.next_notice_at,
    )


def leave_queue(*, entry: QueueEntry, outcome: str) -> None:
    """Close a waiting entry. Caller holds the chat row lock."""
    entry.left_at = timezone.now()
    entry.outcome = outcome
    entry.next_notice_at = None
    entry.save(update_fields=["left_at", "outcome", "next_notice_at"])
    offering.withdraw_entry_offers(
        entry=entry, reason="taken" if outcome == QueueEntry.Outcome.TAKEN else "left"
    )
    escalation_outcome = {
        QueueEntry.Outcome.TAKEN: Escalation.Outcome.TAKEN,
        QueueEntry.Outcome.TIMED_OUT: Escalation.Outcome.TIMED_OUT,
        QueueEntry.Outcome.ABANDONED: Escalation.Outcome.ABANDONED,
        QueueEntry.Outcome.ENDED: Escalation.Outcome.ENDED,
    }.get(QueueEntry.Outcome(outcome))
    if escalation_outcome is not None:
        Escalation.objects.filter(entry=entry, outcome=Escalation.Outcome.WAITING).update(
            outcome=escalation_outcome
        )
    removed = QueueItemRemoved(
        chat=entry.chat_id, stage_id=entry.stage_id, entry=entry.pk, reason=outcome
    )
    publish_queue_delta(entry, removed)
    queue_changed(stage_id=entry.stage_id)


def publish_queue_delta(
    entry: QueueEntry, event: Event, *, agent_ids: list[int] | None = None
) -> None:
    """After commit, one queue change to the consoles of the stage's agents (and of the agents a
    chat is narrowed to, who need not serve the stage): computed once, applied by each console
    without asking again."""
    send_event_on_commit(stage_queue_group(entry.stage_id), event)
    if agent_ids is None:
        agent_ids = list(entry.agents.values_list("pk", flat=True))
    for agent_id in agent_ids:
        send_event_on_commit(agent_group(agent_id), event)


def queue_changed(*, stage_id: int) -> None:
    """After commit, publish the waiting visitors' places at most about once a second per stage:
    the first change arms a delayed publish, later ones ride on it."""

    def arm() -> None:
        if cache.add(f"queue-publish:{stage_id}", 1, timeout=5):
            timers.run_later(
                timers.PUBLISH_QUEUE, (stage_id,), countdown=QUEUE_PUBLISH_DELAY_SECONDS
            )

    transaction.on_commit(arm, robust=True)


def publish_queue_now(*, stage_id: int) -> int:
    """Tell every visitor waiting at `stage_id` its position and estimate. Returns how many
    visitors were told."""
    cache.delete(f"queue-publish:{stage_id}")
    now = timezone.now()
    told = 0
    entries = list(selectors.waiting_entries(stage_id=stage_id).select_related("stage"))
    for position, entry in enumerate(entries, start=1):
        estimate = selectors.wait_estimate(entry=entry, position=position, now=now)
        record_estimate(entry=entry, position=position, estimate=estimate, now=now)
        send_event_on_commit(
            chat_visitor_group(entry.chat_id),
            frames.queue_position_payload(entry=entry, position=position, estimate=estimate),
        )
        told += 1
    return told


def wait_text(entry: QueueEntry, *, unknown: str = "wait not known yet") -> str:
    """The estimate as the visitor reads it in a notice, stored as shown."""
    _, estimate = shown_estimate(entry=entry, now=timezone.now())
    return estimate.as_text() if estimate else unknown


def shown_estimate(*, entry: QueueEntry, now: datetime) -> tuple[int, WaitRange | None]:
    """The entry's place in line and wait estimate, stored as shown to the visitor (the
    predicted-vs-actual report compares it with the real wait)."""
    position = selectors.queue_position(entry=entry)
    estimate = selectors.wait_estimate(entry=entry, position=position, now=now)
    record_estimate(entry=entry, position=position, estimate=estimate, now=now)
    return position, estimate


def record_estimate(
    *, entry: QueueEntry, position: int, estimate: WaitRange | None, now: datetime
) -> None:
    WaitEstimate.objects.create(
        entry=entry,
        position=position,
        low_seconds=estimate.low_seconds if estimate else None,
        high_seconds=estimate.high_seconds if estimate else None,
        created_at=now,
    )


def visitor_hello(*, chat: ChatSession) -> VisitorHello:
    """The snapshot a visitor's page gets on (re)connecting. The wait estimate in it is shown to
    the visitor, so it is stored like every other estimate shown (predicted vs actual wait)."""
    hello = frames.visitor_state(chat=chat)
    entry_id = ChatRoute.objects.filter(chat=chat).values_list("entry_id", flat=True).first()
    if hello.queue and entry_id:
        estimate = hello.queue.get("estimate") or {}
        WaitEstimate.objects.create(
            entry_id=entry_id,
            position=hello.queue["position"],
            low_seconds=estimate.get("low_seconds"),
            high_seconds=estimate.get("high_seconds"),
            created_at=timezone.now(),
        )
    return hello
