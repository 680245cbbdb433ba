"""Agents' presence: online, away, offline; consoles seen (a console pings every 20 s), and
agents whose every console is gone signed out, their chats handed back to the queues."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat.events import PresenceChanged, agent_group, send_event_on_commit
from chat.exceptions import ChatClosed
from escalation import selectors
from escalation.exceptions import NotYourChat
from escalation.models import Agent
from escalation.services import offering
from escalation.services.dispatch import dispatch
from escalation.services.handover import hand_to_joined_receiver, leave_joined_handovers
from escalation.services.lifecycle import return_to_queue


@transaction.atomic
def set_presence(*, agent: Agent, presence: str, by_integration: bool = False) -> Agent:
    """Going online makes the agent's automatic queues dispatch to it. Going away or offline keeps
    the chats it holds (it can finish them); it is only left out of new assignments.

    `by_integration` (the API): the presence is kept by a program, not by a console, so the sweep
    of closed consoles leaves it alone until the agent opens the console again."""
    if presence not in Agent.Presence.values:
        raise ValueError(f"Unknown presence {presence!r}")
    locked = Agent.objects.select_for_update().get(pk=agent.pk)
    if by_integration and locked.console_seen_at is not None:
        locked.console_seen_at = None
        locked.save(update_fields=["console_seen_at"])
    if locked.presence != presence:
        locked.presence = presence
        locked.presence_changed_at = timezone.now()
        if presence == Agent.Presence.ONLINE:
            locked.lapses_in_a_row = 0  # back at the desk: a fresh count for auto-away
        locked.save(update_fields=["presence", "presence_changed_at", "lapses_in_a_row"])
    send_event_on_commit(agent_group(locked.pk), PresenceChanged(presence=presence))
    if presence == Agent.Presence.ONLINE:
        dispatch(stage_ids=selectors.stages_to_dispatch_for(agent=locked))
    else:
        offering.withdraw_agent_offers(agent=locked, reason=presence)
    return locked


def mark_console_seen(*, agent_id: int) -> None:
    mark_consoles_seen(agent_ids=[agent_id])


def mark_consoles_seen(*, agent_ids: Sequence[int]) -> list[None]:
    """These agents' consoles are still open (one UPDATE for all of them)."""
    Agent.objects.filter(pk__in=set(agent_ids)).update(console_seen_at=timezone.now())
    return [None] * len(agent_ids)


@transaction.atomic
def sign_out_if_console_gone(*, agent_id: int, seen_before: datetime) -> bool:
    """Set offline an agent whose console has not been seen since `seen_before` (every console
    tab closed, or the network gone), so that no chat is routed to someone who is not there. The
    chats it holds stay with it, as with any change to offline."""
    agent = Agent.objects.select_for_update().get(pk=agent_id)
    if agent.presence == Agent.Presence.OFFLINE:
        return False
    if agent.console_seen_at is None or agent.console_seen_at >= seen_before:
        return False
    set_presence(agent=agent, presence=Agent.Presence.OFFLINE)
    return True


def hand_back_chats_of_gone_agent(*, agent_id: int, seen_before: datetime) -> int:
    """Return to their queues (keeping their places) the chats an agent whose console has not
    been seen since `seen_before` still holds, so that their visitors are served by someone who is
    there, and leave the chats it joined to take over with their first agents. Each in its own
    transaction, after the agent is offline; it stops if the agent's console comes back
    meanwhile, and skips a chat that ended or moved."""
    agent = Agent.objects.get(pk=agent_id)
    returned = 0
    seen = Agent.objects.filter(pk=agent_id).values_list("console_seen_at", flat=True)

    def still_gone() -> bool:
        last_seen = seen.first()
        return last_seen is not None and last_seen < seen_before

    for chat_id in selectors.open_assignment_chat_ids(agent=agent):
        if not still_gone():
            return returned  # back at the console (or never used one): the chats stay
        try:
            if not hand_to_joined_receiver(chat_id=chat_id, agent=agent):
                return_to_queue(chat_id=chat_id, agent=agent, why="the agent's console closed")
        except (ChatClosed, NotYourChat):
            continue
        returned += 1
    if still_gone():
        returned += leave_joined_handovers(agent=agent, why="their console closed")
    return returned


def sweep_gone_agents(*, limit: int = 500) -> int:
    """An agent none of whose console tabs has been seen for AGENT_GONE_SECONDS is set offline,
    and the chats they still hold go back to their queues, keeping their places: no chat is
    routed to, or left with, someone who is not there. Returns how many agents were signed out
    or had chats handed back."""
    seen_before = timezone.now() - timedelta(seconds=settings.AGENT_GONE_SECONDS)
    agent_ids = selectors.agents_gone_since(seen_before=seen_before, limit=limit)
    for agent_id in agent_ids:
        sign_out_if_console_gone(agent_id=agent_id, seen_before=seen_before)
        hand_back_chats_of_gone_agent(agent_id=agent_id, seen_before=seen_before)
    return len(agent_ids) + retire_disabled_agents(limit=limit)


def retire_disabled_agents(*, limit: int = 500) -> int:
    """Agents whose account was disabled (or lost the agent role) but are still online or hold
    chats: set offline, their chats back to their queues keeping their places, as for an agent
    whose console is gone (their sockets are closed by the consoles' own re-check)."""
    agent_ids = selectors.disabled_agents_still_working(limit=limit)
    for agent_id in agent_ids:
        agent = Agent.objects.get(pk=agent_id)
        if agent.presence != Agent.Presence.OFFLINE:
            set_presence(agent=agent, presence=Agent.Presence.OFFLINE)
        for chat_id in selectors.open_assignment_chat_ids(agent=agent):
            try:
                return_to_queue(
                    chat_id=chat_id, agent=agent, why="the agent may no longer take chats"
                )
            except (ChatClosed, NotYourChat):
                continue
        leave_joined_handovers(agent=agent, why="they may no longer take chats")
    return len(agent_ids)
