"""A chat whose visitor and agent sit on different daphne processes (scale-out), over the
fan-out channel layer (chat/realtime/fanout.py) and the coalescing writer."""

from urllib.parse import quote

import pytest
from asgiref.sync import sync_to_async

from chat.selectors import make_visitor_token
from escalation import services
from tests.e2e.live import Daphne
from tests.e2e.test_live_chat import Peer, console_peer, seqs, texts

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


@pytest.fixture
def second_daphne(daphne_process, django_db_blocker):
    with django_db_blocker.unblock():
        server = Daphne()
        server.start()
    yield server
    server.stop()


async def test_visitor_and_agent_on_two_daphne_processes(
    alice_agent, daphne_process, second_daphne
):
    chat = await sync_to_async(services.start_chat)(
        visitor_name="Carol",
        visitor_email="",
        topic_name="Billing",
        first_message="Hello?",
        visitor_context={},
    )
    await sync_to_async(services.take_chat)(chat_id=chat.pk, agent=alice_agent)
    token = await sync_to_async(make_visitor_token)(chat)
    visitor = Peer(
        f"{daphne_process.ws_url}/ws/chat/{chat.pk}/?token={quote(token)}&since=0",
        daphne_process.base_url,
    )
    agent = await console_peer(second_daphne, alice_agent)
    await visitor.connect()
    await visitor.until(lambda f: f["type"] == "replay.done")
    await agent.connect()
    await agent.until(lambda f: f["type"] == "hello")
    await agent.send(type="subscribe", chat=chat.pk, since=0)
    await agent.until(lambda f: f["type"] == "replay.done")
    before = visitor.last_seq

    # Ten each way, interleaved without waiting: every one reaches the other process's socket,
    # in order, once.
    for i in range(10):
        await visitor.send(type="message", text=f"v{i}", client_id=f"v{i}")
        await agent.send(type="message", chat=chat.pk, text=f"a{i}", client_id=f"a{i}")
    for peer in (agent, visitor):
        await peer.until(lambda f, peer=peer: {"a9", "v9"} <= set(texts(peer)))
    assert sorted(t for t in texts(visitor) if t[0] in "av" and t[1:].isdigit()) == sorted(
        [f"v{i}" for i in range(10)] + [f"a{i}" for i in range(10)]
    )
    assert seqs(visitor) == list(range(1, before + 21))
    assert seqs(agent) == list(range(1, seqs(agent)[-1] + 1))
    assert [t for t in texts(agent) if t.startswith("v")] == [f"v{i}" for i in range(10)]
    await visitor.close()
    await agent.close()
