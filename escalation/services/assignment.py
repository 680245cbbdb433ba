"""Giving a waiting chat to an agent: by the agent's own pick (`take_chat`) or by routing
(`assign`, called by dispatching, offers and fallbacks)."""

from django.db import transaction
from django.utils import timezone

from chat import services as chat_services
from chat.events import ChatAssigned, agent_group, send_event_on_commit
from chat.exceptions import ChatClosed, ChatNotFound
from chat.models import ChatSession, FlowEvent
from escalation import selectors
from escalation.exceptions import AgentNotOnline, AlreadyTaken, AtCapacity
from escalation.models import Agent, Assignment, ChatRoute, Escalation, QueueEntry
from escalation.services import offering
from escalation.services.queueing import leave_queue
from escalation.services.route import lock_route, notify_visitor


@transaction.atomic
def take_chat(*, chat_id: int, agent: Agent) -> Assignment:
    """An agent picks a waiting chat. Exactly one of two agents taking at once wins."""
    chat, route = lock_route(chat_id=chat_id)
    if not chat.is_open:
        raise ChatClosed()
    entry = route.entry
    if chat.status != ChatSession.Status.QUEUED or entry is None:
        raise AlreadyTaken()
    if not selectors.can_serve(agent=agent, entry=entry):
        # As for a chat that does not exist: an agent learns nothing of other groups' chats.
        raise ChatNotFound()
    locked_agent = Agent.objects.select_for_update().get(pk=agent.pk)
    if locked_agent.presence != Agent.Presence.ONLINE:
        raise AgentNotOnline()
    if selectors.agent_load(locked_agent) >= selectors.effective_capacity(locked_agent):
        raise AtCapacity()
    return assign(chat=chat, route=route, entry=entry, agent=locked_agent)


def assign(*, chat: ChatSession, route: ChatRoute, entry: QueueEntry, agent: Agent) -> Assignment:
    """Give the waiting chat to `agent`. Caller holds the chat and agent row locks and has
    checked presence and capacity."""
    now = timezone.now()
    leave_queue(entry=entry, outcome=QueueEntry.Outcome.TAKEN)
    Escalation.objects.filter(entry=entry, taken_at__isnull=True).update(
        taken_at=now, taken_by=agent
    )
    group = selectors.serving_group_for(agent=agent, entry=entry)
    assignment = Assignment.objects.create(
        chat=chat, agent=agent, tier=entry.tier, stage=entry.stage, group=group, started_at=now
    )
    route.agent, route.entry = agent, None
    route.save(update_fields=["agent", "entry"])
    agent.last_assigned_at = now
    agent.lapses_in_a_row = 0
    agent.save(update_fields=["last_assigned_at", "lapses_in_a_row"])
    chat_services.change_status(chat=chat, to=ChatSession.Status.ACTIVE)
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.ASSIGNED,
        actor=agent.user,
        data={
            "agent": agent.display_name,
            "agent_id": agent.pk,
            "tier": entry.tier.level,
            "stage": entry.stage.name,
            "group": group.name if group else None,
            "waited_seconds": int((now - entry.entered_at).total_seconds()),
        },
    )
    notify_visitor(
        chat=chat,
        event="agent_joined",
        stage=entry.stage,
        agent=agent.display_name,
        team=group.public if group else selectors.public_team(entry),
        tier=entry.tier.public,
    )
    send_event_on_commit(agent_group(agent.pk), ChatAssigned(chat=chat.pk))
    if selectors.agent_load(agent) >= selectors.effective_capacity(agent):
        offering.withdraw_agent_offers(agent=agent, reason="full", except_chat_id=chat.pk)
    return assignment
