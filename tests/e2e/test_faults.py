"""Faults against real processes: each test runs on its own redis-server, daphne and
Celery processes (tests/e2e/live.py), so that it can kill and restart them without touching the
machine's shared services. docs/reliability.md lists what each test proves."""

import asyncio
import json
import signal
import urllib.request

import pytest
import redis
import websockets
from asgiref.sync import sync_to_async
from celery import Celery

from chat.models import ChatSession, FlowEvent, Message
from escalation.models import Agent, QueueEntry, Stage
from tests.e2e.live import CeleryWorker, Daphne, RedisServer
from tests.e2e.peers import ReliablePeer, session_cookie, start_chat_over_http


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SWEEP_SECONDS = 0.5
# The servers under test: flood control opened up (these tests send hundreds of frames a second
# on purpose), persistent database connections (the harder case for pg_terminate_backend), a
# small connection cap per address, and pings that drop a client that stops reading.
DAPHNE_ENV = {
    "WS_FRAMES_PER_SECOND": "2000",
    "WS_FRAME_BURST": "2000",
    "DATABASE_CONN_MAX_AGE": "60",
    "CHANNEL_EXPIRY": "2",
    "WS_MAX_CONNECTIONS_PER_ADDRESS": "8",
}
PING = ("--ping-interval", "1", "--ping-timeout", "2")


@pytest.fixture(scope="module")
def private_redis():
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def daphne(private_redis, _django_db_helper, django_db_blocker):
    with django_db_blocker.unblock():
        server = Daphne(redis_url=private_redis.url, args=PING, **DAPHNE_ENV)
        server.start()
    yield server
    server.stop()


@pytest.fixture
def worker(private_redis, _django_db_helper, django_db_blocker):
    with django_db_blocker.unblock():
        process = CeleryWorker(
            beat=True, name="faults", redis_url=private_redis.url, TIMER_SWEEP_SECONDS="0.5"
        )
        process.start()
    yield process
    process.stop()


def agent_named(username: str) -> Agent:
    return Agent.objects.select_related("user").get(user__username=username)


async def chat_with_agent(server, agent) -> tuple[int, ReliablePeer, ReliablePeer]:
    """A chat started on the visitor page, taken by `agent` over its console socket; both peers
    connected and caught up."""
    chat_id, token = await sync_to_async(start_chat_over_http)(server.base_url)
    visitor = ReliablePeer(chat_id=chat_id, ws_urls=[server.ws_url], visitor_token=token)
    console = ReliablePeer(
        chat_id=chat_id, ws_urls=[server.ws_url], cookie=await session_cookie(agent.user)
    )
    visitor.start()
    console.start()
    await console.wait_for(lambda: any(f["type"] == "replay.done" for f in console.frames))
    await console.send(type="take", chat=chat_id)
    await visitor.wait_for(lambda: any(m.get("event") == "agent_joined" for m in visitor.messages))
    await console.wait_for(lambda: any(m.get("event") == "agent_joined" for m in console.messages))
    return chat_id, visitor, console


@sync_to_async
def stored(chat_id: int) -> list[Message]:
    return list(Message.objects.filter(chat_id=chat_id).order_by("seq"))


async def converged(chat_id: int, *peers: ReliablePeer, timeout: float = 60) -> None:
    """Until every peer has nothing unacknowledged and has seen the chat's last message."""
    for peer in peers:
        await peer.wait_for(lambda peer=peer: not peer.pending, timeout)
    chat = await sync_to_async(ChatSession.objects.get)(pk=chat_id)
    for peer in peers:
        last = chat.last_public_seq if peer.is_visitor else chat.last_seq
        await peer._resume()  # what a page does on focus or reconnect; harmless if caught up
        await peer.wait_for(lambda peer=peer, last=last: peer.last_seq >= last, timeout)


