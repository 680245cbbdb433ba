"""Order across two daphne processes, under load: the visitor's socket on one server, the agents'
on the other, both cores busy with other work. Each round: an L1 agent takes the chat, 25
messages each way without waiting, an escalation to L2 (the L1 agent's console lets go after the
hand-over notices), an L2 agent takes it, 25 more each way, the L2 agent ends it. Every socket
must receive every number of the chat's stream exactly once and in order, with each status
change after the messages before it. Rounds run many at a time over shared agent sockets, so that
events of different chats and processes interleave as they do in production. Each round has
its own pair of agents (a socket handles its frames one after another, as a browser tab's do).
"""

import asyncio
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client

from chat.models import Message
from chat.selectors import make_visitor_token
from escalation import services
from tests.e2e.live import Daphne
from tests.factories import (
    AgentFactory,
    AgentGroupFactory,
    PipelineFactory,
    StageFactory,
    StageOptionFactory,
    TopicFactory,
    UserFactory,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

ROUNDS = 200
AT_ONCE = 40
EACH_WAY = 25  # per half: 50 each way in all
# The rate limit is not what this test is about; persistent connections, as in production.
SERVER_ENV = {
    "WS_FRAMES_PER_SECOND": "100000",
    "WS_FRAME_BURST": "100000",
    "DATABASE_CONN_MAX_AGE": "600",
}


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


@pytest.fixture
def busy_cores():
    """Both cores busy with other work for the length of the test."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]
    yield
    for burner in burners:
        burner.kill()
        burner.wait()


@pytest.fixture
def servers(_flushed_test_redis, _django_db_helper, django_db_blocker):
    with django_db_blocker.unblock():
        first, second = Daphne(**SERVER_ENV), Daphne(**SERVER_ENV)
        first.start()
        second.start()
    yield first, second
    first.stop()
    second.stop()


class Recorder:
    """A socket that keeps every frame it receives, per chat, in arrival order."""

    def __init__(self, url: str, origin: str, cookie: str | None = None) -> None:
        self.url, self.origin, self.cookie = url, origin, cookie
        self.frames: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.waiters: list[tuple[Any, asyncio.Future[dict[str, Any]]]] = []

    async def open(self, first: Any = None) -> None:
        """Connect; with `first`, also wait for the first frame that matches it."""
        headers = {"Cookie": self.cookie} if self.cookie else None
        answer = self.expect(first) if first else None
        self.ws = await websockets.connect(
            self.url, origin=self.origin, additional_headers=headers, open_timeout=30
        )
        self.reader = asyncio.create_task(self.read())
        if answer is not None:
            await asyncio.wait_for(answer, 60)

    async def read(self) -> None:
        async for raw in self.ws:
            frame = orjson.loads(raw)
            if isinstance(frame.get("chat"), int):
                self.frames[frame["chat"]].append(frame)
            for predicate, future in list(self.waiters):
                if not future.done() and predicate(frame):
                    future.set_result(frame)

    def expect(self, predicate: Any) -> asyncio.Future[dict[str, Any]]:
        """A future for the next frame that matches (made before sending what causes it)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self.waiters.append(entry)
        future.add_done_callback(lambda _: self.waiters.remove(entry))
        return future

    async def ask(self, predicate: Any, **frame: Any) -> dict[str, Any]:
        """Send `frame` and wait for the answer that matches `predicate`."""
        answer = self.expect(predicate)
        await self.send(**frame)
        return await asyncio.wait_for(answer, 60)

    async def send(self, **frame: Any) -> None:
        await self.ws.send(orjson.dumps(frame).decode())

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


@dataclass
class Agent:
    agent: Any  # the Agent row, for the services
    socket: Recorder  # its console


async def console(server: Daphne, agent: Any) -> Agent:
    client = Client()
    await sync_to_async(client.force_login)(agent.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    recorder = Recorder(f"{server.ws_url}/ws/console/", server.base_url, cookie)
    await recorder.open(first=lambda f: f["type"] == "hello")
    return Agent(agent, recorder)


def is_(kind: str, chat_id: int, **fields: Any) -> Any:
    return lambda f: (
        f["type"] == kind
        and f.get("chat") == chat_id
        and all(f.get(k) == v for k, v in fields.items())
    )


def numbered(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] in ("message", "chat.status", "chat.removed")]


def check_stream(frames: list[dict[str, Any]], *, first: int | None = 1) -> list[int]:
    """The chat's numbered frames as a socket received them: messages exactly once, in order,
    without a gap (from `first`, or from wherever the socket started following); each status
    change or removal right after the message it follows."""
    seqs = [f["seq"] for f in numbered(frames) if f["type"] == "message"]
    assert seqs, "no message reached this socket"
    first = seqs[0] if first is None else first
    assert seqs == list(range(first, first + len(seqs))), seqs
    last = first - 1
    for frame in numbered(frames):
        if frame["type"] == "message":
            last = frame["seq"]
        else:
            assert frame["seq"] == last, (frame, last)  # not before its message, nor late
    return seqs


def in_a_thread(func: Any) -> Any:
    """A service call from the test, on a thread of its own: many rounds change state at once
    (sync_to_async's default would run them one after another on one thread)."""
    return sync_to_async(func, thread_sensitive=False)


async def one_round(chat_id: int, visitor_url: str, origin: str, l1: Agent, l2: Agent) -> Recorder:
    visitor = Recorder(visitor_url, origin)
    await visitor.open(first=is_("replay.done", chat_id))

    assigned = l1.socket.expect(is_("chat.assigned", chat_id))
    await in_a_thread(services.take_chat)(chat_id=chat_id, agent=l1.agent)
    await asyncio.wait_for(assigned, 60)
    await talk(visitor, l1.socket, chat_id, "a", "v")
    removed = l1.socket.expect(is_("chat.removed", chat_id))
    await in_a_thread(services.escalate_chat)(chat_id=chat_id, agent=l1.agent, keyword="l2")
    await asyncio.wait_for(removed, 60)

    assigned = l2.socket.expect(is_("chat.assigned", chat_id))
    await in_a_thread(services.take_chat)(chat_id=chat_id, agent=l2.agent)
    await asyncio.wait_for(assigned, 60)
    await talk(visitor, l2.socket, chat_id, "b", "w")
    ended = [
        socket.expect(is_("chat.status", chat_id, status="ended"))
        for socket in (visitor, l2.socket)
    ]
    await in_a_thread(services.end_chat_by_agent)(chat_id=chat_id, agent=l2.agent)
    await asyncio.wait_for(asyncio.gather(*ended), 60)
    await visitor.close()
    return visitor


async def talk(visitor: Recorder, agent: Recorder, chat_id: int, mine: str, theirs: str) -> None:
    """EACH_WAY messages each way, sent without waiting for one another; done when both
    sockets have seen the last of both."""

    async def visitor_side() -> None:
        for n in range(EACH_WAY):
            await visitor.send(type="message", text=f"{theirs}{n}", client_id=f"{theirs}{n}")

    async def agent_side() -> None:
        for n in range(EACH_WAY):
            await agent.send(type="message", chat=chat_id, text=f"{mine}{n}")

    last = {f"{mine}{EACH_WAY - 1}", f"{theirs}{EACH_WAY - 1}"}
    done = [all_seen(socket, chat_id, last) for socket in (visitor, agent)]
    await asyncio.gather(visitor_side(), agent_side())
    await asyncio.wait_for(asyncio.gather(*done), 60)


def all_seen(socket: Recorder, chat_id: int, texts: set[str]) -> asyncio.Future[Any]:
    """A future done once `socket` has received messages with all of `texts` in the chat."""
    seen = {f.get("text") for f in socket.frames[chat_id]} & texts

    def saw_all(f: dict[str, Any]) -> bool:
        if f["type"] == "message" and f.get("chat") == chat_id and f["text"] in texts:
            seen.add(f["text"])
        return seen == texts

    future: asyncio.Future[Any] = socket.expect(saw_all)
    if seen == texts:
        future.set_result(None)
    return future


def stored_seqs(chat_id: int) -> list[int]:
    return list(
        Message.objects.filter(chat_id=chat_id).order_by("seq").values_list("seq", flat=True)
    )


async def test_every_socket_gets_every_number_once_in_order_across_two_processes(
    l1_setup, servers, busy_cores
):
    first, second = servers

    def setup() -> list[tuple[str, Any, Any]]:
        """A desk per round slot: its own pipeline (topic, L1 and L2 stages, one agent each),
        so that the rounds share the servers, not their queues."""

        def agent(name: str, group: Any) -> Any:
            made = AgentFactory(
                user=UserFactory(username=name, roles=["Agents"]),
                display_name=name.title(),
                member_of=[group],
                capacity=1,
            )
            services.set_presence(agent=made, presence="online")
            return made

        desks = []
        for n in range(AT_ONCE):
            g1 = AgentGroupFactory(name=f"L1 desk {n}", tier=l1_setup.t1)
            g2 = AgentGroupFactory(name=f"L2 desk {n}", tier=l1_setup.t2)
            pipeline = PipelineFactory(name=f"Desk {n}")
            l1 = StageFactory(pipeline=pipeline, name="L1", tier=l1_setup.t1, served_by=[g1])
            l2 = StageFactory(pipeline=pipeline, name="L2", tier=l1_setup.t2, served_by=[g2])
            pipeline.entry_stage = l1
            pipeline.save()
            TopicFactory(name=f"Desk {n}", pipeline=pipeline)
            StageOptionFactory(stage=l1, keyword="l2", target_stage=l2)
            desks.append((f"Desk {n}", agent(f"first{n}", g1), agent(f"second{n}", g2)))
        return desks

    desks = await sync_to_async(setup)()
    # The agents on one process, the visitors on the other.
    consoles = await asyncio.gather(
        *(asyncio.gather(console(second, a), console(second, b)) for _, a, b in desks)
    )
    topics = [topic for topic, _, _ in desks]

    async def start_and_run(topic: str, l1: Agent, l2: Agent) -> tuple[int, Recorder]:
        chat = await in_a_thread(services.start_chat)(
            visitor_name="Carol",
            visitor_email="",
            topic_name=topic,
            first_message="Hello",
            visitor_context={},
        )
        token = await sync_to_async(make_visitor_token)(chat)
        url = f"{first.ws_url}/ws/chat/{chat.pk}/?token={quote(token)}&since=0"
        return chat.pk, await one_round(chat.pk, url, first.base_url, l1, l2)

    visitors: dict[int, tuple[Recorder, Agent, Agent]] = {}
    for _ in range(ROUNDS // AT_ONCE):
        done = await asyncio.gather(
            *(start_and_run(topic, *pair) for topic, pair in zip(topics, consoles, strict=True))
        )
        for (chat_id, visitor), (l1, l2) in zip(done, consoles, strict=True):
            visitors[chat_id] = (visitor, l1, l2)
    for l1, l2 in consoles:
        await l1.socket.close()
        await l2.socket.close()

    assert len(visitors) == ROUNDS
    for chat_id, (visitor, l1, l2) in visitors.items():
        seen = check_stream(visitor.frames[chat_id])
        assert visitor.frames[chat_id][-1]["type"] == "chat.status"
        public = await sync_to_async(
            Message.objects.filter(chat_id=chat_id, public_seq__isnull=False).count
        )()
        assert len(seen) == public  # the visitor: every number from the first, once, in order
        # The agents follow the chat from when it was given to them: every number from there
        # to their end (the removal after the hand-over notices; the chat's end), once, in order.
        first_turn = check_stream(l1.socket.frames[chat_id], first=None)
        assert numbered(l1.socket.frames[chat_id])[-1]["type"] == "chat.removed"
        second_turn = check_stream(l2.socket.frames[chat_id], first=None)
        ending = [f["type"] for f in numbered(l2.socket.frames[chat_id])[-2:]]
        assert ending == ["chat.status", "chat.removed"]  # the end, then the agent lets go
        stored = await sync_to_async(stored_seqs)(chat_id)
        assert second_turn == stored[stored.index(second_turn[0]) :]
        assert first_turn[-1] < second_turn[0]
        texts = [f["text"] for f in visitor.frames[chat_id] if f["type"] == "message"]
        for prefix in ("a", "b", "v", "w"):
            assert [t for t in texts if t[0] == prefix and t[1:].isdigit()] == [
                f"{prefix}{n}" for n in range(EACH_WAY)
            ]
