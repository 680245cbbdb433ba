"""Consumers through the real ASGI stack (origin check, session auth) with WebsocketCommunicator.

Over Redis when REDIS_URL is set (CI); the channel layer is what settings say."""

import datetime as dt
import json
from typing import Any
from urllib.parse import quote

import pytest
import time_machine
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from chat.selectors import make_visitor_token
from escalation import frames, services
from helpdesk.asgi import application


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    """sync_to_async runs ORM calls on a worker thread; close its connection after each test so
    that the test database can be dropped at the end."""
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ORIGIN = (b"origin", b"http://localhost")


def start():
    return services.start_chat(
        visitor_name="Carol",
        visitor_email="",
        topic_name="Billing",
        first_message="Hello",
        visitor_context={},
    )


async def visitor_socket(
    chat,
    *,
    token: str | None = None,
    since: int = 0,
    origin: tuple[bytes, bytes] = ORIGIN,
    version: int | None = None,
) -> WebsocketCommunicator:
    """A visitor's socket; without `version`, as a page from before protocol 3 opens it."""
    token = token if token is not None else await sync_to_async(make_visitor_token)(chat)
    path = f"/ws/chat/{chat.pk}/?token={quote(token)}&since={since}"
    if version is not None:
        path += f"&v={version}"
    return WebsocketCommunicator(application, path, headers=[origin, (b"host", b"localhost")])


async def console_socket(client, user=None, version: int | None = None) -> WebsocketCommunicator:
    headers = [ORIGIN, (b"host", b"localhost")]
    if user is not None:
        await sync_to_async(client.force_login)(user)
        cookie = (
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )
        headers.append((b"cookie", cookie.encode()))
    path = "/ws/console/" if version is None else f"/ws/console/?v={version}"
    return WebsocketCommunicator(application, path, headers=headers)


async def frames_until(
    ws: WebsocketCommunicator, frame_type: str, timeout: float = 3
) -> list[dict[str, Any]]:
    got = []
    while True:
        frame = await ws.receive_json_from(timeout=timeout)
        got.append(frame)
        if frame["type"] == frame_type:
            return got


async def test_visitor_connects_with_its_token_and_gets_state_and_history(l1_setup):
    chat = await sync_to_async(start)()
    ws = await visitor_socket(chat)
    connected, _ = await ws.connect()
    assert connected
    hello = await ws.receive_json_from()
    assert hello["type"] == "hello" and hello["status"] == "queued"
    assert hello["queue"]["position"] == 1
    frames = await frames_until(ws, "replay.done")
    assert [f["seq"] for f in frames if f["type"] == "message"] == [1, 2]
    assert frames[-1] == {"type": "replay.done", "v": 3, "chat": chat.pk, "last": 2, "more": False}
    await ws.disconnect()


async def test_the_estimate_a_reconnecting_visitor_is_shown_is_stored(l1_setup):
    from escalation.models import WaitEstimate

    chat = await sync_to_async(start)()
    stored = sync_to_async(lambda: WaitEstimate.objects.filter(entry__chat=chat).count())
    before = await stored()
    for _ in range(2):  # the first visit and a reconnect each show an estimate
        ws = await visitor_socket(chat)
        assert (await ws.connect())[0]
        hello = await ws.receive_json_from()
        assert hello["queue"]["position"] == 1
        await ws.disconnect()
    assert await stored() == before + 2


@pytest.mark.parametrize("token_kind", ["missing", "tampered", "other_chat"])
async def test_visitor_with_a_bad_token_is_refused(l1_setup, token_kind):
    chat, other = await sync_to_async(start)(), await sync_to_async(start)()
    good = await sync_to_async(make_visitor_token)(chat)
    token = {
        "missing": "",
        "tampered": good[:-2] + "xx",
        "other_chat": await sync_to_async(make_visitor_token)(other),
    }[token_kind]
    ws = await visitor_socket(chat, token=token)
    connected, _ = await ws.connect()
    assert connected  # accepted only to say why
    assert (await ws.receive_output())["code"] == 4403


async def test_an_expired_token_is_refused(l1_setup, settings):
    chat = await sync_to_async(start)()
    token = await sync_to_async(make_visitor_token)(chat)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(
        seconds=settings.VISITOR_TOKEN_MAX_AGE_SECONDS + 60
    )
    with time_machine.travel(later):
        ws = await visitor_socket(chat, token=token)
        await ws.connect()
        assert (await ws.receive_output())["code"] == 4403