def assert_exactly_once_in_order(rows: list[Message], sent: list[str], peers) -> None:
    texts = [m.text for m in rows]
    assert [m.seq for m in rows] == list(range(1, len(rows) + 1))  # gap-free numbering
    for text in sent:
        assert texts.count(text) == 1, text  # stored once: re-sends made no duplicate
    for peer in peers:
        visible = [m for m in rows if peer.is_visitor is False or m.public_seq is not None]
        assert peer.seqs() == list(range(1, len(visible) + 1))  # contiguous, in order
        assert peer.texts() == [m.text for m in visible]  # each exactly once, the stored order


# --- daphne killed while messages flow -----------------------------------------------------------
MESSAGES_EACH_WAY = 200


async def test_daphne_killed_with_sigterm_and_sigkill_while_200_messages_flow_both_ways(
    alice_agent, daphne, worker
):
    """400 messages (200 each way) while daphne is stopped with SIGTERM and later SIGKILLed:
    both clients reconnect with backoff, re-send what was not acknowledged, and every message is
    stored once and delivered once, in order, with contiguous sequence numbers."""
    chat_id, visitor, console = await chat_with_agent(daphne, alice_agent)
    sent: list[str] = []

    async def send_many(peer: ReliablePeer, prefix: str) -> None:
        for i in range(MESSAGES_EACH_WAY):
            text = f"{prefix} {i}"
            sent.append(text)
            await peer.send_message(text)
            # At most 20 in flight, as a person typing fast would have.
            await peer.wait_for(lambda: len(peer.pending) < 20, 60)

    async def kill_midway() -> None:
        await console.wait_for(lambda: len(console.messages) > 80, 60)
        await asyncio.to_thread(daphne.restart, signal.SIGTERM)
        # Both back on the new process before the second kill (on a busy machine a peer still
        # backing off would otherwise live through both restarts as one outage).
        for peer in (visitor, console):
            await peer.wait_for(lambda peer=peer: peer.connects >= 2, 60)
        await console.wait_for(lambda: len(console.messages) > 240, 60)
        await asyncio.to_thread(daphne.restart, signal.SIGKILL)

    await asyncio.gather(
        send_many(visitor, "from the visitor"), send_many(console, "from the agent"), kill_midway()
    )
    # A peer that had nothing left to send notices the second drop on its own time: wait for
    # both to be back (the first connection plus one per restart) before checking the streams.
    for peer in (visitor, console):
        await peer.wait_for(lambda peer=peer: peer.connects >= 3, 60)
    await converged(chat_id, visitor, console)
    rows = await stored(chat_id)
    assert_exactly_once_in_order(rows, sent, [visitor, console])
    assert visitor.connects >= 3 and console.connects >= 3  # it did reconnect, twice
    print(
        f"{len(sent)} messages, visitor reconnected {visitor.connects - 1}x, "
        f"agent {console.connects - 1}x; raw frames {len(visitor.frames)}/{len(console.frames)}"
    )
    await visitor.stop()
    await console.stop()


# --- a client that stops reading -----------------------------------------------------------------
def channel_layer_footprint(url: str) -> tuple[int, int]:
    """(largest number of messages queued on any one channel, Redis's used memory in bytes)."""
    client = redis.Redis.from_url(url)
    largest = 0
    for key in client.scan_iter(match="tierline*", count=1000):
        if client.type(key) == b"zset" and not key.endswith(b".groups") and b"group" not in key:
            largest = max(largest, client.zcard(key))
    return largest, int(client.info("memory")["used_memory"])


