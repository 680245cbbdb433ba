"""Order across two daphne processes, under load: the visitor's socket on one server, the agents'
on the other, both cores busy with other work. Each round: an L1 agent takes the chat, 25
messages each way without waiting, an escalation to L2 (the L1 agent's console lets go after the
hand-over notices), an L2 agent takes it, 25 more each way, the L2 agent ends it. Every socket
must receive every number of the chat's stream exactly once and in order, with each status
change after the messages before it. Rounds run many at a time over shared agent sockets, so that
events of different chats and processes interleave as they do in production.
"""

import asyncio
import json
import os
import subprocess
import sys
from collections import defaultdict
from typing import Any
from urllib.parse import quote

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client

from chat.models import Message
from chat.selectors import make_visitor_token
from escalation import services
from tests.e2e.live import Daphne
from tests.factories import AgentFactory, StageOptionFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

ROUNDS = 200
AT_ONCE = 25
EACH_WAY = 25  # per half: 50 each way in all
# The rate limit is not what this test is about: one console socket carries 25 chats.
SERVER_ENV = {"WS_FRAMES_PER_SECOND": "100000", "WS_FRAME_BURST": "100000"}


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
            frame = json.loads(raw)
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
        await self.ws.send(json.dumps(frame))

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


async def console(server: Daphne, agent: Any) -> Recorder:
    client = Client()
    await sync_to_async(client.force_login)(agent.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    recorder = Recorder(f"{server.ws_url}/ws/console/", server.base_url, cookie)
    await recorder.open(first=lambda f: f["type"] == "hello")
    return recorder


def is_(kind: str, chat_id: int, **fields: Any) -> Any:
    return lambda f: (
        f["type"] == kind
        and f.get("chat") == chat_id
        and all(f.get(k) == v for k, v in fields.items())
    )


def check_stream(frames: list[dict[str, Any]], *, first: int = 1) -> list[int]:
    """The chat's numbered frames as a socket received them: messages exactly once, in order,
    without a gap; each status change or removal right after the message it follows."""
    numbered = [f for f in frames if f["type"] in ("message", "chat.status", "chat.removed")]
    seqs = [f["seq"] for f in numbered if f["type"] == "message"]
    assert seqs == list(range(first, first + len(seqs))), seqs
    last = first - 1
    for frame in numbered:
        if frame["type"] == "message":
            last = frame["seq"]
        else:
            assert frame["seq"] == last, (frame, last)  # not before its message, nor late
    return seqs


async def one_round(
    chat_id: int, visitor_url: str, origin: str, l1: Recorder, l2: Recorder
) -> Recorder:
    visitor = Recorder(visitor_url, origin)
    await visitor.open(first=is_("replay.done", chat_id))

    await l1.ask(is_("taken", chat_id), type="take", chat=chat_id)
    await l1.ask(is_("replay.done", chat_id), type="subscribe", chat=chat_id, since=0)
    await talk(visitor, l1, chat_id, "a", "v")
    escalate = {"type": "message", "chat": chat_id, "text": "/escalate l2 stress hand-over"}
    await l1.ask(is_("chat.removed", chat_id), **escalate)

    await l2.ask(is_("taken", chat_id), type="take", chat=chat_id)
    await l2.ask(is_("replay.done", chat_id), type="subscribe", chat=chat_id, since=0)
    await talk(visitor, l2, chat_id, "b", "w")
    visitor_sees_end = visitor.expect(is_("chat.status", chat_id, status="ended"))
    await l2.ask(is_("chat.status", chat_id, status="ended"), type="end", chat=chat_id)
    await asyncio.wait_for(visitor_sees_end, 60)
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

    def setup() -> tuple[Any, Any]:
        StageOptionFactory(stage=l1_setup.l1, keyword="l2", target_stage=l1_setup.l2)
        ann = AgentFactory(
            user=UserFactory(username="ann", roles=["Agents"]),
            display_name="Ann",
            member_of=[l1_setup.g1],
            capacity=AT_ONCE * 2,
        )
        ben = AgentFactory(
            user=UserFactory(username="ben", roles=["Agents"]),
            display_name="Ben",
            member_of=[l1_setup.g2],
            capacity=AT_ONCE * 2,
        )
        return ann, ben

    ann, ben = await sync_to_async(setup)()
    for agent in (ann, ben):
        await sync_to_async(services.set_presence)(agent=agent, presence="online")
    l1 = await console(second, ann)  # the agents on one process ...
    l2 = await console(second, ben)

    async def start_and_run() -> tuple[int, Recorder]:
        chat = await sync_to_async(services.start_chat)(
            visitor_name="Carol",
            visitor_email="",
            topic_name="Billing",
            first_message="Hello",
            visitor_context={},
        )
        token = await sync_to_async(make_visitor_token)(chat)
        url = f"{first.ws_url}/ws/chat/{chat.pk}/?token={quote(token)}&since=0"  # ... visitors
        return chat.pk, await one_round(chat.pk, url, first.base_url, l1, l2)

    visitors: dict[int, Recorder] = {}
    for _ in range(ROUNDS // AT_ONCE):
        for chat_id, visitor in await asyncio.gather(*(start_and_run() for _ in range(AT_ONCE))):
            visitors[chat_id] = visitor
    await l1.close()
    await l2.close()

    assert len(visitors) == ROUNDS
    for chat_id, visitor in visitors.items():
        seen_by_visitor = check_stream(visitor.frames[chat_id])
        assert visitor.frames[chat_id][-1]["type"] == "chat.status"
        check_stream(l1.frames[chat_id])
        assert [f["type"] for f in l1.frames[chat_id]][-1] == "chat.removed"
        seen_by_l2 = check_stream(l2.frames[chat_id])
        stored = await sync_to_async(stored_seqs)(chat_id)
        assert seen_by_l2 == stored  # the last agent saw the whole stream, replay and live
        public = await sync_to_async(
            Message.objects.filter(chat_id=chat_id, public_seq__isnull=False).count
        )()
        assert len(seen_by_visitor) == public
        texts = [f["text"] for f in visitor.frames[chat_id] if f["type"] == "message"]
        for prefix in ("a", "b", "v", "w"):
            assert [t for t in texts if t[0] == prefix and t[1:].isdigit()] == [
                f"{prefix}{n}" for n in range(EACH_WAY)
            ]
