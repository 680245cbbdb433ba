"""Moving a waiting chat on: wait-timeouts, the fallbacks they run (another stage or group, back
to the previous tier, the "leave a message" form, an end as missed) and the move that every
escalation and fallback shares (`move_chat`).

Every move locks the chat row first (`lock_route`), closes the current queue entry or assignment,
opens the next queue entry (whose deadline arms its own timer) and appends flow events, all in one
transaction; the visitor's notices and the consoles' updates go out after commit.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from chat import services as chat_services
from chat.models import ChatSession, FlowEvent
from escalation import frames, selectors
from escalation.exceptions import OfflineMessageNotOffered
from escalation.models import (
    MAX_FALLBACK_HOPS,
    Agent,
    AgentGroup,
    Assignment,
    ChatRoute,
    Escalation,
    EscalationOption,
    FallbackAction,
    OfflineMessage,
    QueueEntry,
    Stage,
    TargetKind,
    Tier,
)
from escalation.selectors import Target
from escalation.services import mail, timers
from escalation.services.assignment import assign
from escalation.services.dispatch import dispatch
from escalation.services.queueing import (
    announce_entry,
    arm_wait_timer,
    enqueue,
    leave_queue,
    shown_estimate,
)
from escalation.services.route import close_chat, lock_route, notify_visitor


@dataclass
class Origin:
    """Where a move comes from and why: written to the escalation record and the flow."""

    stage: Stage
    tier: Tier
    reason_entered: str
    requested_by: str
    agent: Agent | None = None
    group: AgentGroup | None = None
    option: EscalationOption | None = None
    reason: str = ""
    note: str = ""


def move_chat(
    *, chat: ChatSession, route: ChatRoute, target: Target, origin: Origin, notice: str
) -> Escalation:
    """Queue the chat at `target`, record the escalation and tell the visitor. Caller holds the
    chat row lock and has closed the previous entry or assignment."""
    now = timezone.now()
    escalated_first = target.stage.escalated_order == Stage.EscalatedOrder.PRIORITY
    entry = enqueue(
        chat=chat,
        route=route,
        stage=target.stage,
        reason=origin.reason_entered,
        group=target.group,
        agents=target.agents,
        priority=1 if escalated_first else 0,
        # Keep their place by original waiting time: they have waited since the chat began.
        waiting_since=now if escalated_first else chat.created_at,
        announce=False,
    )
    escalation = Escalation.objects.create(
        chat=chat,
        from_stage=origin.stage,
        from_tier=origin.tier,
        from_agent=origin.agent,
        from_group=origin.group,
        option=origin.option,
        target_kind=target.kind,
        target_label=target.label,
        to_stage=target.stage,
        to_tier=entry.tier,
        to_group=target.group,
        entry=entry,
        reason=origin.reason,
        note=origin.note,
        requested_by=origin.requested_by,
        requested_at=now,
        repeat=Escalation.objects.filter(chat=chat, from_tier=origin.tier).exists(),
    )
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.ESCALATED if origin.agent else FlowEvent.Kind.FELL_BACK,
        actor=origin.agent.user if origin.agent else None,
        data={
            "escalation_id": escalation.pk,
            "action": "move",
            "from_stage": origin.stage.name,
            "from_tier": origin.tier.level,
            "from_agent": origin.agent.display_name if origin.agent else None,
            "to": target.label,
            "to_stage": target.stage.name,
            "to_tier": entry.tier.level,
            "reason": origin.reason,
            "note": origin.note,
            "requested_by": origin.requested_by,
        },
    )
    position, estimate = shown_estimate(entry=entry, now=now)
    notify_visitor(
        chat=chat,
        event=notice,
        stage=target.stage,
        team=target.public,
        tier=entry.tier.public,
        position=str(position),
        wait=estimate.as_text() if estimate else "not known yet",
    )
    # An agent's move is the hand-over the next agent reads first (frames.latest_handover).
    announce_entry(entry, handover=frames.handover_payload(escalation) if origin.agent else None)
    return escalation


@transaction.atomic
def handle_wait_timeout(*, entry_id: int) -> str:
    """Run the fallback of a queue entry whose deadline has passed, exactly once.

    Acts only if the chat still waits in this very entry (checked under the chat row lock), so a
    duplicate, late or redelivered task, or the sweep racing the task, changes nothing."""
    entry = QueueEntry.objects.filter(pk=entry_id).only("chat_id").first()
    if entry is None:
        return "gone"
    chat, route = lock_route(chat_id=entry.chat_id)
    entry = QueueEntry.objects.select_related("stage__tier", "tier", "group").get(pk=entry_id)
    if entry.left_at is not None or route.entry_id != entry.pk:
        return "stale"
    if entry.deadline is None:
        return "no deadline"
    now = timezone.now()
    if entry.deadline > now:
        arm_wait_timer(entry)  # woke early (capped countdown): sleep again
        return "early"
    leave_queue(entry=entry, outcome=QueueEntry.Outcome.TIMED_OUT)
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.TIMED_OUT,
        data={
            "stage": entry.stage.name,
            "tier": entry.tier.level,
            "deadline": entry.deadline.isoformat(),
            "late_ms": int((now - entry.deadline).total_seconds() * 1000),
            "waited_seconds": int((now - entry.entered_at).total_seconds()),
        },
    )
    notify_visitor(
        chat=chat,
        event="timeout",
        stage=entry.stage,
        team=selectors.public_team(entry),
        tier=entry.tier.public,
    )
    run_fallback(chat=chat, route=route, entry=entry, cause="timeout")
    return "fell back"


def sweep_overdue_entries(*, limit: int = 200) -> int:
    """Catch deadlines whose timer task was lost (a killed worker, a flushed broker)."""
    overdue = QueueEntry.objects.filter(left_at__isnull=True, deadline__lte=timezone.now())
    return timers.sweep(
        overdue.order_by("deadline").values_list("pk", flat=True)[:limit],
        lambda pk: handle_wait_timeout(entry_id=pk),
        "fell back",
    )


def run_fallback(*, chat: ChatSession, route: ChatRoute, entry: QueueEntry, cause: str) -> None:
    """Apply the stage's fallback to a chat that left `entry` unserved. Caller holds the chat row
    lock; `entry` is already closed, or is closed here."""
    if entry.left_at is None:
        leave_queue(entry=entry, outcome=QueueEntry.Outcome.LEFT)
    stage = entry.stage
    if route.hops >= MAX_FALLBACK_HOPS:
        _end_missed(chat=chat, route=route, why=f"stopped after {MAX_FALLBACK_HOPS} fallbacks")
        return
    route.hops += 1
    route.save(update_fields=["hops"])
    action = stage.fallback_action
    if (
        action == FallbackAction.GROUP
        and entry.reason == QueueEntry.Reason.FALLBACK
        and entry.group_id is not None
        and entry.group_id == stage.fallback_group_id
    ):
        action = FallbackAction.LEAVE_MESSAGE  # the fallback group did not answer either
    requested_by = (
        Escalation.RequestedBy.TIMEOUT if cause == "timeout" else Escalation.RequestedBy.FALLBACK
    )
    origin = Origin(
        stage=stage,
        tier=entry.tier,
        reason_entered=QueueEntry.Reason.FALLBACK,
        requested_by=requested_by,
        reason=cause,
    )
    if action == FallbackAction.STAGE and stage.fallback_stage is not None:
        to = stage.fallback_stage
        target = Target(stage=to, tier=to.tier, label=to.name)
        move_chat(chat=chat, route=route, target=target, origin=origin, notice="fallback")
        _after_fallback_move(chat=chat, route=route)
    elif action == FallbackAction.GROUP and stage.fallback_group is not None:
        group = stage.fallback_group
        target = Target(
            stage=stage, tier=group.tier, label=group.name, kind=TargetKind.GROUP, group=group
        )
        move_chat(chat=chat, route=route, target=target, origin=origin, notice="fallback")
        _after_fallback_move(chat=chat, route=route)
    elif action == FallbackAction.PREVIOUS_TIER and _back_to_previous_tier(
        chat=chat, route=route, entry=entry, origin=origin
    ):
        _after_fallback_move(chat=chat, route=route)
    elif action in (FallbackAction.LEAVE_MESSAGE, FallbackAction.PREVIOUS_TIER):
        offer_message_form(chat=chat, route=route, cause=cause)
    else:
        _end_missed(chat=chat, route=route, why=cause)


def _back_to_previous_tier(
    *, chat: ChatSession, route: ChatRoute, entry: QueueEntry, origin: Origin
) -> bool:
    """Back to the last agent at a lower tier if online and free, else that agent's group."""
    previous = (
        Assignment.objects.filter(chat_id=entry.chat_id, tier__level__lt=entry.tier.level)
        .select_related("agent", "stage", "tier", "group")
        .order_by("-started_at")
        .first()
    )
    if previous is None:
        return False
    # Lock the agent first, then look: presence and load cannot change between the two.
    agent = Agent.objects.select_for_update().get(pk=previous.agent_id)
    free = (
        agent.presence == Agent.Presence.ONLINE
        and agent.user.is_active
        and (selectors.agent_load(agent) < selectors.effective_capacity(agent))
    )
    if free:
        target = Target(
            stage=previous.stage,
            tier=previous.tier,
            label=agent.display_name,
            public_label=agent.display_name,
            kind=TargetKind.AGENTS,
            agents=[agent],
        )
    else:
        group = previous.group
        target = Target(
            stage=previous.stage,
            tier=previous.tier,
            label=group.name if group else previous.stage.name,
            kind=TargetKind.GROUP if group else TargetKind.STAGE,
            group=group,
        )
    move_chat(chat=chat, route=route, target=target, origin=origin, notice="previous_tier")
    if free and route.entry is not None:
        assign(chat=chat, route=route, entry=route.entry, agent=agent)
    return True


