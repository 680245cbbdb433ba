"""Offers: the broadcast and round-robin hunt routing policies.

*Broadcast* offers a waiting chat to every eligible agent (online, under capacity) of the groups
that route it, at once; the first to accept gets it and every other offer is withdrawn in the same
transaction (the consoles drop it after commit). *Round-robin hunt* offers it to one agent at a
time, the eligible agent offered a chat longest ago first; an offer not accepted within the
stage's accept timeout lapses and the chat is offered to the next agent. An agent who declined or
let an offer lapse is never offered the same wait again; when everyone has passed, the chat
stays queued (agents can still take it from the queue) until its wait-timeout.

Locks: the chat row first (`lock_route`, or SKIP LOCKED from dispatch), then agent rows, as in
routing. Work on *other* chats (an agent going away or filling up withdraws its other offers)
takes their locks with SKIP LOCKED, so two such transactions never wait on each other; an offer
skipped that way is withdrawn when its own deadline passes or its chat next changes.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from chat import services as chat_services
from chat.events import agent_group, send_event_on_commit
from chat.exceptions import ChatClosed, ChatError
from chat.models import ChatSession, FlowEvent
from escalation import selectors
from escalation.exceptions import (
    AgentNotOnline,
    AlreadyTaken,
    AtCapacity,
    OfferClosed,
    OfferLapsed,
    OfferNotFound,
)
from escalation.models import (
    OFFER_POLICIES,
    Agent,
    AgentGroup,
    Assignment,
    ChatRoute,
    Offer,
    QueueEntry,
    RoutingPolicy,
)
from escalation.services import timers
from escalation.services.routing import assign, dispatch, lock_route, routing_of

# Offers that still count against an agent's free places in a round-robin hunt.
_PENDING = Offer.Status.PENDING


def offer_entry(*, entry_id: int, groups: QuerySet[AgentGroup], policy: str) -> int:
    """Offer the chat waiting in `entry_id` to agents of `groups`, by `policy`. Runs inside the
    caller's transaction (as dispatch does, with SKIP LOCKED); returns how many offers it made."""
    entry = QueueEntry.objects.filter(pk=entry_id, left_at__isnull=True).only("chat_id").first()
    if entry is None:
        return 0
    chat = ChatSession.objects.select_for_update(skip_locked=True).filter(pk=entry.chat_id).first()
    if chat is None:  # someone else is changing this chat right now; they will offer after
        return 0
    route = ChatRoute.objects.select_for_update(of=("self",)).get(chat=chat)
    if route.entry_id != entry_id or chat.status != ChatSession.Status.QUEUED:
        return 0
    locked_entry = QueueEntry.objects.select_related("stage", "tier", "group").get(pk=entry_id)
    return _make_offers(chat=chat, entry=locked_entry, groups=groups, policy=policy)


def _offer_next(*, chat: ChatSession, route: ChatRoute, entry_id: int) -> int:
    """After an offer of `entry_id` closed without an accept: offer the chat on, if it still
    waits there and its routing still offers. Caller holds the chat row lock."""
    if route.entry_id != entry_id or chat.status != ChatSession.Status.QUEUED:
        return 0
    entry = QueueEntry.objects.select_related("stage", "tier", "group").get(pk=entry_id)
    policy, groups = routing_of(entry)
    if policy not in OFFER_POLICIES:
        return 0
    return _make_offers(chat=chat, entry=entry, groups=groups, policy=str(policy))