async def test_a_foreign_origin_is_refused(l1_setup):
    chat = await sync_to_async(start)()
    ws = await visitor_socket(chat, origin=(b"origin", b"http://evil.example"))
    connected, _ = await ws.connect()
    assert not connected


async def test_visitor_resumes_from_the_last_seq_it_saw(alice_agent):
    chat = await sync_to_async(start)()
    await sync_to_async(services.take_chat)(chat_id=chat.pk, agent=alice_agent)
    for text in ["one", "two", "three"]:
        await sync_to_async(services.post_agent_message)(
            chat_id=chat.pk, agent=alice_agent, text=text
        )
    ws = await visitor_socket(chat, since=3)  # saw: first message, queued notice, agent joined
    await ws.connect()
    await ws.receive_json_from()  # hello
    frames = await frames_until(ws, "replay.done")
    assert [(f["seq"], f["text"]) for f in frames if f["type"] == "message"] == [
        (4, "one"),
        (5, "two"),
        (6, "three"),
    ]
    await ws.disconnect()


async def test_visitor_message_is_acknowledged_and_reaches_the_agent_not_the_note(
    alice_agent, client
):
    chat = await sync_to_async(start)()
    await sync_to_async(services.take_chat)(chat_id=chat.pk, agent=alice_agent)
    agent_ws = await console_socket(client, alice_agent.user)
    assert (await agent_ws.connect())[0]
    hello = await agent_ws.receive_json_from()
    assert [c["chat"] for c in hello["chats"]] == [chat.pk]
    visitor = await visitor_socket(chat, since=99)
    await visitor.connect()
    await frames_until(visitor, "replay.done")

    await agent_ws.send_json_to(
        {"type": "message", "chat": chat.pk, "text": "psst", "internal": True, "client_id": "n1"}
    )
    await agent_ws.send_json_to(
        {"type": "message", "chat": chat.pk, "text": "Hello Carol", "client_id": "a1"}
    )
    await visitor.send_json_to({"type": "message", "text": "Hi!", "client_id": "v1"})
    agent_frames: list[dict[str, Any]] = []
    while len([f for f in agent_frames if f["type"] == "message"]) < 3:
        agent_frames.append(await agent_ws.receive_json_from())
    # The two sockets race; the sequence numbers give the one true order.
    messages = sorted((f for f in agent_frames if f["type"] == "message"), key=lambda f: f["seq"])
    assert {f["text"] for f in messages} == {"psst", "Hello Carol", "Hi!"}
    assert [f["seq"] for f in messages] == [4, 5, 6]
    visitor_frames = await frames_until(visitor, "ack")
    while len([f for f in visitor_frames if f["type"] == "message"]) < 2:
        visitor_frames.append(await visitor.receive_json_from())
    visible = sorted((f for f in visitor_frames if f["type"] == "message"), key=lambda f: f["seq"])
    assert {f["text"] for f in visible} == {"Hello Carol", "Hi!"}  # never the internal note
    assert [f["seq"] for f in visible] == [4, 5]
    await visitor.disconnect()
    await agent_ws.disconnect()


async def test_protocol_3_acknowledges_a_message_with_the_message_itself(alice_agent, client):
    """One frame to the sender, not `ack` and then the message; a client_id sent again is not
    stored again and gets an `ack` (its message was sent already); the peer gets each once."""
    chat = await sync_to_async(start)()
    await sync_to_async(services.take_chat)(chat_id=chat.pk, agent=alice_agent)
    agent_ws = await console_socket(client, alice_agent.user, version=3)
    assert (await agent_ws.connect())[0]
    assert (await agent_ws.receive_json_from())["type"] == "hello"
    visitor = await visitor_socket(chat, since=99, version=3)
    await visitor.connect()
    await frames_until(visitor, "replay.done")

    await visitor.send_json_to({"type": "message", "text": "Hi!", "client_id": "v1"})
    mine = await visitor.receive_json_from()
    assert (mine["type"], mine["client_id"], mine["seq"], mine["v"]) == ("message", "v1", 4, 3)
    await visitor.send_json_to({"type": "message", "text": "Hi!", "client_id": "v1"})  # again
    await agent_ws.send_json_to(
        {"type": "message", "chat": chat.pk, "text": "Hello", "client_id": "a1"}
    )
    # Then: an ack for the repeat and the agent's message, no second copy of its own.
    got = [await visitor.receive_json_from() for _ in range(2)]
    assert sorted((f["type"], f["client_id"], f["seq"]) for f in got) == [
        ("ack", "v1", 4),
        ("message", "a1", 5),
    ]
    agent_frames = [await agent_ws.receive_json_from() for _ in range(2)]
    assert [(f["type"], f["client_id"], f["seq"]) for f in agent_frames] == [
        ("message", "v1", 4),
        ("message", "a1", 5),
    ]
    assert await visitor.receive_nothing(timeout=0.3)
    assert await agent_ws.receive_nothing(timeout=0.3)
    assert await sync_to_async(chat.messages.count)() == 5
    await visitor.disconnect()
    await agent_ws.disconnect()


