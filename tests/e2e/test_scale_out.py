"""Scale-out: two daphne processes and two Celery workers (one of them running the single
beat) on one Redis and one PostgreSQL. The visitor sits on one daphne, the agents on the other;
chat, escalation, timeouts and reconnect work exactly as with one server."""

import signal

import pytest
from asgiref.sync import sync_to_async

from escalation import services
from escalation.models import Agent, Stage
from tests.e2e.live import CeleryWorker, Daphne, RedisServer
from tests.e2e.peers import ReliablePeer, session_cookie, start_chat_over_http
from tests.e2e.test_faults import assert_exactly_once_in_order, converged, stored


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def cluster(_django_db_helper, django_db_blocker):
    redis_server = RedisServer()
    redis_server.start()
    started = [redis_server]
    try:
        with django_db_blocker.unblock():
            for process in (
                Daphne(redis_url=redis_server.url),
                Daphne(redis_url=redis_server.url),
                CeleryWorker(
                    beat=True, name="w1", redis_url=redis_server.url, TIMER_SWEEP_SECONDS="0.5"
                ),
                CeleryWorker(name="w2", redis_url=redis_server.url),
            ):
                process.start()
                started.append(process)
        yield started[1:]
    finally:
        for process in reversed(started):
            process.stop()


@sync_to_async
def set_presence(username: str, presence: str) -> Agent:
    agent = Agent.objects.select_related("user").get(user__username=username)
    services.set_presence(agent=agent, presence=presence)
    return agent


async def test_two_servers_and_two_workers_behave_as_one(demo, cluster):
    a, b, w1, w2 = cluster
    alex = await set_presence("alex", "online")
    sam = await set_presence("sam", "online")

    # Start on server A (round robin gives the chat to Alex); Alex's console is on server B.
    chat_id, token = await sync_to_async(start_chat_over_http)(a.base_url)
    visitor = ReliablePeer(chat_id=chat_id, ws_urls=[a.ws_url, b.ws_url], visitor_token=token)
    alex_console = ReliablePeer(
        chat_id=chat_id, ws_urls=[b.ws_url, a.ws_url], cookie=await session_cookie(alex.user)
    )
    visitor.start()
    alex_console.start()
    await visitor.wait_for(lambda: any(m.get("event") == "agent_joined" for m in visitor.messages))

    # Chat both ways across the two servers.
    sent = []
    for i in range(5):
        sent.append(f"visitor {i}")
        await visitor.send_message(sent[-1])
        sent.append(f"alex {i}")
        await alex_console.send_message(sent[-1])
    await alex_console.wait_for(lambda: "visitor 4" in alex_console.texts())
    await visitor.wait_for(lambda: "alex 4" in visitor.texts())

    # Escalation: Alex (on B) escalates; the visitor (on A) is told; Sam (on A) takes it.
    await alex_console.send(
        type="message", chat=chat_id, client_id="esc", text="/escalate billing Invoice dispute"
    )
    await alex_console.wait_for(
        lambda: any(f["type"] == "chat.removed" for f in alex_console.frames)
    )
    await visitor.wait_for(lambda: any(m.get("event") == "transfer" for m in visitor.messages))
    sam_console = ReliablePeer(
        chat_id=chat_id, ws_urls=[a.ws_url, b.ws_url], cookie=await session_cookie(sam.user)
    )
    sam_console.start()
    await sam_console.wait_for(lambda: any(f["type"] == "replay.done" for f in sam_console.frames))
    hello = next(f for f in sam_console.frames if f["type"] == "hello")
    assert [q["chat"] for q in hello["queue"]] == [chat_id]
    await sam_console.send(type="take", chat=chat_id)
    joined = "Sam from the billing team joined the chat."
    await visitor.wait_for(lambda: joined in visitor.texts())
    await alex_console.stop()

    # Reconnect: server A dies (SIGKILL); the visitor and Sam reconnect to server B and miss
    # nothing, and the chat goes on.
    a.stop(signal.SIGKILL)
    for i in range(5):
        sent.append(f"sam {i}")
        await sam_console.send_message(sent[-1])
        sent.append(f"visitor again {i}")
        await visitor.send_message(sent[-1])
    await converged(chat_id, visitor, sam_console)
    assert_exactly_once_in_order(await stored(chat_id), sent, [visitor, sam_console])
    assert visitor.connects >= 2 and sam_console.connects >= 2

    # Timeouts: with nobody at L1, a chat started on B times out; the visitor, connected to the
    # restarted A, gets the fallback once, from whichever worker ran it.
    await set_presence("alex", "away")
    await sync_to_async(Stage.objects.filter(name="L1 General").update)(wait_timeout_seconds=2)
    a.start()
    waiting_id, waiting_token = await sync_to_async(start_chat_over_http)(b.base_url)
    waiting = ReliablePeer(chat_id=waiting_id, ws_urls=[a.ws_url], visitor_token=waiting_token)
    waiting.start()
    await waiting.wait_for(lambda: any(m.get("event") == "offline" for m in waiting.messages), 20)
    assert [m.get("event") for m in waiting.messages].count("offline") == 1
    # Both workers took part in the run.
    for worker in (w1, w2):
        assert any(" succeeded in " in line for line in worker.lines), worker.name
    for peer in (visitor, sam_console, waiting):
        await peer.stop()
