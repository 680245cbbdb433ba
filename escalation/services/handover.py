"""Hand-overs the first agent stays in the chat for: a warm escalation (an option marked warm)
and a hand to a colleague (cold or warm).

The request (`open_handover`, called by `transfer` once it has checked the agent's choice) keeps
the chat active with its agent and offers it at once to every receiver who is online with free
capacity. The first to accept wins (the chat row lock serialises two accepts; the other offers
are withdrawn in the same transaction). A warm receiver joins the chat: both agents write to it
and the visitor is told who joined; the first agent leaves when the receiver takes over
(`take_over`), and only then is its place freed. A cold receiver takes the chat when accepting.
Nobody accepting before the deadline (`handle_handover_timeout`, a Celery timer like the offers'
accept timeouts), everyone declining, or the first agent cancelling (also after a receiver
joined), leaves the chat with the first agent, who is told; a warm request's visitor is told too.
A receiver who joined and is gone (its console closed) or disabled leaves the chat the same way
(`leave_joined_handovers`, from the presence sweeps), and its freed place is dispatched.

Ending the chat closes an open hand-over (`route.close_chat`); the first agent's chats handed
back when its console is gone go to a receiver who joined rather than to the queue.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from chat import services as chat_services
from chat.events import ChatAssigned, agent_group, send_event_on_commit
from chat.exceptions import ChatClosed
from chat.models import ChatSession, FlowEvent
from escalation import frames, selectors
from escalation.exceptions import (
    AgentNotOnline,
    AtCapacity,
    HandoverClosed,
    HandoverNotFound,
    HandoverPending,
    NobodyAvailable,
    NotReceiver,
)
from escalation.models import (
    Agent,
    AgentGroup,
    Assignment,
    ChatRoute,
    Escalation,
    EscalationOption,
    Handover,
    HandoverOffer,
)
from escalation.selectors import Target
from escalation.services import timers
from escalation.services.dispatch import dispatch
from escalation.services.route import (
    close_handover_offer,
    close_open_handover,
    end_assignment,
    lock_route,
    notify_visitor,
    tell_agent_left,
    tell_handover,
    tell_removed,
)

WARM_LABEL = "Warm hand-over"
COLD_LABEL = "Hand-over"


def open_handover(
    *,
    chat: ChatSession,
    route: ChatRoute,
    agent: Agent,
    target: Target,
    receivers: list[Agent],
    warm: bool,
    to_colleague: bool,
    timeout_seconds: int,
    option: EscalationOption | None,
    reason: str,
    note: str,
    requested_by: str,
) -> Escalation:
    """Offer the chat `agent` holds to `receivers` while the agent keeps it. Caller holds the
    chat row lock and has checked the holder, the target and the note."""
    if Handover.objects.filter(chat=chat, status__in=Handover.OPEN).exists():
        raise HandoverPending()
    if not receivers:
        raise NobodyAvailable(
            f"Nobody in {target.label} is online with free capacity; the chat stays with you."
        )
    now = timezone.now()
    assignment = Assignment.objects.filter(chat=chat, ended_at__isnull=True).first()
    escalation = Escalation.objects.create(
        chat=chat,
        from_stage=route.stage,
        from_tier=route.tier,
        from_agent=agent,
        from_group=assignment.group if assignment else None,
        option=option,
        target_kind=target.kind,
        target_label=target.label,
        to_stage=target.stage,
        to_tier=target.tier,
        to_group=target.group,
        entry=None,
        reason=reason,
        note=note,
        requested_by=requested_by,
        requested_at=now,
        repeat=Escalation.objects.filter(chat=chat, from_tier=route.tier).exists(),
        warm=warm,
    )
    handover = Handover.objects.create(
        chat=chat,
        escalation=escalation,
        from_agent=agent,
        warm=warm,
        to_colleague=to_colleague,
        deadline=now + timedelta(seconds=timeout_seconds),
    )
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.HANDOVER_REQUESTED,
        actor=agent.user,
        data={
            "handover_id": handover.pk,
            "escalation_id": escalation.pk,
            "label": WARM_LABEL if warm else COLD_LABEL,
            "warm": warm,
            "colleague": to_colleague,
            "from_agent": agent.display_name,
            "to": target.label,
            "to_tier": target.tier.level,
            "reason": reason,
            "note": note,
            "receivers": [r.display_name for r in receivers],
            "deadline": handover.deadline.isoformat(),
        },
    )
    if warm and to_colleague:
        notify_visitor(
            chat=chat,
            event="warm_requested_colleague",
            stage=route.stage,
            agent=agent.display_name,
            colleague=receivers[0].display_name,  # a hand to a colleague offers that one agent
            tier=target.tier.public,
        )
    elif warm:
        notify_visitor(
            chat=chat,
            event="warm_requested",
            stage=route.stage,
            agent=agent.display_name,
            team=target.public,
            tier=target.tier.public,
        )
    for receiver in receivers:
        offer = HandoverOffer.objects.create(handover=handover, agent=receiver, offered_at=now)
        send_event_on_commit(
            agent_group(receiver.pk), frames.handover_offer_payload(offer, now=now)
        )
    tell_handover(handover)
    timers.arm(timers.HANDOVER_TIMEOUT, handover.pk, deadline=handover.deadline)
    return escalation


def _locked_handover(*, handover_id: int, agent: Agent) -> tuple[ChatSession, ChatRoute, Handover]:
    """Lock the chat of a hand-over offered to `agent`, then read the hand-over."""
    chat_id = (
        HandoverOffer.objects.filter(handover_id=handover_id, agent=agent)
        .values_list("handover__chat_id", flat=True)
        .first()
    )
    if chat_id is None:
        raise HandoverNotFound()
    chat, route = lock_route(chat_id=chat_id)
    handover = Handover.objects.select_related(
        "escalation__to_stage", "escalation__to_tier", "escalation__to_group", "from_agent"
    ).get(pk=handover_id)
    return chat, route, handover


def accept_handover(*, handover_id: int, agent: Agent) -> Handover:
    """The receiver accepts: warm, it joins the chat with the first agent; cold, it takes the
    chat, and then the first agent's freed place is dispatched (as after a take-over). Of two
    receivers accepting at once exactly one gets it; the other is told it is gone."""
    handover = _accept_handover(handover_id=handover_id, agent=agent)
    if not handover.warm:
        with transaction.atomic():
            dispatch(stage_ids=selectors.stages_to_dispatch_for(agent=handover.from_agent))
    return handover


@transaction.atomic
def _accept_handover(*, handover_id: int, agent: Agent) -> Handover:
    chat, route, handover = _locked_handover(handover_id=handover_id, agent=agent)
    offer = HandoverOffer.objects.select_related("handover").get(handover=handover, agent=agent)
    if not chat.is_open:
        raise ChatClosed()
    now = timezone.now()
    if offer.status != HandoverOffer.Status.PENDING or handover.status != Handover.Status.PENDING:
        raise HandoverClosed()
    if handover.deadline <= now:
        raise HandoverClosed("Too late: nobody accepted in time and the chat stays where it was.")
    locked = Agent.objects.select_for_update().get(pk=agent.pk)
    if locked.presence != Agent.Presence.ONLINE:
        raise AgentNotOnline()
    if selectors.agent_load(locked) >= selectors.effective_capacity(locked):
        raise AtCapacity()
    close_handover_offer(offer, status=HandoverOffer.Status.ACCEPTED, reason="accepted", now=now)
    for other in handover.offers.filter(status=HandoverOffer.Status.PENDING).select_related(
        "handover"
    ):
        close_handover_offer(other, status=HandoverOffer.Status.WITHDRAWN, reason="taken", now=now)
    Escalation.objects.filter(pk=handover.escalation_id).update(taken_at=now, taken_by=locked)
    handover.receiver = locked
    if not handover.warm:
        _complete(chat=chat, route=route, handover=handover, now=now)
        return handover
    handover.status = Handover.Status.JOINED
    handover.joined_at = now
    handover.save(update_fields=["status", "receiver", "joined_at"])
    escalation = handover.escalation
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.HANDOVER_JOINED,
        actor=locked.user,
        data={
            "handover_id": handover.pk,
            "agent": locked.display_name,
            "agent_id": locked.pk,
            "seconds_to_accept": round((now - escalation.requested_at).total_seconds(), 3),
        },
    )
    notify_visitor(
        chat=chat,
        event="agent_joined",
        stage=escalation.to_stage,
        agent=locked.display_name,
        team=_public_team(escalation),
        tier=escalation.to_tier.public,
    )
    tell_handover(handover, text=f"{locked.display_name} joined the chat.")
    return handover


def take_over(*, chat_id: int, agent: Agent) -> Handover:
    """The receiver who joined says "I have it": the first agent leaves (its turn ends as
    escalated) and the receiver holds the chat. Then the first agent's freed place is dispatched."""
    handover = _take_over(chat_id=chat_id, agent=agent)
    with transaction.atomic():
        dispatch(stage_ids=selectors.stages_to_dispatch_for(agent=handover.from_agent))
    return handover