async def test_a_page_from_before_protocol_3_still_gets_acks(l1_setup):
    """A page loaded before the upgrade opens its socket without `v`: `ack`, then its message."""
    chat = await sync_to_async(start)()
    ws = await visitor_socket(chat, since=99)
    await ws.connect()
    await frames_until(ws, "replay.done")
    await ws.send_json_to({"type": "message", "text": "old page", "client_id": "o1"})
    got = [await ws.receive_json_from() for _ in range(2)]
    assert sorted((f["type"], f["client_id"]) for f in got) == [("ack", "o1"), ("message", "o1")]
    await ws.disconnect()


BAD_FRAMES = [
    ("not json", "bad_json"),
    ("[1, 2]", "bad_frame"),
    ('{"no": "type"}', "bad_frame"),
    ('{"type": "launch_missiles"}', "unknown_type"),
    ('{"type": "message"}', "bad_frame"),
    ('{"type": "message", "text": 5}', "bad_frame"),
    ('{"type": "message", "text": "hi", "extra": 1}', "bad_frame"),
    ('{"type": "message", "text": "   "}', "invalid_message"),
    ('{"type": "resume", "since": "x"}', "bad_frame"),
    ('{"type": "resume", "since": 100000000000000000000000000}', "bad_frame"),
    ('{"type": "take", "chat": 1}', "unknown_type"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
async def test_bad_visitor_frames_get_an_error_and_lose_nothing(l1_setup, frame, code):
    chat = await sync_to_async(start)()
    ws = await visitor_socket(chat, since=99)
    await ws.connect()
    await frames_until(ws, "replay.done")
    await ws.send_to(text_data=frame)
    error = await ws.receive_json_from()
    assert (error["type"], error["code"]) == ("error", code)
    await ws.send_json_to({"type": "message", "text": "still works", "client_id": "ok"})
    frames = await frames_until(ws, "ack")
    assert frames[-1]["seq"] == 3
    await ws.disconnect()
    assert await sync_to_async(chat.messages.count)() == 3


async def test_binary_and_oversized_frames_get_errors(l1_setup, settings):
    chat = await sync_to_async(start)()
    ws = await visitor_socket(chat, since=99)
    await ws.connect()
    await frames_until(ws, "replay.done")
    await ws.send_to(bytes_data=b"\x00\x01")
    assert (await ws.receive_json_from())["code"] == "bad_frame"
    await ws.send_to(
        text_data=json.dumps({"type": "message", "text": "x" * settings.WS_FRAME_MAX_BYTES})
    )
    assert (await ws.receive_json_from())["code"] == "frame_too_large"
    await ws.send_json_to({"type": "message", "text": "y" * (settings.MESSAGE_MAX_CHARS + 1)})
    assert (await ws.receive_json_from())["code"] == "invalid_message"
    await ws.disconnect()


async def test_a_flood_is_throttled_then_closed(l1_setup, settings):
    # The bucket refills too slowly to matter however long the pings take to handle (on a busy
    # machine the refill over the burst used to make up for the excess frames).
    settings.WS_FRAMES_PER_SECOND = 0.01
    chat = await sync_to_async(start)()
    ws = await visitor_socket(chat, since=99)
    await ws.connect()
    await frames_until(ws, "replay.done")
    codes = []
    for _ in range(settings.WS_FRAME_BURST + 5):
        await ws.send_json_to({"type": "ping"})
    for _ in range(settings.WS_FRAME_BURST + 5):
        frame = await ws.receive_json_from()
        codes.append(frame.get("code", frame["type"]))
    assert "rate_limited" in codes and codes.count("pong") >= settings.WS_FRAME_BURST - 1
    for _ in range(60):
        await ws.send_json_to({"type": "ping"})
    while True:
        output = await ws.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            assert output["code"] == 4429
            break
    assert (await sync_to_async(lambda: chat.messages.count())()) == 2


async def test_console_refuses_anonymous_and_non_agents(l1_setup, client, manager_user):
    ws = await console_socket(client)
    await ws.connect()
    assert (await ws.receive_output())["code"] == 4403
    ws = await console_socket(client, manager_user)
    await ws.connect()
    assert (await ws.receive_output())["code"] == 4403


async def test_agent_cannot_open_a_chat_outside_its_queues(bob_agent_other_queue, client):
    chat = await sync_to_async(start)()
    ws = await console_socket(client, bob_agent_other_queue.user)
    await ws.connect()
    await ws.receive_json_from()
    await ws.send_json_to({"type": "subscribe", "chat": chat.pk})
    assert (await ws.receive_json_from())["code"] == "not_found"
    await ws.send_json_to({"type": "take", "chat": chat.pk})
    assert (await ws.receive_json_from())["code"] == "not_found"  # as for a missing chat
    await ws.send_json_to({"type": "take", "chat": 2**40})
    assert (await ws.receive_json_from())["code"] == "not_found"
    await ws.send_json_to({"type": "message", "chat": chat.pk, "text": "hi"})
    assert (await ws.receive_json_from())["code"] == "not_your_chat"
    await ws.disconnect()


async def test_agent_takes_from_the_queue_and_gets_the_transcript(alice_agent, client):
    chat = await sync_to_async(start)()
    ws = await console_socket(client, alice_agent.user)
    await ws.connect()
    hello = await ws.receive_json_from()
    assert [q["chat"] for q in hello["queue"]] == [chat.pk]
    assert hello["queue"][0]["tier_path"] == ["Level 1"]
    await ws.send_json_to({"type": "take", "chat": chat.pk})
    frames = await frames_until(ws, "taken")
    await ws.send_json_to({"type": "subscribe", "chat": chat.pk, "since": 0})
    frames += await frames_until(ws, "replay.done")
    info = next(f for f in frames if f["type"] == "chat.info")
    assert info["visitor"] == "Carol" and info["status"] == "active"
    texts = [f["text"] for f in frames if f["type"] == "message" and f["seq"] <= 3]
    assert texts[0] == "Hello" and texts[-1] == "Alice from L1 General joined the chat."
    await ws.send_json_to({"type": "take", "chat": chat.pk})
    frames = await frames_until(ws, "error")
    assert frames[-1]["code"] == "already_taken"
    await ws.disconnect()


async def test_agent_presence_frame_validates(alice_agent, client):
    ws = await console_socket(client, alice_agent.user)
    await ws.connect()
    await ws.receive_json_from()
    await ws.send_json_to({"type": "presence", "presence": "sleeping"})
    assert (await ws.receive_json_from())["code"] == "bad_frame"
    await ws.send_json_to({"type": "presence", "presence": "away"})
    assert await ws.receive_json_from() == {
        "type": "presence",
        "v": 3,
        "presence": "away",
        "reason": "",
    }
    await ws.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "message", "text": "hi", "client_id": "a\x00b"}, "bad_frame"),
        ({"type": "message", "text": "hi", "client_id": "x" * 65}, "bad_frame"),
    ],
)
async def test_nul_and_oversized_short_fields_are_refused(l1_setup, frame, code):
    chat = await sync_to_async(start)()
    ws = await visitor_socket(chat, since=99)
    await ws.connect()
    await frames_until(ws, "replay.done")
    await ws.send_json_to(frame)
    assert (await ws.receive_json_from())["code"] == code
    await ws.send_json_to({"type": "ping"})
    assert (await ws.receive_json_from())["type"] == "pong"  # still connected
    await ws.disconnect()