async def test_a_client_that_stops_reading_gets_everything_on_resync_and_memory_stays_bounded(
    alice_agent, private_redis, django_db_blocker, worker
):
    """The visitor stops reading for longer than the channel layer's expiry while the agent sends
    300 messages of 3,000 characters: Redis never holds more than the layer's capacity per channel
    (its memory stays bounded), daphne drops the silent socket after its ping timeout (so its
    buffers do not grow without end), and on reconnect the visitor gets every message, in order,
    through the paginated replay."""
    with django_db_blocker.unblock():
        # The stock channels-redis layer, whose per-channel Redis lists are what can grow. The
        # default fan-out layer keeps no per-channel lists; its bound is the per-socket inbox,
        # whose overrun resyncs from the database (tests/chat/test_fanout.py).
        server = Daphne(
            redis_url=private_redis.url,
            args=PING,
            **{**DAPHNE_ENV, "CHANNEL_CAPACITY": "20", "CHANNEL_LAYER": "redis"},
        )
        server.start()
    try:
        chat_id, visitor, console = await chat_with_agent(server, alice_agent)
        await visitor.stop()
        # A raw client that reads its hello and then nothing at all.
        stalled = await websockets.connect(
            visitor.url(), origin=server.base_url, max_queue=1, ping_interval=None
        )
        await stalled.recv()
        baseline_memory = channel_layer_footprint(private_redis.url)[1]
        peak_queue = peak_memory = 0
        for i in range(300):
            await console.send_message(f"{i:04d} " + "x" * 2995)
            if i % 20 == 0:
                queued, memory = channel_layer_footprint(private_redis.url)
                peak_queue, peak_memory = max(peak_queue, queued), max(peak_memory, memory)
            await console.wait_for(lambda: len(console.pending) < 20, 60)
        await console.wait_for(lambda: not console.pending, 60)

        # Longer than the layer's expiry (2 s) and daphne's ping interval + timeout (1 + 2 s):
        # the server gives up on the silent socket.
        async def read_until_dropped() -> None:
            async with asyncio.timeout(30):
                while True:
                    await stalled.recv()

        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await read_until_dropped()
        queued, memory = channel_layer_footprint(private_redis.url)
        peak_queue, peak_memory = max(peak_queue, queued), max(peak_memory, memory)
        print(
            f"peak queued per channel {peak_queue}, Redis memory +{peak_memory - baseline_memory} "
            "bytes while 900 kB were sent"
        )
        assert peak_queue <= 20
        assert peak_memory - baseline_memory < 2_000_000  # well under one unread copy of it all
        # The visitor comes back from the last number it saw.
        resumed = ReliablePeer(
            chat_id=chat_id, ws_urls=[server.ws_url], visitor_token=visitor.token
        )
        resumed.last_seq = visitor.last_seq
        resumed.messages = list(visitor.messages)
        resumed.start()
        rows = await stored(chat_id)
        await resumed.wait_for(lambda: resumed.last_seq == rows[-1].public_seq, 60)
        assert resumed.texts() == [m.text for m in rows if m.public_seq is not None]
        pages = [f for f in resumed.frames if f["type"] == "replay.done"]
        assert len(pages) >= 2 and pages[0]["more"] is True  # bounded pages of at most 200
        await resumed.stop()
        await console.stop()
    finally:
        server.stop()


# --- Redis restarted -----------------------------------------------------------------------------
async def test_redis_restarted_mid_chat_loses_nothing(alice_agent, private_redis, daphne, worker):
    """Redis (channel layer and broker) stops and starts again, empty, mid-chat. Messages already
    acknowledged are in PostgreSQL and reach the other side after the reconnect; messages sent
    meanwhile are either acknowledged, answered with an error, or re-sent by the client after it
    reconnects: none is lost and none is stored twice."""
    chat_id, visitor, console = await chat_with_agent(daphne, alice_agent)
    sent = []
    for i in range(5):
        sent.append(f"before {i}")
        await console.send_message(sent[-1])
    await console.wait_for(lambda: not console.pending)
    private_redis.stop(signal.SIGKILL)
    for i in range(5):
        sent.append(f"during {i}")
        await console.send_message(sent[-1])
        sent.append(f"visitor during {i}")
        await visitor.send_message(sent[-1])
    # The server is still up and answers over HTTP (health checks reach PostgreSQL only).
    await asyncio.to_thread(daphne.wait_ready)
    await asyncio.to_thread(private_redis.start)
    for i in range(3):
        sent.append(f"after {i}")
        await visitor.send_message(sent[-1])
    await converged(chat_id, visitor, console)
    rows = await stored(chat_id)
    assert_exactly_once_in_order(rows, sent, [visitor, console])
    for error in visitor.errors + console.errors:
        assert error["code"] == "server_error" and error.get("ref"), error  # told, with its ref
    print(f"errors during the outage: {len(visitor.errors) + len(console.errors)}")
    await visitor.stop()
    await console.stop()


