"""The realtime hot path: the fan-out channel layer and the coalescing writer, against
real Redis and PostgreSQL; across two daphne processes in tests/e2e/test_fanout_live.py."""

import asyncio
import threading
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings

from chat.consumers.protocol import store_post
from chat.exceptions import ChatClosed, InvalidMessage
from chat.models import FlowEvent, Message
from chat.realtime.fanout import FanoutChannelLayer
from chat.realtime.writer import _writers
from chat.selectors import make_visitor_token
from escalation import services
from escalation.exceptions import NotYourChat
from escalation.services import Post, post_messages
from helpdesk.asgi import application

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


def start(name: str = "Carol"):
    return services.start_chat(
        visitor_name=name,
        visitor_email="",
        topic_name="Billing",
        first_message="Hello",
        visitor_context={},
    )


def layer_config(**config: Any) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "chat.realtime.fanout.FanoutChannelLayer",
            "CONFIG": {"hosts": [settings.TEST_REDIS_URL], "prefix": "fanout-test", **config},
        }
    }


# --- The layer -----------------------------------------------------------------------------------
async def test_group_send_reaches_every_member_in_this_process_once():
    layer = FanoutChannelLayer(hosts=[settings.TEST_REDIS_URL], prefix=f"t{uuid.uuid4().hex[:6]}")
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", a)
    await layer.group_add("room", b)
    await layer.group_send("room", {"type": "hello", "n": 1})
    assert await asyncio.wait_for(layer.receive(a), 5) == {"type": "hello", "n": 1}
    assert await asyncio.wait_for(layer.receive(b), 5) == {"type": "hello", "n": 1}
    await layer.group_discard("room", b)
    layer.group_send_blocking("room", {"type": "hello", "n": 2})
    assert await asyncio.wait_for(layer.receive(a), 5) == {"type": "hello", "n": 2}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(b), 0.3)  # left the group: nothing more


async def test_a_join_gets_nothing_published_before_it_and_everything_after():
    layer = FanoutChannelLayer(hosts=[settings.TEST_REDIS_URL], prefix=f"t{uuid.uuid4().hex[:6]}")
    early, late = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", early)
    layer.group_send_many_blocking([("room", {"type": "e", "n": n}) for n in range(50)])
    await layer.group_add("room", late)  # while the 50 may still be on their way
    layer.group_send_blocking("room", {"type": "e", "n": 50})
    got_early = [(await asyncio.wait_for(layer.receive(early), 5))["n"] for _ in range(51)]
    assert got_early == list(range(51))
    assert (await asyncio.wait_for(layer.receive(late), 5))["n"] == 50


async def test_two_processes_share_nothing_but_redis():
    """Two layers stand for two daphne processes: each gets the group's events for its own
    members; a namespace on another Redis database hears nothing."""
    prefix = f"t{uuid.uuid4().hex[:6]}"
    one = FanoutChannelLayer(hosts=[settings.TEST_REDIS_URL], prefix=prefix)
    two = FanoutChannelLayer(hosts=[settings.TEST_REDIS_URL], prefix=prefix)
    other_db = FanoutChannelLayer(hosts=["redis://127.0.0.1:6379/13"], prefix=prefix)
    c1, c2, c3 = await one.new_channel(), await two.new_channel(), await other_db.new_channel()
    await one.group_add("chat.1.agents", c1)
    await two.group_add("chat.1.agents", c2)
    await other_db.group_add("chat.1.agents", c3)
    await one.group_send("chat.1.agents", {"type": "chat.event", "payload": {"seq": 1}})
    assert (await asyncio.wait_for(one.receive(c1), 5))["payload"] == {"seq": 1}
    assert (await asyncio.wait_for(two.receive(c2), 5))["payload"] == {"seq": 1}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(other_db.receive(c3), 0.3)


async def test_an_overrun_inbox_says_so_instead_of_dropping_silently():
    layer = FanoutChannelLayer(
        hosts=[settings.TEST_REDIS_URL], prefix=f"t{uuid.uuid4().hex[:6]}", capacity=3
    )
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    layer.group_send_many_blocking([("room", {"type": "e", "n": n}) for n in range(10)])
    assert await asyncio.to_thread(layer.wait_for_overruns, 1, 5)
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "layer.overrun"}
    layer.group_send_blocking("room", {"type": "e", "n": 10})  # and then it goes on
    event = await asyncio.wait_for(layer.receive(channel), 5)
    while event["n"] < 10:  # what arrived after the overrun was marked, then the new one
        event = await asyncio.wait_for(layer.receive(channel), 5)
    assert event == {"type": "e", "n": 10}


# --- Consumers over the layer ----------------------------------------------------------------
ORIGIN = (b"origin", b"http://localhost")


async def frames_until(ws: WebsocketCommunicator, frame_type: str) -> list[dict[str, Any]]:
    got = []
    while True:
        frame = await ws.receive_json_from(timeout=5)
        got.append(frame)
        if frame["type"] == frame_type:
            return got