async def test_a_previewer_stops_receiving_once_another_agent_takes_the_chat(alice_agent, client):
    from tests.factories import AgentFactory, UserFactory

    dave = await sync_to_async(AgentFactory)(
        user=await sync_to_async(UserFactory)(username="dave", roles=["Agents"]),
        display_name="Dave",
        member_of=[alice_agent.groups.first()] if False else None,
    )
    await sync_to_async(lambda: dave.groups.set(alice_agent.groups.all()))()
    chat = await sync_to_async(start)()
    ws = await console_socket(client, dave.user)
    await ws.connect()
    await ws.receive_json_from()
    await ws.send_json_to({"type": "subscribe", "chat": chat.pk})
    await frames_until(ws, "replay.done")  # Dave previews the waiting chat
    await sync_to_async(services.take_chat)(chat_id=chat.pk, agent=alice_agent)
    await sync_to_async(services.post_agent_message)(
        chat_id=chat.pk, agent=alice_agent, text="SECRET", internal=True
    )
    frames = []
    while not await ws.receive_nothing(timeout=1):
        frames.append(await ws.receive_json_from())
    [removed] = [f for f in frames if f["type"] == "chat.removed"]
    assert (removed["chat"], removed["reason"]) == (chat.pk, "no_longer_visible")
    assert not any(f.get("text") == "SECRET" for f in frames), frames
    await ws.disconnect()


