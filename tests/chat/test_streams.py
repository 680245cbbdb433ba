"""Per-chat ordered delivery: the stream alone, and on a real socket whose events arrive out of
order or not at all (the gap is read from the database)."""

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction

from chat.consumers.streams import ChatStream
from chat.events import chat_agents_group, message_payload
from chat.models import ChatSession, Message
from escalation import services
from tests.chat.test_consumers import console_socket, frames_until, start


def message(seq: int) -> dict:
    return {"type": "message", "chat": 1, "seq": seq, "text": f"m{seq}"}


def status(seq: int) -> dict:
    return {"type": "chat.status", "chat": 1, "seq": seq, "status": "ended", "by": "agent"}


def removed(seq: int) -> dict:
    return {"type": "chat.removed", "chat": 1, "seq": seq, "reason": "resolved"}


def seqs(frames: list[dict]) -> list:
    return [(f["type"].split(".")[-1], f["seq"]) for f in frames]


def test_in_order_events_leave_at_once():
    stream = ChatStream(last=0)
    assert seqs(stream.push(message(1)) + stream.push(message(2))) == [
        ("message", 1),
        ("message", 2),
    ]
    assert not stream.waiting


def test_an_early_event_waits_for_the_one_before_it():
    stream = ChatStream(last=7)
    assert stream.push(message(9)) == []
    assert stream.gap == (7, 9)
    assert seqs(stream.push(message(8))) == [("message", 8), ("message", 9)]
    assert stream.gap is None


def test_a_repeat_is_skipped_only_when_that_number_was_delivered():
    stream = ChatStream(last=3)
    assert stream.push(message(3)) == []  # delivered already
    assert stream.push(message(5)) == []  # held, not dropped as "at or below" anything
    assert seqs(stream.push(message(4))) == [("message", 4), ("message", 5)]
    assert stream.push(message(5)) == []


def test_the_end_and_the_removal_leave_after_their_message_status_first():
    stream = ChatStream(last=4)
    # The removal arrives first (another path), then the status, then the last message.
    assert stream.push(removed(5)) == []
    assert stream.push(status(5)) == []
    assert seqs(stream.push(message(5))) == [("message", 5), ("status", 5), ("removed", 5)]


def test_a_status_after_what_was_delivered_leaves_at_once():
    stream = ChatStream(last=5)
    assert seqs(stream.push(status(5))) == [("status", 5)]


def test_events_wait_for_the_start_and_older_ones_are_dropped_then():
    stream = ChatStream()
    assert stream.push(message(3)) == [] and stream.push(message(2)) == []
    assert seqs(stream.start(2)) == [("message", 3)]


def test_release_all_gives_up_waiting_in_order():
    stream = ChatStream(last=1)
    stream.push(message(4))
    stream.push(status(4))
    stream.push(message(3))
    assert seqs(stream.release_all()) == [("message", 3), ("message", 4), ("status", 4)]
    assert stream.last == 4 and not stream.waiting


def store_quietly(chat_id: int, texts: list[str]) -> list[Message]:
    """Store messages as the services do, but publish nothing: the test decides what arrives."""
    with transaction.atomic():
        chat = ChatSession.objects.select_for_update().get(pk=chat_id)
        stored = []
        for text in texts:
            chat.last_seq += 1
            chat.last_public_seq += 1
            stored.append(
                Message.objects.create(
                    chat=chat,
                    seq=chat.last_seq,
                    public_seq=chat.last_public_seq,
                    kind="visitor",
                    author_name="Carol",
                    text=text,
                )
            )
        chat.save(update_fields=["last_seq", "last_public_seq"])
    return stored


async def publish(message: Message) -> None:
    payload = message_payload(message, for_visitor=False)
    await get_channel_layer().group_send(
        chat_agents_group(message.chat_id), {"type": "chat.event", "payload": payload}
    )


async def following(alice_agent, client):
    chat = await sync_to_async(start)()
    await sync_to_async(services.take_chat)(chat_id=chat.pk, agent=alice_agent)
    ws = await console_socket(client, alice_agent.user)
    await ws.connect()
    await frames_until(ws, "hello")
    await ws.send_json_to({"type": "subscribe", "chat": chat.pk})
    last = (await frames_until(ws, "replay.done"))[-1]["last"]
    return chat, ws, last


async def messages(ws, count: int) -> list[dict]:
    got: list[dict] = []
    while len(got) < count:
        frame = await ws.receive_json_from(timeout=3)
        if frame["type"] == "message":
            got.append(frame)
    return got


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_a_gap_that_does_not_close_is_read_from_the_database(alice_agent, client):
    chat, ws, last = await following(alice_agent, client)
    first, second = await sync_to_async(store_quietly)(chat.pk, ["first", "second"])
    await publish(second)  # the first never arrives live
    got = await messages(ws, 2)
    assert [(f["seq"], f["text"]) for f in got] == [(last + 1, "first"), (last + 2, "second")]
    await publish(first)  # arriving after all: already delivered, skipped by its number
    assert await ws.receive_nothing(timeout=0.5)
    await ws.disconnect()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_events_that_cross_on_the_way_leave_in_order(alice_agent, client):
    chat, ws, last = await following(alice_agent, client)
    stored = await sync_to_async(store_quietly)(chat.pk, [f"m{n}" for n in range(5)])
    for message in reversed(stored):
        await publish(message)
    got = await messages(ws, 5)
    assert [f["seq"] for f in got] == [last + n for n in range(1, 6)]
    assert await ws.receive_nothing(timeout=0.5)
    await ws.disconnect()
