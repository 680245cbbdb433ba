"""The realtime contract on real sockets (WebsocketCommunicator through the full ASGI stack, on
the configured channel layer): typing both ways, the visitor gone while held, the chat's end
before the agent's removal, and who may stay on a console socket."""

import datetime as dt

import pytest
import time_machine
from asgiref.sync import sync_to_async
from django.utils import timezone

from chat.models import ChatSession, FlowEvent, Message
from escalation import services
from escalation.models import Assignment
from tests.chat.test_consumers import console_socket, frames_until, start, visitor_socket

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


async def held_chat(alice_agent):
    chat = await sync_to_async(start)()
    await sync_to_async(services.take_chat)(chat_id=chat.pk, agent=alice_agent)
    return chat


async def both_sides(chat, alice_agent, client):
    visitor = await visitor_socket(chat)
    await visitor.connect()
    await frames_until(visitor, "replay.done")
    agent = await console_socket(client, alice_agent.user)
    await agent.connect()
    await frames_until(agent, "hello")
    await agent.send_json_to({"type": "subscribe", "chat": chat.pk})
    await frames_until(agent, "replay.done")
    return visitor, agent


async def test_typing_reaches_the_other_side_and_is_never_stored(alice_agent, client):
    chat = await held_chat(alice_agent)
    visitor, agent = await both_sides(chat, alice_agent, client)
    stored = await sync_to_async(Message.objects.filter(chat=chat).count)()

    await visitor.send_json_to({"type": "typing", "active": True})
    typing = (await frames_until(agent, "typing"))[-1]
    assert typing == {
        "type": "typing",
        "v": 3,
        "chat": chat.pk,
        "who": "visitor",
        "name": "Carol",
        "active": True,
    }
    await visitor.send_json_to({"type": "typing", "active": True})  # the same, too soon
    await visitor.send_json_to({"type": "typing", "active": False})
    assert (await frames_until(agent, "typing"))[-1]["active"] is False

    await agent.send_json_to({"type": "typing", "chat": chat.pk, "active": True})
    typing = (await frames_until(visitor, "typing"))[-1]
    assert (typing["who"], typing["name"], typing["active"]) == ("agent", "Alice", True)
    assert await sync_to_async(Message.objects.filter(chat=chat).count)() == stored
    await agent.disconnect()
    await visitor.disconnect()


async def test_an_agent_may_only_type_in_a_chat_it_holds(alice_agent, client):
    chat = await sync_to_async(start)()  # waiting, not held
    agent = await console_socket(client, alice_agent.user)
    await agent.connect()
    await frames_until(agent, "hello")
    await agent.send_json_to({"type": "typing", "chat": chat.pk, "active": True})
    error = (await frames_until(agent, "error"))[-1]
    assert error["code"] == "not_your_chat"
    await agent.disconnect()


async def test_the_visitor_ending_shows_the_agent_the_notice_then_the_end_then_the_removal(
    alice_agent, client
):
    chat = await held_chat(alice_agent)
    visitor, agent = await both_sides(chat, alice_agent, client)
    await visitor.send_json_to({"type": "end"})
    frames = await frames_until(agent, "chat.removed")
    kinds = [(f["type"], f.get("event") or f.get("status") or f.get("reason")) for f in frames]
    assert kinds[-4:] == [
        ("message", "visitor_left"),
        ("message", "ended"),
        ("chat.status", "ended"),
        ("chat.removed", "visitor_left"),
    ]
    notice, ended, status, removed = frames[-4:]
    assert notice["kind"] == "internal" and notice["text"] == "Carol left the chat."
    assert status["by"] == "visitor" and status["seq"] == ended["seq"] == removed["seq"]
    # The visitor never sees the agents' notice.
    seen = await frames_until(visitor, "chat.status")
    assert "visitor_left" not in [f.get("event") for f in seen]
    await agent.disconnect()
    await visitor.disconnect()


async def test_a_visitor_whose_page_went_silent_ends_a_held_chat_and_frees_the_agent(
    alice_agent, client, settings
):
    chat = await held_chat(alice_agent)
    visitor, agent = await both_sides(chat, alice_agent, client)
    await visitor.disconnect()  # the tab closed
    later = timezone.now() + dt.timedelta(seconds=settings.VISITOR_GONE_SECONDS + 1)
    with time_machine.travel(later, tick=False):
        assert await sync_to_async(services.sweep_gone_visitors)() == 1
    frames = await frames_until(agent, "chat.removed")
    status = next(f for f in frames if f["type"] == "chat.status")
    assert (status["status"], status["by"]) == ("ended", "visitor_gone")
    assert any(f.get("event") == "visitor_left" for f in frames)
    assignment = await sync_to_async(Assignment.objects.get)(chat=chat)
    assert assignment.end_reason == "visitor_left" and assignment.ended_at is not None
    ended = await sync_to_async(FlowEvent.objects.get)(chat=chat, kind="ended")
    assert ended.data["why"] == "visitor left the page"
    assert (await sync_to_async(ChatSession.objects.get)(pk=chat.pk)).status == "ended"
    await agent.disconnect()


async def test_a_visitor_still_there_keeps_the_chat(alice_agent, client, settings):
    chat = await held_chat(alice_agent)
    soon = timezone.now() + dt.timedelta(seconds=settings.VISITOR_GONE_SECONDS - 5)
    with time_machine.travel(soon, tick=False):
        assert await sync_to_async(services.sweep_gone_visitors)() == 0
    assert (await sync_to_async(ChatSession.objects.get)(pk=chat.pk)).status == "active"


@pytest.mark.parametrize(
    "how", ["disabled", "logged out", "no longer an agent", "password changed"]
)
async def test_a_console_is_closed_once_its_agent_may_no_longer_use_it(
    alice_agent, client, settings, how
):
    settings.AGENT_RECHECK_SECONDS = 0.2
    chat = await held_chat(alice_agent)
    agent = await console_socket(client, alice_agent.user)
    await agent.connect()
    await frames_until(agent, "hello")
    user = alice_agent.user
    if how == "disabled":
        user.is_active = False
        await sync_to_async(user.save)()
    elif how == "logged out":
        await sync_to_async(client.logout)()
    elif how == "no longer an agent":
        await sync_to_async(user.groups.clear)()
    else:
        user.set_password("a new one")
        await sync_to_async(user.save)()
    closed = None
    for _ in range(50):
        output = await agent.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            closed = output
            break
    assert closed is not None and closed["code"] == 4403
    # Nothing it sends afterwards is stored.
    assert not await sync_to_async(Message.objects.filter(chat=chat, kind="agent").exists)()


async def test_an_action_right_after_a_disable_is_refused(alice_agent, client, settings):
    settings.AGENT_RECHECK_SECONDS = 60  # the tick is far off: the action itself re-checks
    settings.AGENT_ACTION_RECHECK_SECONDS = 0
    chat = await held_chat(alice_agent)
    agent = await console_socket(client, alice_agent.user)
    await agent.connect()
    await frames_until(agent, "hello")
    user = alice_agent.user
    user.is_active = False
    await sync_to_async(user.save)()
    await agent.send_json_to({"type": "message", "chat": chat.pk, "text": "hi"})
    output = await agent.receive_output(timeout=3)
    assert (output["type"], output.get("code")) == ("websocket.close", 4403)
    assert not await sync_to_async(Message.objects.filter(chat=chat, text="hi").exists)()