@transaction.atomic
def _take_over(*, chat_id: int, agent: Agent) -> Handover:
    chat, route = lock_route(chat_id=chat_id)
    if not chat.is_open:
        raise ChatClosed()
    handover = (
        Handover.objects.select_related(
            "escalation__to_stage", "escalation__to_tier", "escalation__to_group", "from_agent"
        )
        .filter(chat=chat, status=Handover.Status.JOINED, receiver=agent)
        .first()
    )
    if handover is None:
        raise NotReceiver()
    handover.receiver = agent
    _complete(chat=chat, route=route, handover=handover, now=timezone.now())
    return handover


def _complete(*, chat: ChatSession, route: ChatRoute, handover: Handover, now: datetime) -> None:
    """The receiver holds the chat now; the first agent's turn ends as escalated. Caller holds
    the chat row lock; `handover.receiver` is set."""
    receiver = handover.receiver
    assert receiver is not None  # noqa: S101 - set by both callers
    escalation = handover.escalation
    first = handover.from_agent
    assignment = end_assignment(route=route, reason=Assignment.EndReason.ESCALATED)
    tell_agent_left(chat=chat, route=route, name=first.display_name)
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.AGENT_LEFT,
        actor=first.user,
        data={"agent": first.display_name, "why": "handed over"},
    )
    group = _receiving_group(receiver=receiver, escalation=escalation)
    Assignment.objects.create(
        chat=chat,
        agent=receiver,
        tier=escalation.to_tier,
        stage=escalation.to_stage,
        group=group,
        started_at=now,
    )
    route.stage, route.tier, route.agent = escalation.to_stage, escalation.to_tier, receiver
    route.save(update_fields=["stage", "tier", "agent"])
    Agent.objects.filter(pk=receiver.pk).update(last_assigned_at=now, lapses_in_a_row=0)
    handover.status = Handover.Status.COMPLETED
    handover.closed_at = now
    handover.closed_reason = "taken over"
    handover.save(update_fields=["status", "receiver", "closed_at", "closed_reason"])
    Escalation.objects.filter(pk=escalation.pk).update(outcome=Escalation.Outcome.TAKEN)
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.HANDOVER_COMPLETED,
        actor=receiver.user,
        data={
            "handover_id": handover.pk,
            "agent": receiver.display_name,
            "agent_id": receiver.pk,
            "from_agent": first.display_name,
            "warm": handover.warm,
            "tier": escalation.to_tier.level,
            "stage": escalation.to_stage.name,
        },
    )
    if not handover.warm:  # a warm receiver was announced when it joined
        notify_visitor(
            chat=chat,
            event="agent_joined",
            stage=escalation.to_stage,
            agent=receiver.display_name,
            team=_public_team(escalation),
            tier=escalation.to_tier.public,
        )
    tell_removed(chat=chat, assignment=assignment, handed_over_to=receiver.display_name)
    send_event_on_commit(agent_group(receiver.pk), ChatAssigned(chat=chat.pk))
    tell_handover(handover, text=f"{receiver.display_name} took over the chat.")