def _make_offers(
    *, chat: ChatSession, entry: QueueEntry, groups: QuerySet[AgentGroup], policy: str
) -> int:
    """Caller holds the chat row lock and has checked that the chat waits in `entry`."""
    # Who answered (or holds an offer of) this wait is not offered it again; an offer withdrawn
    # because the agent went away or filled up may be made again when it is back.
    passed = Offer.objects.filter(entry=entry).exclude(status=Offer.Status.WITHDRAWN)
    candidates = selectors.candidates_for(entry=entry, groups=groups).exclude(
        pk__in=passed.values("agent_id")
    )
    now = timezone.now()
    if policy == RoutingPolicy.BROADCAST:
        made = 0
        for agent in candidates.order_by("pk"):
            _offer(chat=chat, entry=entry, agent=agent, policy=policy, now=now, deadline=None)
            made += 1
        return made
    if Offer.objects.filter(entry=entry, status=_PENDING).exists():
        return 0  # the hunt offers one agent at a time
    # A pending hunt offer holds one of the agent's free places until it is answered.
    pending = (
        Offer.objects.filter(agent=OuterRef("pk"), status=_PENDING, policy=RoutingPolicy.HUNT)
        .order_by()
        .values("agent")
        .annotate(n=Count("pk"))
        .values("n")
    )
    ordered = (
        candidates.annotate(
            pending=Coalesce(Subquery(pending, output_field=IntegerField()), Value(0))
        )
        .filter(Q(free__gt=F("pending")))  # `free` is annotated by available_agents
        .order_by(
            F("last_offered_at").asc(nulls_first=True),
            F("last_assigned_at").asc(nulls_first=True),
            "pk",
        )
    )
    deadline = now + timedelta(seconds=entry.stage.accept_timeout_seconds)
    for candidate in ordered[:5]:
        locked = (
            Agent.objects.select_for_update(skip_locked=True)
            .filter(pk=candidate.pk, presence=Agent.Presence.ONLINE)
            .first()
        )
        if locked is None:
            continue
        locked.last_offered_at = now
        locked.save(update_fields=["last_offered_at"])
        _offer(chat=chat, entry=entry, agent=locked, policy=policy, now=now, deadline=deadline)
        return 1
    return 0


def _offer(
    *,
    chat: ChatSession,
    entry: QueueEntry,
    agent: Agent,
    policy: str,
    now: datetime,
    deadline: datetime | None,
) -> Offer:
    offer = Offer.objects.create(
        entry=entry,
        chat=chat,
        agent=agent,
        group=selectors.serving_group_for(agent=agent, entry=entry),
        stage=entry.stage,
        policy=policy,
        offered_at=now,
        deadline=deadline,
    )
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.OFFERED,
        data={
            "offer_id": offer.pk,
            "agent": agent.display_name,
            "agent_id": agent.pk,
            "policy": policy,
            "stage": entry.stage.name,
            "deadline": deadline.isoformat() if deadline else None,
        },
    )
    send_event_on_commit(agent_group(agent.pk), selectors.offer_payload(offer=offer, now=now))
    arm_offer_timer(offer)
    return offer


def arm_offer_timer(offer: Offer) -> None:
    from escalation.tasks import offer_timeout

    timers.arm(offer_timeout, offer.pk, deadline=offer.deadline)


def _close(offer: Offer, *, status: str, reason: str, now: datetime | None = None) -> None:
    offer.status = status
    offer.closed_at = now or timezone.now()
    offer.closed_reason = reason
    offer.save(update_fields=["status", "closed_at", "closed_reason"])
    send_event_on_commit(
        agent_group(offer.agent_id),
        {
            "type": "offer.closed",
            "offer": offer.pk,
            "chat": offer.chat_id,
            "status": status,
            "reason": reason,
        },
    )


def withdraw_entry_offers(*, entry: QueueEntry, reason: str) -> int:
    """The chat left `entry` (taken, timed out, visitor gone ...): its open offers are withdrawn
    and vanish from the consoles. Caller holds the chat row lock."""
    pending = list(Offer.objects.filter(entry=entry, status=_PENDING))
    now = timezone.now()
    for offer in pending:
        _close(offer, status=Offer.Status.WITHDRAWN, reason=reason, now=now)
    return len(pending)