def _after_fallback_move(*, chat: ChatSession, route: ChatRoute) -> None:
    if route.entry is None:
        return
    if not fall_back_if_nobody_serves(chat=chat, route=route, entry=route.entry):
        dispatch(stage_ids=[route.entry.stage_id])


def fall_back_if_nobody_serves(*, chat: ChatSession, route: ChatRoute, entry: QueueEntry) -> bool:
    """The stage's no-agent rule: with "fall back at once", a chat arriving where nobody is
    online and free does not wait for the timeout. Returns whether it fell back."""
    if (
        entry.stage.no_agent_rule != Stage.NoAgentRule.FALLBACK
        or selectors.entry_has_available_agent(entry)
    ):
        return False
    run_fallback(chat=chat, route=route, entry=entry, cause="no agent available")
    return True


def offer_message_form(*, chat: ChatSession, route: ChatRoute, cause: str) -> None:
    chat_services.add_flow_event(
        chat=chat, kind=FlowEvent.Kind.FELL_BACK, data={"action": "leave_message", "why": cause}
    )
    close_chat(
        chat=chat,
        route=route,
        status=ChatSession.Status.MISSED,
        actor=None,
        data={"by": "fallback", "why": cause, "offer": "leave_message"},
        by="timeout" if cause == "timeout" else "fallback",
        notice="offline",
        notice_values={"team": route.stage.public, "tier": route.tier.public},
    )


