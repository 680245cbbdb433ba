"""An agent who closes every console tab (or whose network is gone) is set offline after
AGENT_GONE_SECONDS and the chats they hold go back to their queues, so that chats are neither
routed to nor left with someone who is not there; a reload, a second tab or the console's 20 s
ping keeps them online; agents who never opened the console (API integrations) are never signed
out by the sweep."""

from datetime import timedelta

import pytest
import time_machine
from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from chat.models import ChatSession, FlowEvent
from escalation import services
from escalation.models import Agent, Assignment, RoutingPolicy
from escalation.tasks import sweep_gone_agents
from tests.chat.test_consumers import console_socket, frames_until, start


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

GONE = timedelta(seconds=settings.AGENT_GONE_SECONDS)


def presence(agent: Agent) -> str:
    return Agent.objects.get(pk=agent.pk).presence


def go_online(agent: Agent) -> None:
    services.set_presence(agent=agent, presence=Agent.Presence.ONLINE)


def round_robin(group) -> None:
    group.routing_policy = RoutingPolicy.ROUND_ROBIN
    group.save()


async def test_closing_the_last_console_tab_sets_the_agent_offline_after_the_grace_period(
    l1_setup, alice_agent, client
):
    await sync_to_async(round_robin)(l1_setup.g1)
    await sync_to_async(go_online)(alice_agent)
    held = await sync_to_async(start)()  # Alice is online with room: the chat is hers
    ws = await console_socket(client, alice_agent.user)
    assert (await ws.connect())[0]
    await frames_until(ws, "hello")
    await ws.disconnect()
    closed_at = timezone.now()

    with time_machine.travel(closed_at + GONE - timedelta(seconds=5)):
        assert await sync_to_async(sweep_gone_agents)() == 0  # a reload would come back in time
    assert await sync_to_async(presence)(alice_agent) == "online"

    with time_machine.travel(closed_at + GONE + timedelta(seconds=5)):
        assert await sync_to_async(sweep_gone_agents)() == 1
    assert await sync_to_async(presence)(alice_agent) == "offline"
    # The chat she held goes back to the queue, keeping its place, and its visitor is told ...
    held_now = await sync_to_async(ChatSession.objects.get)(pk=held.pk)
    assert held_now.status == ChatSession.Status.QUEUED
    assert await sync_to_async(open_assignments)(held) == []
    assert (await sync_to_async(last_notice)(held)).startswith("Alice")
    returned = await sync_to_async(
        lambda: FlowEvent.objects.filter(chat=held, kind="returned").get().data
    )()
    assert returned["why"] == "the agent's console closed"
    # ... and a new chat is no longer routed to her: it waits in the queue too.
    later = await sync_to_async(start)()
    status = await sync_to_async(lambda: ChatSession.objects.get(pk=later.pk).status)()
    assert status == ChatSession.Status.QUEUED


def open_assignments(chat: ChatSession) -> list[int]:
    return list(
        Assignment.objects.filter(chat=chat, ended_at__isnull=True).values_list("agent", flat=True)
    )


def last_notice(chat: ChatSession) -> str:
    return chat.messages.filter(kind="system").order_by("-seq").values_list("text", flat=True)[0]


async def test_an_open_console_that_pings_keeps_the_agent_online(alice_agent, client):
    await sync_to_async(go_online)(alice_agent)
    ws = await console_socket(client, alice_agent.user)
    assert (await ws.connect())[0]
    await frames_until(ws, "hello")
    later = timezone.now() + GONE + timedelta(seconds=30)
    with time_machine.travel(later):
        await ws.send_json_to({"type": "ping"})
        assert (await frames_until(ws, "pong"))[-1]["type"] == "pong"
        assert await sync_to_async(sweep_gone_agents)() == 0
    assert await sync_to_async(presence)(alice_agent) == "online"
    await ws.disconnect()