# --- timers --------------------------------------------------------------------------------------
@sync_to_async
def short_timeout(seconds: int) -> None:
    Stage.objects.filter(name="L1 General").update(wait_timeout_seconds=seconds)


@sync_to_async
def timeout_events(chat_id: int) -> list[dict]:
    return list(
        FlowEvent.objects.filter(chat_id=chat_id, kind="timed_out").values_list("data", flat=True)
    )


async def visitor_of_new_chat(server) -> ReliablePeer:
    chat_id, token = await sync_to_async(start_chat_over_http)(server.base_url)
    visitor = ReliablePeer(chat_id=chat_id, ws_urls=[server.ws_url], visitor_token=token)
    visitor.start()
    await visitor.wait_for(lambda: any(f["type"] == "replay.done" for f in visitor.frames))
    return visitor


def fallback_notices(peer: ReliablePeer) -> list[dict]:
    return [m for m in peer.messages if m.get("event") == "offline"]


async def test_a_timeout_survives_a_killed_worker(demo, daphne, worker):
    """SIGKILL the worker while it holds the timer task (acks_late: never acknowledged), start a
    new one: the sweep fires the fallback, once, late by at most the sweep interval."""
    await short_timeout(3)
    visitor = await visitor_of_new_chat(daphne)
    mark = len(worker.lines)
    worker.wait_for_line(
        lambda line: "wait_timeout" in line and "received" in line, start=max(0, mark - 50)
    )
    worker.stop(signal.SIGKILL)
    worker.start()
    await visitor.wait_for(lambda: fallback_notices(visitor), 20)
    [event] = await timeout_events(visitor.chat_id)
    print(f"after a killed worker, timeout fired {event['late_ms']} ms after its deadline")
    assert event["late_ms"] < SWEEP_SECONDS * 1000 + 1000, event
    assert len(fallback_notices(visitor)) == 1
    await visitor.stop()


async def until(predicate, timeout: float = 30) -> None:
    """Poll a condition on the processes' output (their lines arrive on other threads)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def broker(url: str) -> Celery:
    """A Celery client on the private Redis, to put tasks in the queue as another process would.
    Not the current app: the tests' own tasks must keep going to the tests' broker."""
    return Celery("faults", broker=url, set_as_current=False)


async def test_two_beats_and_a_duplicated_timeout_task_fire_the_fallback_once(
    demo, private_redis, daphne, worker, django_db_blocker
):
    """A second worker with its own beat (two beats sweeping at once) and the same timeout task
    queued three more times: the fallback runs once, the visitor is told once."""
    with django_db_blocker.unblock():
        second = CeleryWorker(
            beat=True, name="faults2", redis_url=private_redis.url, TIMER_SWEEP_SECONDS="0.5"
        )
        second.start()
    try:
        await short_timeout(2)
        visitor = await visitor_of_new_chat(daphne)
        entry = await sync_to_async(QueueEntry.objects.get)(chat_id=visitor.chat_id)
        client = broker(private_redis.url)
        for _ in range(3):
            await asyncio.to_thread(
                client.send_task, "escalation.tasks.wait_timeout", args=(entry.pk,), countdown=2
            )
        await visitor.wait_for(lambda: fallback_notices(visitor), 20)

        # Four timer tasks ran on the two workers: at most one of them acted (the sweeps may have
        # been first), every other found the entry closed.
        def results() -> list[str]:
            return [
                line.rsplit(": ", 1)[1]
                for process in (worker, second)
                for line in list(process.lines)
                if "wait_timeout" in line and " succeeded in " in line
            ]

        await until(lambda: len(results()) >= 4)
        assert results().count("'fell back'") <= 1
        assert set(results()) <= {"'fell back'", "'stale'", "'early'"}, results()
        assert len(await timeout_events(visitor.chat_id)) == 1
        assert len(fallback_notices(visitor)) == 1
        rows = await stored(visitor.chat_id)
        assert [m.event for m in rows].count("offline") == 1
        await visitor.stop()
    finally:
        second.stop()


async def test_a_timeout_that_arrives_after_an_agent_took_the_chat_changes_nothing(
    alice_agent, private_redis, daphne, worker
):
    chat_id, visitor, console = await chat_with_agent(daphne, alice_agent)
    entry = await sync_to_async(QueueEntry.objects.get)(chat_id=chat_id)
    before = await sync_to_async(lambda: list(FlowEvent.objects.filter(chat_id=chat_id)))()
    mark = len(worker.lines)
    await asyncio.to_thread(
        broker(private_redis.url).send_task, "escalation.tasks.wait_timeout", args=(entry.pk,)
    )
    worker.wait_for_line(lambda line: "succeeded" in line and "'stale'" in line, start=mark)
    after = await sync_to_async(lambda: list(FlowEvent.objects.filter(chat_id=chat_id)))()
    assert after == before
    chat = await sync_to_async(ChatSession.objects.get)(pk=chat_id)
    assert chat.status == "active"
    # The chat goes on as before.
    await visitor.send_message("still here")
    await console.wait_for(lambda: "still here" in console.texts())
    await visitor.stop()
    await console.stop()


# --- PostgreSQL connection terminated ------------------------------------------------------------
@sync_to_async
def terminate_other_backends() -> int:
    """pg_terminate_backend on every other connection to the test database: daphne's and the
    worker's persistent connections."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE 'tierline-e2e%%'"
        )
        return int(cursor.fetchone()[0])