async def test_a_previewer_sees_how_a_waiting_chat_ended(alice_agent, client):
    """A chat that leaves the queue because it ended is followed up to its end, in order: the
    preview's last frames are the end notice and the chat's status, never `no_longer_visible`."""
    chat = await sync_to_async(start)()
    ws = await console_socket(client, alice_agent.user)
    await ws.connect()
    await ws.receive_json_from()
    await ws.send_json_to({"type": "subscribe", "chat": chat.pk})
    await frames_until(ws, "replay.done")  # Alice previews the waiting chat
    await sync_to_async(services.end_chat_by_visitor)(chat_id=chat.pk)
    frames = await frames_until(ws, "chat.status")
    assert [f["type"] for f in frames if f["type"] != "queue.item.removed"] == [
        "message",
        "chat.status",
    ]
    assert (frames[-1]["status"], frames[-1]["by"]) == ("abandoned", "visitor")
    assert frames[-2]["text"] == "The chat has ended. Thank you for contacting us."
    assert await ws.receive_nothing(timeout=0.5)  # the preview is over: no removal follows
    await ws.disconnect()


async def test_a_read_mark_past_the_end_is_clamped(alice_agent, client):
    chat = await sync_to_async(start)()
    await sync_to_async(services.take_chat)(chat_id=chat.pk, agent=alice_agent)
    ws = await console_socket(client, alice_agent.user)
    await ws.connect()
    await ws.receive_json_from()
    await ws.send_json_to({"type": "read", "chat": chat.pk, "seq": 3_000_000_000})
    await ws.send_json_to({"type": "ping"})
    assert (await ws.receive_json_from())["type"] == "pong"
    from escalation.models import Assignment

    assignment = await sync_to_async(Assignment.objects.get)(chat=chat)
    assert assignment.last_read_seq == 3  # the chat's last seq
    await ws.disconnect()


async def test_a_queue_change_arrives_as_one_delta_and_a_request_gets_every_list(
    alice_agent, client
):
    ws = await console_socket(client, alice_agent.user)
    assert (await ws.connect())[0]
    await frames_until(ws, "hello")
    chat = await sync_to_async(start)()  # a chat joins the queue Alice serves
    added = (await frames_until(ws, "queue.item.added"))[-1]
    assert added["item"]["chat"] == chat.pk and added["item"]["position"] == 1
    await sync_to_async(services.take_chat)(chat_id=chat.pk, agent=alice_agent)
    removed = (await frames_until(ws, "queue.item.removed"))[-1]
    assert (removed["chat"], removed["reason"]) == (chat.pk, "taken")
    await ws.send_json_to({"type": "queue"})
    asked = (await frames_until(ws, "queue"))[-1]
    assert asked["items"] == [] and [c["chat"] for c in asked["chats"]] == [chat.pk]
    assert asked["offers"] == []
    await ws.disconnect()


async def test_a_queue_delta_reaches_only_the_agents_who_may_see_the_chat(
    alice_agent, bob_agent_other_queue, client
):
    """A chat narrowed to one agent is listed for that agent only (as in the full list)."""
    alice = await console_socket(client, alice_agent.user)
    await alice.connect()
    await frames_until(alice, "hello")
    chat = await sync_to_async(start)()
    await frames_until(alice, "queue.item.added")
    entry = await sync_to_async(lambda: chat.route.entry)()
    await sync_to_async(lambda: entry.agents.set([bob_agent_other_queue]))()
    item = await sync_to_async(frames.queue_item_for)(entry)
    assert item["agent_ids"] == [bob_agent_other_queue.pk]
    ids = {"agent_id": alice_agent.pk, "group_ids": set(), "stage_ids": {entry.stage_id}}
    assert not frames.may_see_item(item, **ids)
    assert frames.may_see_item(item, **{**ids, "agent_id": bob_agent_other_queue.pk})
    await alice.disconnect()