def withdraw_agent_offers(*, agent: Agent, reason: str, except_chat_id: int | None = None) -> int:
    """The agent went away or offline, or is full: withdraw its open offers of other chats and
    offer those chats on. Chats locked by another transaction right now are skipped (see the
    module docstring)."""
    withdrawn = 0
    for offer in Offer.objects.filter(agent=agent, status=_PENDING).exclude(chat_id=except_chat_id):
        chat = (
            ChatSession.objects.select_for_update(skip_locked=True).filter(pk=offer.chat_id).first()
        )
        if chat is None:
            continue
        route = ChatRoute.objects.select_for_update(of=("self",)).get(chat=chat)
        offer.refresh_from_db(fields=["status"])
        if offer.status != _PENDING:
            continue
        _close(offer, status=Offer.Status.WITHDRAWN, reason=reason)
        withdrawn += 1
        if offer.policy == RoutingPolicy.HUNT:
            _offer_next(chat=chat, route=route, entry_id=offer.entry_id)
    return withdrawn


def _locked_offer(*, offer_id: int, agent: Agent) -> tuple[ChatSession, ChatRoute, Offer]:
    """Lock the offer's chat, then read the offer: it cannot change under us after that."""
    chat_id = (
        Offer.objects.filter(pk=offer_id, agent=agent).values_list("chat_id", flat=True).first()
    )
    if chat_id is None:
        raise OfferNotFound()
    chat, route = lock_route(chat_id=chat_id)
    offer = Offer.objects.select_related("entry__stage", "entry__tier", "group").get(pk=offer_id)
    return chat, route, offer


def _closed_error(*, chat: ChatSession, route: ChatRoute, offer: Offer) -> ChatError:
    if offer.status == Offer.Status.LAPSED:
        return OfferLapsed()
    if not chat.is_open:
        return ChatClosed()
    if route.entry_id != offer.entry_id or chat.status != ChatSession.Status.QUEUED:
        return AlreadyTaken()
    return OfferClosed()


def accept_offer(*, offer_id: int, agent: Agent) -> Assignment:
    """The agent accepts an offer. Of two agents accepting offers of the same chat at once,
    exactly one gets it (the chat row lock serialises them); the other's offer is withdrawn by
    then and it is told the chat was taken. An offer past its deadline lapses instead."""
    assignment = _accept_or_lapse(offer_id=offer_id, agent=agent)
    if assignment is None:
        raise OfferLapsed()  # after the lapse above committed: the offer has moved on
    return assignment


@transaction.atomic
def _accept_or_lapse(*, offer_id: int, agent: Agent) -> Assignment | None:
    chat, route, offer = _locked_offer(offer_id=offer_id, agent=agent)
    now = timezone.now()
    if offer.status != _PENDING:
        raise _closed_error(chat=chat, route=route, offer=offer)
    if offer.deadline is not None and offer.deadline <= now:
        _lapse(chat=chat, route=route, offer=offer, now=now)
        return None
    if route.entry_id != offer.entry_id or chat.status != ChatSession.Status.QUEUED:
        raise AlreadyTaken()  # cannot happen while the offer is pending; kept as a guard
    locked_agent = Agent.objects.select_for_update().get(pk=agent.pk)
    if locked_agent.presence != Agent.Presence.ONLINE:
        raise AgentNotOnline()
    if selectors.agent_load(locked_agent) >= selectors.effective_capacity(locked_agent):
        raise AtCapacity()
    _close(offer, status=Offer.Status.ACCEPTED, reason="accepted", now=now)
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.ACCEPTED,
        actor=locked_agent.user,
        data={
            "offer_id": offer.pk,
            "agent": locked_agent.display_name,
            "agent_id": locked_agent.pk,
            "policy": offer.policy,
            "seconds_to_accept": round((now - offer.offered_at).total_seconds(), 3),
        },
    )
    return assign(chat=chat, route=route, entry=offer.entry, agent=locked_agent)