def test_agents_who_never_opened_the_console_or_are_away_by_choice_are_handled_as_expected(
    alice_agent, bob_agent_other_queue
):
    go_online(alice_agent)  # an API integration: never a console socket
    go_online(bob_agent_other_queue)
    services.set_presence(agent=bob_agent_other_queue, presence=Agent.Presence.AWAY)
    Agent.objects.filter(pk=bob_agent_other_queue.pk).update(
        console_seen_at=timezone.now() - GONE - timedelta(seconds=1)
    )
    assert sweep_gone_agents() == 1
    assert presence(alice_agent) == "online"
    assert presence(bob_agent_other_queue) == "offline"  # away, and the console gone: offline
    assert sweep_gone_agents() == 0  # offline already: nothing more to do


def test_a_console_seen_again_between_the_sweeps_read_and_its_lock_wins(alice_agent):
    go_online(alice_agent)
    seen_before = timezone.now() - GONE
    Agent.objects.filter(pk=alice_agent.pk).update(console_seen_at=seen_before - timedelta(1))
    services.mark_console_seen(agent_id=alice_agent.pk)  # the agent reconnected meanwhile
    assert not services.sign_out_if_console_gone(agent_id=alice_agent.pk, seen_before=seen_before)
    assert presence(alice_agent) == "online"


def test_presence_set_through_the_api_is_left_alone_by_the_sweep(alice_agent):
    from rest_framework.test import APIClient

    # Alice used the console long ago; now an integration keeps her online through the API.
    Agent.objects.filter(pk=alice_agent.pk).update(
        console_seen_at=timezone.now() - GONE - timedelta(days=1)
    )
    api = APIClient()
    api.force_authenticate(alice_agent.user)
    response = api.post("/api/v1/me/presence/", {"presence": "online"}, format="json")
    assert response.status_code == 200, response.content
    assert sweep_gone_agents() == 0
    assert presence(alice_agent) == "online"


def test_an_agent_offline_by_choice_whose_console_is_gone_hands_back_the_chats_they_hold(
    alice_agent,
):
    go_online(alice_agent)
    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    services.set_presence(agent=alice_agent, presence=Agent.Presence.OFFLINE)  # to finish it
    assert open_assignments(chat) == [alice_agent.pk]  # offline keeps the chat while she is there
    services.mark_console_seen(agent_id=alice_agent.pk)
    assert sweep_gone_agents() == 0
    Agent.objects.filter(pk=alice_agent.pk).update(
        console_seen_at=timezone.now() - GONE - timedelta(seconds=1)
    )
    assert sweep_gone_agents() == 1
    assert open_assignments(chat) == []
    assert ChatSession.objects.get(pk=chat.pk).status == ChatSession.Status.QUEUED
    assert sweep_gone_agents() == 0  # nothing left to do


def test_chats_stay_when_the_console_came_back_before_the_hand_back(alice_agent):
    go_online(alice_agent)
    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    seen_before = timezone.now() - GONE
    services.mark_console_seen(agent_id=alice_agent.pk)  # she reloaded the console meanwhile
    assert (
        services.hand_back_chats_of_gone_agent(agent_id=alice_agent.pk, seen_before=seen_before)
        == 0
    )
    assert open_assignments(chat) == [alice_agent.pk]


@pytest.mark.parametrize("how", ["disabled", "no longer an agent"])
def test_a_disabled_agents_chats_go_back_to_their_queues(l1_setup, alice_agent, how):
    from escalation.models import Agent, Assignment, QueueEntry

    services.set_presence(agent=alice_agent, presence="online")
    chat = services.start_chat(
        visitor_name="Carol",
        visitor_email="",
        topic_name="Billing",
        first_message="Hello",
        visitor_context={},
    )
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    user = alice_agent.user
    if how == "disabled":
        user.is_active = False
        user.save()
    else:
        user.groups.clear()
    assert services.sweep_gone_agents() == 1
    assert Agent.objects.get(pk=alice_agent.pk).presence == "offline"
    assignment = Assignment.objects.get(chat=chat)
    assert assignment.end_reason == "returned"
    entry = QueueEntry.objects.get(chat=chat, left_at__isnull=True)
    assert entry.reason == "returned"
    assert services.sweep_gone_agents() == 0  # done: nothing left to hand back


def test_an_agent_still_allowed_keeps_its_chats(l1_setup, alice_agent):
    services.set_presence(agent=alice_agent, presence="online")
    assert services.sweep_gone_agents() == 0