def _receiving_group(*, receiver: Agent, escalation: Escalation) -> AgentGroup | None:
    groups = receiver.groups.all()
    if escalation.to_group_id is not None:
        found = groups.filter(pk=escalation.to_group_id).first()
        if found is not None:
            return found
    return (
        groups.filter(stages=escalation.to_stage_id).order_by("name").first()
        or groups.filter(tier=escalation.to_tier_id).order_by("name").first()
    )


def _public_team(escalation: Escalation) -> str:
    if escalation.to_group is not None:
        return escalation.to_group.public
    return escalation.to_stage.public


@transaction.atomic
def cancel_handover(*, chat_id: int, agent: Agent) -> Handover:
    """The first agent withdraws its request, pending or joined (a receiver who joined and does
    not take over, or went away, would otherwise keep it in the joint phase for good): the chat
    stays with it, and a receiver who joined leaves the chat."""
    chat, route = lock_route(chat_id=chat_id)
    if not chat.is_open:
        raise ChatClosed()
    handover = (
        Handover.objects.select_related("receiver")
        .filter(chat=chat, status__in=Handover.OPEN)
        .first()
    )
    if handover is None or handover.from_agent_id != agent.pk:
        raise HandoverNotFound("This chat has no hand-over of yours to cancel.")
    text = "You cancelled the hand-over: the chat stays with you."
    receiver_text = None
    if handover.status == Handover.Status.JOINED and handover.receiver is not None:
        text = (
            f"You cancelled the hand-over: {handover.receiver.display_name} left the chat, "
            "which stays with you."
        )
        receiver_text = f"{agent.display_name} cancelled the hand-over: you left the chat."
    return _stay(
        chat=chat,
        route=route,
        status=Handover.Status.CANCELLED,
        outcome=Escalation.Outcome.CANCELLED,
        why=f"Cancelled by {agent.display_name}",
        text=text,
        receiver_text=receiver_text,
    )