@transaction.atomic
def decline_offer(*, offer_id: int, agent: Agent) -> Offer:
    """The agent declines: the offer closes for it (never offered this wait again) and a hunt
    moves on to the next agent at once."""
    chat, route, offer = _locked_offer(offer_id=offer_id, agent=agent)
    if offer.status != _PENDING:
        raise _closed_error(chat=chat, route=route, offer=offer)
    now = timezone.now()
    _close(offer, status=Offer.Status.DECLINED, reason="declined", now=now)
    Agent.objects.filter(pk=agent.pk).update(lapses_in_a_row=0)
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.DECLINED,
        actor=agent.user,
        data={
            "offer_id": offer.pk,
            "agent": agent.display_name,
            "agent_id": agent.pk,
            "policy": offer.policy,
            "seconds_to_answer": round((now - offer.offered_at).total_seconds(), 3),
        },
    )
    if offer.policy == RoutingPolicy.HUNT:
        _offer_next(chat=chat, route=route, entry_id=offer.entry_id)
        # The place the offer held is free again for the other chats waiting for this agent.
        dispatch(stage_ids=selectors.stages_to_dispatch_for(agent=agent))
    return offer


@transaction.atomic
def handle_offer_timeout(*, offer_id: int) -> str:
    """Lapse a pending offer whose accept deadline has passed, exactly once, and offer the chat
    to the next agent. Like handle_wait_timeout: only a still-pending offer is touched, under its
    chat's row lock, so a duplicate, late or redelivered task, or the sweep, changes nothing."""
    chat_id = Offer.objects.filter(pk=offer_id).values_list("chat_id", flat=True).first()
    if chat_id is None:
        return "gone"
    chat, route = lock_route(chat_id=chat_id)
    offer = Offer.objects.select_related("entry__stage", "group").get(pk=offer_id)
    if offer.status != _PENDING:
        return "stale"
    if offer.deadline is None:
        return "no deadline"
    now = timezone.now()
    if offer.deadline > now:
        arm_offer_timer(offer)  # woke early (capped countdown): sleep again
        return "early"
    _lapse(chat=chat, route=route, offer=offer, now=now)
    return "lapsed"


def sweep_overdue_offers(*, limit: int = 200) -> int:
    """Catch accept deadlines whose timer task was lost."""
    overdue = Offer.objects.filter(status=_PENDING, deadline__lte=timezone.now()).order_by(
        "deadline"
    )
    return timers.sweep(
        overdue.values_list("pk", flat=True)[:limit],
        lambda pk: handle_offer_timeout(offer_id=pk),
        "lapsed",
    )


def _lapse(*, chat: ChatSession, route: ChatRoute, offer: Offer, now: datetime) -> None:
    """Caller holds the chat row lock; the offer is pending and past its deadline."""
    _close(offer, status=Offer.Status.LAPSED, reason="lapsed", now=now)
    agent = Agent.objects.select_for_update().get(pk=offer.agent_id)
    agent.lapses_in_a_row += 1
    limit = offer.group.auto_away_after_lapses if offer.group is not None else 0
    set_away = bool(limit) and agent.lapses_in_a_row >= limit and agent.is_online
    if set_away:
        agent.presence = Agent.Presence.AWAY
        agent.presence_changed_at = now
        agent.lapses_in_a_row = 0
    agent.save(update_fields=["lapses_in_a_row", "presence", "presence_changed_at"])
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.LAPSED,
        data={
            "offer_id": offer.pk,
            "agent": agent.display_name,
            "agent_id": agent.pk,
            "policy": offer.policy,
            "deadline": offer.deadline.isoformat() if offer.deadline else None,
            "late_ms": int((now - offer.deadline).total_seconds() * 1000) if offer.deadline else 0,
            "set_away": set_away,
        },
    )
    if set_away:
        send_event_on_commit(
            agent_group(agent.pk),
            {
                "type": "presence",
                "presence": Agent.Presence.AWAY,
                "reason": f"{limit} offers in a row lapsed unanswered",
            },
        )
        withdraw_agent_offers(agent=agent, reason="away", except_chat_id=chat.pk)
    _offer_next(chat=chat, route=route, entry_id=offer.entry_id)
    if not set_away:  # the place the offer held is free again for other waiting chats
        dispatch(stage_ids=selectors.stages_to_dispatch_for(agent=agent))
