"""Journeys 1, 2 and 7 against a real daphne, a real Celery worker, PostgreSQL and Redis."""

import asyncio
import json
import signal
from typing import Any
from urllib.parse import quote

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client

from chat.selectors import make_visitor_token
from escalation import services


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    """sync_to_async runs ORM calls on a worker thread; close its connection after each test so
    that the test database can be dropped at the end."""
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


class Peer:
    """A websocket client that remembers the last sequence number it saw, as the pages do."""

    def __init__(self, url: str, origin: str, cookie: str | None = None) -> None:
        self.url, self.origin, self.cookie = url, origin, cookie
        self.messages: list[dict[str, Any]] = []
        self.last_seq = 0
        self.ws: Any = None

    async def connect(self, url: str | None = None) -> None:
        headers = {"Cookie": self.cookie} if self.cookie else None
        self.ws = await websockets.connect(
            url or self.url, origin=self.origin, additional_headers=headers, open_timeout=10
        )

    async def frame(self, timeout: float = 10) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        if frame["type"] == "message" and frame["seq"] > self.last_seq:
            self.messages.append(frame)
            self.last_seq = frame["seq"]
        return frame

    async def until(self, predicate, timeout: float = 10) -> dict[str, Any]:
        async def loop() -> dict[str, Any]:
            while True:
                frame = await self.frame()
                if predicate(frame):
                    return frame

        return await asyncio.wait_for(loop(), timeout)

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def close(self) -> None:
        await self.ws.close()


def texts(peer: Peer) -> list[str]:
    return [m["text"] for m in peer.messages]


def seqs(peer: Peer) -> list[int]:
    return [m["seq"] for m in peer.messages]


async def open_chat(server, agent):
    chat = await sync_to_async(services.start_chat)(
        visitor_name="Carol",
        visitor_email="",
        topic_name="Billing",
        first_message="Hello?",
        visitor_context={},
    )
    token = await sync_to_async(make_visitor_token)(chat)
    visitor = Peer("", server.base_url)
    visitor.url_for = lambda: (
        f"{server.ws_url}/ws/chat/{chat.pk}/?token={quote(token)}&since={visitor.last_seq}"
    )
    return chat, visitor, await console_peer(server, agent)


async def console_peer(server, agent) -> Peer:
    """An agent's console socket, logged in through a real session."""
    client = Client()
    await sync_to_async(client.force_login)(agent.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    return Peer(f"{server.ws_url}/ws/console/", server.base_url, cookie)


async def test_live_chat_with_reconnect_and_server_restart(
    alice_agent, daphne_process, celery_worker_process
):
    chat, visitor, agent = await open_chat(daphne_process, alice_agent)

    # Start: the visitor sees its place in line.
    await visitor.connect(visitor.url_for())
    hello = await visitor.frame()
    assert hello["queue"]["position"] == 1
    assert hello["queue"]["text"] == "You are number 1 in line."
    await visitor.until(lambda f: f["type"] == "replay.done")
    assert texts(visitor)[0] == "Hello?"

    # Take: the agent takes it from its live queue; both sides see the join notice.
    await agent.connect()
    console_hello = await agent.frame()
    assert [q["chat"] for q in console_hello["queue"]] == [chat.pk]
    await agent.send(type="take", chat=chat.pk)
    await agent.until(lambda f: f["type"] == "taken")
    await agent.send(type="subscribe", chat=chat.pk, since=0)
    await agent.until(lambda f: f["type"] == "replay.done")
    joined = await visitor.until(lambda f: f.get("event") == "agent_joined")
    assert joined["text"] == "Alice from L1 General joined the chat."

    # Messages both ways.
    await agent.send(type="message", chat=chat.pk, text="Hi Carol, how can I help?", client_id="a1")
    await visitor.until(lambda f: f.get("text") == "Hi Carol, how can I help?")
    await visitor.send(type="message", text="My invoice is wrong", client_id="v1")
    await agent.until(lambda f: f.get("text") == "My invoice is wrong")
    await visitor.until(lambda f: f.get("text") == "My invoice is wrong")  # its own, numbered

    # The visitor drops; the agent sends 3; the visitor comes back and gets exactly those 3.
    await visitor.close()
    seen = visitor.last_seq
    for i in range(3):
        await agent.send(type="message", chat=chat.pk, text=f"while away {i}", client_id=f"w{i}")
        await agent.until(lambda f, i=i: f["type"] == "ack" and f["client_id"] == f"w{i}")
    await visitor.connect(visitor.url_for())
    await visitor.frame()  # hello
    done = await visitor.until(lambda f: f["type"] == "replay.done")
    assert done["last"] == seen + 3
    assert texts(visitor)[-3:] == ["while away 0", "while away 1", "while away 2"]
    assert seqs(visitor) == list(range(1, visitor.last_seq + 1))

    # daphne restarts mid-chat: both sides reconnect from their last seq and miss nothing.
    before_visitor, before_agent = visitor.last_seq, agent.last_seq
    daphne_process.restart(signal.SIGTERM)
    await sync_to_async(services.post_agent_message)(
        chat_id=chat.pk, agent=alice_agent, text="sent during the restart"
    )
    await visitor.connect(visitor.url_for())
    await agent.connect()
    await agent.frame()  # hello
    await agent.send(type="subscribe", chat=chat.pk, since=before_agent)
    await agent.until(lambda f: f["type"] == "replay.done")
    await visitor.until(lambda f: f["type"] == "replay.done")
    assert texts(visitor)[-1] == "sent during the restart"
    assert visitor.last_seq == before_visitor + 1
    assert seqs(visitor) == list(range(1, visitor.last_seq + 1))
    assert agent.last_seq > before_agent
    assert texts(agent)[-1] == "sent during the restart"
    assert seqs(agent) == list(range(1, agent.last_seq + 1))  # nothing missed, nothing twice
    await visitor.send(type="message", text="after restart", client_id="v2")
    await agent.until(lambda f: f.get("text") == "after restart")

    # The agent ends it; the visitor sees the end.
    await agent.send(type="end", chat=chat.pk)
    status = await visitor.until(lambda f: f["type"] == "chat.status")
    assert status["status"] == "ended"
    await visitor.close()
    await agent.close()


async def test_queue_position_updates_live_as_the_queue_moves(
    alice_agent, daphne_process, celery_worker_process
):
    """Two visitors wait; when the first is taken the second is told it is now number 1 — the
    update comes from the real Celery worker's debounced publication."""
    first, _, _ = await open_chat(daphne_process, alice_agent)
    _, v2, _ = await open_chat(daphne_process, alice_agent)
    await v2.connect(v2.url_for())
    hello = await v2.frame()
    assert hello["queue"]["position"] == 2
    await sync_to_async(services.take_chat)(chat_id=first.pk, agent=alice_agent)
    update = await v2.until(lambda f: f["type"] == "queue.position", timeout=10)
    assert update["position"] == 1
    assert update["text"].startswith("You are number 1 in line")
    await v2.close()