def leave_joined_handovers(*, agent: Agent, why: str) -> int:
    """The receiver is gone (its console closed) or may no longer work (`why`): each hand-over
    it joined is cancelled, the chat stays with its first agent, who is told, and the visitor
    hears that the receiver left. Each chat in its own transaction; how many."""
    left = 0
    for chat_id in selectors.joined_chat_ids(agent=agent):
        with transaction.atomic():
            chat, route = lock_route(chat_id=chat_id)
            joined = Handover.objects.filter(
                chat=chat, status=Handover.Status.JOINED, receiver=agent
            ).exists()
            if not joined or not chat.is_open:
                continue  # taken over, cancelled or ended meanwhile
            _stay(
                chat=chat,
                route=route,
                status=Handover.Status.CANCELLED,
                outcome=Escalation.Outcome.CANCELLED,
                why=f"{agent.display_name} left: {why}",
                text=f"{agent.display_name} left the chat ({why}): the chat stays with you.",
            )
            left += 1
    return left


@transaction.atomic
def decline_handover(*, handover_id: int, agent: Agent) -> HandoverOffer:
    """A receiver declines. When nobody is left to answer, the chat stays with the first agent,
    who is told."""
    chat, route, handover = _locked_handover(handover_id=handover_id, agent=agent)
    offer = HandoverOffer.objects.select_related("handover").get(handover=handover, agent=agent)
    if offer.status != HandoverOffer.Status.PENDING or handover.status != Handover.Status.PENDING:
        raise HandoverClosed()
    now = timezone.now()
    close_handover_offer(offer, status=HandoverOffer.Status.DECLINED, reason="declined", now=now)
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.DECLINED,
        actor=agent.user,
        data={"handover_id": handover.pk, "agent": agent.display_name, "agent_id": agent.pk},
    )
    if not handover.offers.filter(status=HandoverOffer.Status.PENDING).exists():
        _stay(
            chat=chat,
            route=route,
            status=Handover.Status.DECLINED,
            outcome=Escalation.Outcome.DECLINED,
            why=f"Declined by {agent.display_name}",
            text=f"{agent.display_name} declined the hand-over: the chat stays with you.",
        )
    return offer


