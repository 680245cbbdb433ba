"""Making and withdrawing offers: the broadcast and round-robin hunt routing policies.

*Broadcast* offers a waiting chat to every eligible agent (online, under capacity) of the groups
that route it, at once; the first to accept gets it and every other offer is withdrawn in the same
transaction (the consoles drop it after commit). *Round-robin hunt* offers it to one agent at a
time, the eligible agent offered a chat longest ago first; an offer not accepted within the
stage's accept timeout lapses and the chat is offered to the next agent. An agent who declined or
let an offer lapse is never offered the same wait again; when everyone has passed, the chat
stays queued (agents can still take it from the queue) until its wait-timeout.

Answering offers (accept, decline, lapse) is in `offers`, above dispatching.

Locks: the chat row first (`lock_route`, or SKIP LOCKED from dispatch), then agent rows, as
everywhere. Work on *other* chats (an agent going away or filling up withdraws its other offers)
takes their locks with SKIP LOCKED, so two such transactions never wait on each other; an offer
skipped that way is withdrawn when its own deadline passes or its chat next changes.
"""

from datetime import datetime, timedelta

from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from chat import services as chat_services
from chat.events import OfferClosed, agent_group, send_event_on_commit
from chat.models import ChatSession, FlowEvent
from escalation import frames, selectors
from escalation.models import (
    OFFER_POLICIES,
    Agent,
    AgentGroup,
    ChatRoute,
    Offer,
    QueueEntry,
    RoutingPolicy,
)
from escalation.services import timers

# Offers that still count against an agent's free places in a round-robin hunt.
PENDING = Offer.Status.PENDING


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


def offer_next(*, chat: ChatSession, route: ChatRoute, entry_id: int) -> int:
    """After an offer of `entry_id` closed without an accept: offer the chat on, if it still
    waits there and its routing still offers. Caller holds the chat row lock."""
    if route.entry_id != entry_id or chat.status != ChatSession.Status.QUEUED:
        return 0
    entry = QueueEntry.objects.select_related("stage", "tier", "group").get(pk=entry_id)
    policy, groups = selectors.routing_of(entry)
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
    if Offer.objects.filter(entry=entry, status=PENDING).exists():
        return 0  # the hunt offers one agent at a time
    # A pending hunt offer holds one of the agent's free places until it is answered.
    pending = (
        Offer.objects.filter(agent=OuterRef("pk"), status=PENDING, policy=RoutingPolicy.HUNT)
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
    send_event_on_commit(agent_group(agent.pk), frames.offer_payload(offer=offer, now=now))
    arm_offer_timer(offer)
    return offer


def arm_offer_timer(offer: Offer) -> None:
    timers.arm(timers.OFFER_TIMEOUT, offer.pk, deadline=offer.deadline)


def close_offer(offer: Offer, *, status: str, reason: str, now: datetime | None = None) -> None:
    offer.status = status
    offer.closed_at = now or timezone.now()
    offer.closed_reason = reason
    offer.save(update_fields=["status", "closed_at", "closed_reason"])
    send_event_on_commit(
        agent_group(offer.agent_id),
        OfferClosed(offer=offer.pk, chat=offer.chat_id, status=status, reason=reason),
    )


def withdraw_entry_offers(*, entry: QueueEntry, reason: str) -> int:
    """The chat left `entry` (taken, timed out, visitor gone ...): its open offers are withdrawn
    and vanish from the consoles. Caller holds the chat row lock."""
    pending = list(Offer.objects.filter(entry=entry, status=PENDING))
    now = timezone.now()
    for offer in pending:
        close_offer(offer, status=Offer.Status.WITHDRAWN, reason=reason, now=now)
    return len(pending)


def withdraw_agent_offers(*, agent: Agent, reason: str, except_chat_id: int | None = None) -> int:
    """The agent went away or offline, or is full: withdraw its open offers of other chats and
    offer those chats on. Chats locked by another transaction right now are skipped (see the
    module docstring)."""
    withdrawn = 0
    for offer in Offer.objects.filter(agent=agent, status=PENDING).exclude(chat_id=except_chat_id):
        chat = (
            ChatSession.objects.select_for_update(skip_locked=True).filter(pk=offer.chat_id).first()
        )
        if chat is None:
            continue
        route = ChatRoute.objects.select_for_update(of=("self",)).get(chat=chat)
        offer.refresh_from_db(fields=["status"])
        if offer.status != PENDING:
            continue
        close_offer(offer, status=Offer.Status.WITHDRAWN, reason=reason)
        withdrawn += 1
        if offer.policy == RoutingPolicy.HUNT:
            offer_next(chat=chat, route=route, entry_id=offer.entry_id)
    return withdrawn