def post_many(chat_id: int, count: int) -> None:
    from django.db import connection

    try:
        for n in range(count):
            services.post_visitor_message(chat_id=chat_id, text=f"burst {n}", client_id=f"b{n}")
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_a_visitor_socket_that_overruns_resyncs_from_the_database_without_loss(
    l1_setup, settings
):
    settings.CHANNEL_LAYERS = layer_config(capacity=3)
    layer = get_channel_layer()
    assert isinstance(layer, FanoutChannelLayer)
    chat = await sync_to_async(start)()
    token = await sync_to_async(make_visitor_token)(chat)
    ws = WebsocketCommunicator(
        application,
        f"/ws/chat/{chat.pk}/?token={quote(token)}&since=0",
        headers=[ORIGIN, (b"host", b"localhost")],
    )
    assert (await ws.connect())[0]
    first = await frames_until(ws, "replay.done")
    seen = [f["seq"] for f in first if f["type"] == "message"]
    assert seen == [1, 2]  # the first message and the "queued" notice

    # Keep this event loop (where the consumer reads its inbox) busy while 20 messages are
    # stored and published by another thread: the inbox of 3 overflows.
    writer = threading.Thread(target=post_many, args=(chat.pk, 20))
    writer.start()
    writer.join()
    assert layer.wait_for_overruns(1, 10)

    frames: list[dict[str, Any]] = []
    while len(seen) < 22 or "replay.done" not in {f["type"] for f in frames}:
        frame = await ws.receive_json_from(timeout=5)
        frames.append(frame)
        if frame["type"] == "message":
            seen.append(frame["seq"])
    assert seen == list(range(1, 23))  # every message once, in order: nothing lost, no dup
    assert {"hello", "replay.done"} <= {f["type"] for f in frames}  # the resync itself
    assert await ws.receive_nothing(timeout=0.3)  # and nothing after it
    await ws.disconnect()


# --- The writer ------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_batch_applies_each_posts_rules_and_numbers_each_chat_contiguously(
    alice_agent, bob_agent_other_queue
):
    a, b, closed = start("A"), start("B"), start("C")
    services.take_chat(chat_id=a.pk, agent=alice_agent)
    services.end_chat_by_visitor(chat_id=closed.pk)
    stored = services.post_message(Post(b.pk, "earlier", "dup-old"))
    posts = [
        Post(a.pk, "a1", "va1"),
        Post(a.pk, "first reply", "aa1", agent=alice_agent),
        Post(b.pk, "b1", "vb1"),
        Post(a.pk, "   ", "blank"),  # refused: empty
        Post(a.pk, "note", "an1", agent=alice_agent, internal=True),
        Post(closed.pk, "too late", "vc1"),  # refused: ended
        Post(b.pk, "not mine", "ab1", agent=bob_agent_other_queue),  # refused
        Post(a.pk, "a1 again", "va1"),  # same client_id: the same message
        Post(b.pk, "resent", "dup-old"),  # stored before: that message
        Post(a.pk, "second reply", "aa2", agent=alice_agent),
    ]
    results = post_messages(posts)

    assert isinstance(results[3], InvalidMessage)
    assert isinstance(results[5], ChatClosed)
    assert isinstance(results[6], NotYourChat)
    assert results[7].pk == results[0].pk
    assert results[8].pk == stored.pk
    in_a = list(Message.objects.filter(chat=a).order_by("seq"))
    assert [(m.seq, m.public_seq, m.text) for m in in_a][-4:] == [
        (4, 4, "a1"),
        (5, 5, "first reply"),
        (6, None, "note"),
        (7, 6, "second reply"),
    ]
    assert [m.seq for m in in_a] == list(range(1, 8))
    a.refresh_from_db()
    assert (a.last_seq, a.last_public_seq) == (7, 6)
    assert [m.text for m in Message.objects.filter(chat=b).order_by("seq")][-2:] == [
        "earlier",
        "b1",
    ]
    assert not Message.objects.filter(chat=closed, text="too late").exists()
    firsts = FlowEvent.objects.filter(chat=a, kind=FlowEvent.Kind.FIRST_AGENT_MESSAGE)
    assert firsts.count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_concurrent_posts_share_transactions_and_each_sender_gets_its_own_answer(l1_setup):
    chats = [await sync_to_async(start)(f"V{i}") for i in range(5)]
    sends = [
        store_post(Post(chat_id=chat.pk, text=f"m{n}", client_id=f"c{n}"))
        for n in range(8)
        for chat in chats
    ]
    sends.append(store_post(Post(chat_id=chats[0].pk, text="", client_id="bad")))
    results = await asyncio.gather(*sends, return_exceptions=True)
    assert isinstance(results[-1], InvalidMessage)
    messages = results[:-1]
    assert all(isinstance(m, Message) for m in messages)
    for chat in chats:
        mine = sorted(m.public_seq for m in messages if m.chat_id == chat.pk)
        assert mine == list(range(3, 11))  # after the first message and the queued notice
    writer = _writers[asyncio.get_running_loop()]["posts"]
    assert writer.batches < writer.posts  # coalesced: fewer transactions than messages
