"""Answering offers: accept, decline, and the lapse of a hunt offer whose accept timeout passed
(making and withdrawing offers is in `offering`, below dispatching)."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from chat import services as chat_services
from chat.events import PresenceChanged, agent_group, send_event_on_commit
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
from escalation.models import Agent, Assignment, ChatRoute, Offer, RoutingPolicy
from escalation.services import offering, timers
from escalation.services.assignment import assign
from escalation.services.dispatch import dispatch
from escalation.services.route import lock_route


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
    if offer.status != offering.PENDING:
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
    offering.close_offer(offer, status=Offer.Status.ACCEPTED, reason="accepted", now=now)
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
    if offer.status != offering.PENDING:
        raise _closed_error(chat=chat, route=route, offer=offer)
    now = timezone.now()
    offering.close_offer(offer, status=Offer.Status.DECLINED, reason="declined", now=now)
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
        offering.offer_next(chat=chat, route=route, entry_id=offer.entry_id)
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
    if offer.status != offering.PENDING:
        return "stale"
    if offer.deadline is None:
        return "no deadline"
    now = timezone.now()
    if offer.deadline > now:
        offering.arm_offer_timer(offer)  # woke early (capped countdown): sleep again
        return "early"
    _lapse(chat=chat, route=route, offer=offer, now=now)
    return "lapsed"


def sweep_overdue_offers(*, limit: int = 200) -> int:
    """Catch accept deadlines whose timer task was lost."""
    overdue = Offer.objects.filter(status=offering.PENDING, deadline__lte=timezone.now()).order_by(
        "deadline"
    )
    return timers.sweep(
        overdue.values_list("pk", flat=True)[:limit],
        lambda pk: handle_offer_timeout(offer_id=pk),
        "lapsed",
    )


def _lapse(*, chat: ChatSession, route: ChatRoute, offer: Offer, now: datetime) -> None:
    """Caller holds the chat row lock; the offer is pending and past its deadline."""
    offering.close_offer(offer, status=Offer.Status.LAPSED, reason="lapsed", now=now)
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
            PresenceChanged(
                presence=Agent.Presence.AWAY,
                reason=(
                    "an offer lapsed unanswered"
                    if limit == 1
                    else f"{limit} offers in a row lapsed unanswered"
                ),
            ),
        )
        offering.withdraw_agent_offers(agent=agent, reason="away", except_chat_id=chat.pk)
    offering.offer_next(chat=chat, route=route, entry_id=offer.entry_id)
    if not set_away:  # the place the offer held is free again for other waiting chats
        dispatch(stage_ids=selectors.stages_to_dispatch_for(agent=agent))