@transaction.atomic
def handle_handover_timeout(*, handover_id: int) -> str:
    """Close a pending hand-over whose deadline has passed, exactly once: the chat stays with
    its first agent. Like the other timers, it acts only on a still-pending row under its chat's
    lock, so a duplicate, late or redelivered task, or the sweep, changes nothing."""
    chat_id = Handover.objects.filter(pk=handover_id).values_list("chat_id", flat=True).first()
    if chat_id is None:
        return "gone"
    chat, route = lock_route(chat_id=chat_id)
    handover = Handover.objects.get(pk=handover_id)
    if handover.status != Handover.Status.PENDING:
        return "stale"
    now = timezone.now()
    if handover.deadline > now:
        timers.arm(timers.HANDOVER_TIMEOUT, handover.pk, deadline=handover.deadline)
        return "early"  # woke early (capped countdown): sleep again
    _stay(
        chat=chat,
        route=route,
        status=Handover.Status.TIMED_OUT,
        outcome=Escalation.Outcome.TIMED_OUT,
        why="No one accepted",
        text="No one accepted the hand-over in time: the chat stays with you.",
        late_ms=int((now - handover.deadline).total_seconds() * 1000),
    )
    return "timed out"


def sweep_overdue_handovers(*, limit: int = 200) -> int:
    """Catch hand-over deadlines whose timer task was lost."""
    overdue = Handover.objects.filter(
        status=Handover.Status.PENDING, deadline__lte=timezone.now()
    ).order_by("deadline")
    return timers.sweep(
        overdue.values_list("pk", flat=True)[:limit],
        lambda pk: handle_handover_timeout(handover_id=pk),
        "timed out",
    )


def _stay(
    *,
    chat: ChatSession,
    route: ChatRoute,
    status: str,
    outcome: str,
    why: str,
    text: str,
    receiver_text: str | None = None,
    late_ms: int | None = None,
) -> Handover:
    """The hand-over did not happen: the chat stays with its first agent, who is told, and so
    is the visitor of a warm one. A receiver who had joined leaves the chat (the visitor is told
    that first, so that its console shows the notice before letting go), and its freed place is
    dispatched. Caller holds the chat row lock."""
    open_now = Handover.objects.select_related("receiver").get(chat=chat, status__in=Handover.OPEN)
    receiver = open_now.receiver if open_now.status == Handover.Status.JOINED else None
    if receiver is not None:
        tell_agent_left(chat=chat, route=route, name=receiver.display_name)
    handover = close_open_handover(
        chat=chat,
        status=status,
        outcome=outcome,
        reason=status,
        text=text,
        receiver_text=receiver_text,
    )
    assert handover is not None  # noqa: S101 - the callers found it open under the same lock
    first = handover.from_agent
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.HANDOVER_FAILED,
        data={
            "handover_id": handover.pk,
            "why": why,
            "status": status,
            "agent": first.display_name,
            **({"late_ms": late_ms} if late_ms is not None else {}),
        },
    )
    if receiver is not None:
        dispatch(stage_ids=selectors.stages_to_dispatch_for(agent=receiver))
    elif handover.warm and chat.status == ChatSession.Status.ACTIVE:
        notify_visitor(
            chat=chat,
            event="warm_stayed",
            stage=route.stage,
            agent=first.display_name,
            team=route.stage.public,
            tier=route.tier.public,
        )
    return handover


def hand_to_joined_receiver(*, chat_id: int, agent: Agent) -> bool:
    """The first agent is gone (its console closed): a receiver who joined takes the chat over
    rather than the chat going back to the queue. Whether it did."""
    with transaction.atomic():
        chat, route = lock_route(chat_id=chat_id)
        handover = (
            Handover.objects.select_related(
                "escalation__to_stage", "escalation__to_tier", "escalation__to_group", "from_agent"
            )
            .filter(chat=chat, status=Handover.Status.JOINED, from_agent=agent)
            .first()
        )
        if handover is None or route.agent_id != agent.pk or not chat.is_open:
            return False
        _complete(chat=chat, route=route, handover=handover, now=timezone.now())
    return True
