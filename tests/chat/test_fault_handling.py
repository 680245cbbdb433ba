"""Faults inside one process, on the real PostgreSQL, Redis channel layer and broker:
a transaction that fails after writing publishes and schedules nothing; a frame whose handling
fails is answered with an error, never dropped in silence."""

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from chat.events import chat_agents_group, chat_visitor_group
from chat.models import Message
from escalation import services
from escalation.models import QueueEntry
from tests.chat.test_consumers import frames_until, visitor_socket
from tests.chat.test_events import Listener
from tests.factories import AgentFactory, StageOptionFactory

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


class Boom(Exception):
    pass


def start():
    return services.start_chat(
        visitor_name="Carol",
        visitor_email="",
        topic_name="Billing",
        first_message="Hello",
        visitor_context={},
    )


def test_an_exception_after_the_rows_are_written_publishes_and_schedules_nothing(l1_setup):
    StageOptionFactory(stage=l1_setup.l1, keyword="billing", target_stage=l1_setup.l2)
    alice = AgentFactory(display_name="Alice", member_of=[l1_setup.g1])
    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice)
    listener = Listener(chat_visitor_group(chat.pk), chat_agents_group(chat.pk))
    listener.receive_all()  # what the start and the take published
    broker = redis.Redis.from_url(settings.TEST_REDIS_URL)
    broker.delete("celery")

    # A message row and an escalation (a new queue entry whose timer must be armed) are written,
    # then the transaction fails.
    def write_then_fail() -> None:
        with transaction.atomic():
            services.post_agent_message(chat_id=chat.pk, agent=alice, text="never sent")
            services.escalate_chat(chat_id=chat.pk, agent=alice, keyword="billing")
            assert Message.objects.filter(chat=chat, text="never sent").exists()
            raise Boom

    with pytest.raises(Boom):
        write_then_fail()

    assert not Message.objects.filter(chat=chat, text="never sent").exists()
    assert QueueEntry.objects.filter(chat=chat, left_at__isnull=True).count() == 0
    assert broker.llen("celery") == 0  # no timer task, no queue publication
    # The next, successful message is the first thing either stream gets: nothing came before it.
    services.post_agent_message(chat_id=chat.pk, agent=alice, text="sent")
    assert [e["text"] for e in listener.receive_all()] == ["sent", "sent"]
    services.escalate_chat(chat_id=chat.pk, agent=alice, keyword="billing")
    assert broker.llen("celery") >= 1  # a committed escalation does arm its timer
    broker.delete("celery")


@pytest.mark.parametrize("failure", [redis.exceptions.ConnectionError, RuntimeError])
async def test_a_message_that_could_not_be_handled_gets_an_error_not_silence(
    l1_setup, monkeypatch, failure
):
    """Redis gone, or any bug: the sender gets `server_error` with its client_id as `ref`, the
    socket stays open, and sending again with the same client_id stores the message once."""
    from chat.consumers import visitor

    chat = await sync_to_async(start)()
    ws = await visitor_socket(chat, since=99)
    await ws.connect()
    await frames_until(ws, "replay.done")
    real = visitor.store_post  # the store step, batched or not

    async def broken(post):
        raise failure("the service failed")

    monkeypatch.setattr(visitor, "store_post", broken)
    await ws.send_json_to({"type": "message", "text": "important", "client_id": "c1"})
    error = await ws.receive_json_from()
    assert (error["type"], error["code"], error["ref"]) == ("error", "server_error", "c1")
    monkeypatch.setattr(visitor, "store_post", real)
    await ws.send_json_to({"type": "message", "text": "important", "client_id": "c1"})
    ack = (await frames_until(ws, "ack"))[-1]
    await ws.send_json_to({"type": "message", "text": "important", "client_id": "c1"})
    again = (await frames_until(ws, "ack"))[-1]
    assert ack["seq"] == again["seq"] == 3
    count = await sync_to_async(Message.objects.filter(chat=chat, text="important").count)()
    assert count == 1
    await ws.disconnect()
