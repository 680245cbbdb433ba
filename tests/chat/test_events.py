"""Every realtime event type: run the service, commit, assert the exact message each group got."""

import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from chat.events import agent_group, chat_agents_group, chat_visitor_group
from escalation import services

pytestmark = pytest.mark.django_db


class Listener:
    """A channel added to groups, as a consumer would be."""

    def __init__(self, *groups: str) -> None:
        self.layer = get_channel_layer()
        # A plain (not process-specific) channel name: channels-redis reads those without the
        # per-event-loop receive buffer, so each async_to_sync call may use its own loop.
        self.channel = f"test-listener.{uuid.uuid4().hex}"
        for group in groups:
            async_to_sync(self.layer.group_add)(group, self.channel)

    def receive_all(self) -> list[dict[str, Any]]:
        import asyncio

        async def drain() -> list[dict[str, Any]]:
            got = []
            while True:
                try:
                    message = await asyncio.wait_for(self.layer.receive(self.channel), timeout=0.3)
                except TimeoutError:
                    return got
                got.append(message["payload"])

        return async_to_sync(drain)()


def start():
    return services.start_chat(
        visitor_name="Carol",
        visitor_email="",
        topic_name="Billing",
        first_message="Hello",
        visitor_context={},
    )


def test_nothing_is_published_before_commit(l1_setup, django_capture_on_commit_callbacks):
    chat = start()
    listener = Listener(chat_visitor_group(chat.pk), chat_agents_group(chat.pk))
    from escalation.services import post_visitor_message

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        post_visitor_message(chat_id=chat.pk, text="pending")
    assert listener.receive_all() == []
    for callback in callbacks:
        callback()
    assert [e["text"] for e in listener.receive_all()] == ["pending", "pending"]


def test_a_visitor_message_reaches_both_streams_with_their_own_numbers(
    alice_agent, django_capture_on_commit_callbacks
):
    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    services.post_agent_message(chat_id=chat.pk, agent=alice_agent, text="note", internal=True)
    visitor, agents = Listener(chat_visitor_group(chat.pk)), Listener(chat_agents_group(chat.pk))
    from escalation.services import post_visitor_message

    with django_capture_on_commit_callbacks(execute=True):
        message = post_visitor_message(chat_id=chat.pk, text="Hi there", client_id="c-1")
    common = {
        "type": "message",
        "v": 3,
        "chat": chat.pk,
        "kind": "visitor",
        "event": "",
        "author": "Carol",
        "text": "Hi there",
        "at": message.created_at.isoformat(),
        "client_id": "c-1",
    }
    assert visitor.receive_all() == [{**common, "seq": message.public_seq}]
    assert agents.receive_all() == [{**common, "seq": message.seq}]
    assert message.seq == message.public_seq + 1  # the internal note took one agent seq


def test_an_internal_note_never_reaches_the_visitor_stream(
    alice_agent, django_capture_on_commit_callbacks
):
    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    visitor, agents = Listener(chat_visitor_group(chat.pk)), Listener(chat_agents_group(chat.pk))
    with django_capture_on_commit_callbacks(execute=True):
        services.post_agent_message(
            chat_id=chat.pk, agent=alice_agent, text="secret", internal=True
        )
    assert visitor.receive_all() == []
    [note] = agents.receive_all()
    assert (note["kind"], note["text"]) == ("internal", "secret")


def test_taking_a_chat_tells_the_agent_and_the_visitor(
    alice_agent, django_capture_on_commit_callbacks
):
    chat = start()
    me, visitor = Listener(agent_group(alice_agent.pk)), Listener(chat_visitor_group(chat.pk))
    with django_capture_on_commit_callbacks(execute=True):
        services.take_chat(chat_id=chat.pk, agent=alice_agent)
    assert me.receive_all() == [{"type": "chat.assigned", "v": 3, "chat": chat.pk}]
    [joined] = visitor.receive_all()
    assert (joined["kind"], joined["event"], joined["text"]) == (
        "system",
        "agent_joined",
        "Alice from L1 General joined the chat.",
    )


def test_ending_a_chat_tells_everyone(alice_agent, django_capture_on_commit_callbacks):
    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    me = Listener(agent_group(alice_agent.pk))
    visitor, agents = Listener(chat_visitor_group(chat.pk)), Listener(chat_agents_group(chat.pk))
    with django_capture_on_commit_callbacks(execute=True):
        services.end_chat_by_agent(chat_id=chat.pk, agent=alice_agent)
    got = visitor.receive_all()
    assert got[0]["event"] == "ended"
    assert got[1] == {
        "type": "chat.status",
        "v": 3,
        "chat": chat.pk,
        "seq": got[0]["seq"],  # after the visitor's last message: the notice
        "status": "ended",
        "by": "agent",
    }
    agent_stream = agents.receive_all()
    assert agent_stream[-1] == {
        "type": "chat.status",
        "v": 3,
        "chat": chat.pk,
        "seq": agent_stream[-2]["seq"],
        "status": "ended",
        "by": "agent",
    }
    # The agent hears it no longer holds the chat numbered after the chat's last message, so
    # that its console shows the end first.
    assert me.receive_all() == [
        {
            "type": "chat.removed",
            "v": 3,
            "chat": chat.pk,
            "seq": agent_stream[-2]["seq"],
            "reason": "resolved",
            "handed_over_to": "",
        }
    ]


def test_presence_change_is_published(alice_agent, django_capture_on_commit_callbacks):
    me = Listener(agent_group(alice_agent.pk))
    with django_capture_on_commit_callbacks(execute=True):
        services.set_presence(agent=alice_agent, presence="away")
    assert me.receive_all() == [{"type": "presence", "v": 3, "presence": "away", "reason": ""}]


def test_queue_publication_tells_each_visitor_its_place(
    l1_setup, django_capture_on_commit_callbacks
):
    from chat.events import stage_queue_group
    from escalation.models import WaitEstimate

    first, second = start(), start()
    shown_on_start = WaitEstimate.objects.count()  # each start's "queued" notice stored its own
    v1, v2 = Listener(chat_visitor_group(first.pk)), Listener(chat_visitor_group(second.pk))
    queue = Listener(stage_queue_group(l1_setup.l1.pk))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.publish_queue_now(stage_id=l1_setup.l1.pk) == 2
    assert v1.receive_all() == [
        {
            "type": "queue.position",
            "v": 3,
            "chat": first.pk,
            "position": 1,
            "estimate": None,
            "text": "You are number 1 in line.",
        }
    ]
    assert v2.receive_all()[0]["position"] == 2
    assert queue.receive_all() == []  # consoles get queue deltas from the changes themselves
    assert shown_on_start == 2
    assert WaitEstimate.objects.count() == shown_on_start + 2