def _end_missed(*, chat: ChatSession, route: ChatRoute, why: str) -> None:
    chat_services.add_flow_event(
        chat=chat, kind=FlowEvent.Kind.FELL_BACK, data={"action": "end", "why": why}
    )
    close_chat(
        chat=chat,
        route=route,
        status=ChatSession.Status.MISSED,
        actor=None,
        data={"by": "fallback", "why": why},
        by="timeout" if why == "timeout" else "fallback",
        notice="missed",
        notice_values={"team": route.stage.public, "tier": route.tier.public},
    )


@transaction.atomic
def leave_offline_message(*, chat_id: int, text: str, email: str = "") -> OfflineMessage:
    """The visitor's message on the "leave a message" form a fallback offered."""
    chat = chat_services.lock_chat(chat_id=chat_id)
    if not selectors.offers_message_form(chat):
        raise OfflineMessageNotOffered()
    text = chat_services.clean_text(text)
    message = OfflineMessage.objects.create(chat=chat, email=email or chat.visitor_email, text=text)
    chat_services.add_flow_event(
        chat=chat, kind=FlowEvent.Kind.LEFT_MESSAGE, data={"chars": len(text)}
    )
    route = ChatRoute.objects.select_related("stage").get(chat=chat)
    notify_visitor(chat=chat, event="message_left", stage=route.stage)
    mail.email_left_message(message=message)
    return message