async def test_the_next_message_works_after_pg_terminate_backend(alice_agent, daphne, worker):
    _chat_id, visitor, console = await chat_with_agent(daphne, alice_agent)
    await visitor.send_message("before")
    await console.wait_for(lambda: "before" in console.texts())
    assert await terminate_other_backends() >= 1
    await visitor.send_message("after the connection was terminated")
    await console.wait_for(lambda: "after the connection was terminated" in console.texts())
    await console.send_message("and back")
    await visitor.wait_for(lambda: "and back" in visitor.texts())
    assert not visitor.errors and not console.errors
    assert visitor.connects == 1 and console.connects == 1  # the sockets never dropped
    await visitor.stop()
    await console.stop()


# --- many connections from one address -----------------------------------------------------------
async def test_connections_from_one_address_are_capped_and_others_are_unaffected(l1_setup, daphne):
    chat_id, token = await sync_to_async(start_chat_over_http)(daphne.base_url)
    peer = ReliablePeer(chat_id=chat_id, ws_urls=[daphne.ws_url], visitor_token=token)
    url = peer.url()
    held = []
    for _ in range(8):  # WS_MAX_CONNECTIONS_PER_ADDRESS
        ws = await websockets.connect(url, origin=daphne.base_url)
        assert json.loads(await ws.recv())["type"] == "hello"
        held.append(ws)
    extra = await websockets.connect(url, origin=daphne.base_url)
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        await extra.recv()
    assert closed.value.rcvd.code == 4429
    # Another address is served as before (127.0.0.2 is this machine's loopback too).
    other = await websockets.connect(url, origin=daphne.base_url, local_addr=("127.0.0.2", 0))
    assert json.loads(await other.recv())["type"] == "hello"
    await other.close()
    # HTTP from the capped address still works, and a freed slot can be used again.
    with urllib.request.urlopen(daphne.base_url + "/healthz", timeout=5) as response:  # noqa: S310 - local
        assert response.status == 200
    await held.pop().close()
    for _ in range(100):  # the server counts the socket closed once its consumer has finished
        again = await websockets.connect(url, origin=daphne.base_url)
        try:
            assert json.loads(await again.recv())["type"] == "hello"
            break
        except websockets.exceptions.ConnectionClosed:
            await asyncio.sleep(0.1)
    else:
        pytest.fail("a freed slot was never usable again")
    for ws in [*held, again]:
        await ws.close()
