"""Clients for the fault and scale-out tests, behaving as the shipped pages do (docs/protocol.md,
"Client behaviour"): reconnect with exponential backoff and jitter, resume from the last sequence
number seen, keep every unacknowledged message and send it again (same client_id) after a
reconnect, drop what was already seen, ask for a gap.

Chats are started through the real visitor page over HTTP, so that everything the start does
(queue, timer task, events) happens in the server under test, on its Redis."""

import asyncio
import contextlib
import http.cookiejar
import itertools
import json
import random
import re
import urllib.parse
import urllib.request
from typing import Any

import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client

_ids = itertools.count(1)


def start_chat_over_http(
    base_url: str, *, name: str = "Carol", topic: str = "Billing", message: str = "Hello?"
) -> tuple[int, str]:
    """Fill in the visitor's start form on `base_url`; return (chat id, visitor token)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base_url + "/chat/", timeout=20).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert csrf, page
    form = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": csrf.group(1),
            "name": name,
            "email": "",
            "topic": topic,
            "message": message,
            "page": "/pricing",
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - a local test server
        base_url + "/chat/", data=form, headers={"Referer": base_url + "/chat/"}
    )
    opener.open(request, timeout=20).read()
    cookie = next(c for c in jar if c.name == "tierline_chat")
    chat_id, token = urllib.parse.unquote(cookie.value).strip('"').split(":", 1)
    return int(chat_id), token


async def session_cookie(user: Any) -> str:
    client = Client()
    await sync_to_async(client.force_login)(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class ReliablePeer:
    """One side of one chat. `start()` runs the connection loop in the background."""

    def __init__(
        self,
        *,
        chat_id: int,
        ws_urls: list[str],
        visitor_token: str | None = None,
        cookie: str | None = None,
        max_backoff: float = 2.0,
        label: str = "",
    ) -> None:
        self.chat_id = chat_id
        self.ws_urls = ws_urls  # tried in turn, as a load balancer would spread reconnects
        self.token, self.cookie = visitor_token, cookie
        self.is_visitor = visitor_token is not None
        self.max_backoff = max_backoff
        self.label = label or ("visitor" if self.is_visitor else "agent")
        self.last_seq = 0
        self.messages: list[dict[str, Any]] = []
        self.frames: list[dict[str, Any]] = []
        self.pending: dict[str, dict[str, Any]] = {}  # client_id -> frame, until acknowledged
        self.errors: list[dict[str, Any]] = []
        self.connects = 0
        self.close_codes: list[int | None] = []
        self.failures: list[str] = []  # why each connection ended or could not open
        self.ws: Any = None
        self.changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._url_index = 0

    # --- connection loop ---------------------------------------------------------------------
    def url(self) -> str:
        base = self.ws_urls[self._url_index % len(self.ws_urls)]
        if self.is_visitor:
            token = urllib.parse.quote(self.token or "")
            return f"{base}/ws/chat/{self.chat_id}/?token={token}&since={self.last_seq}"
        return f"{base}/ws/console/"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self.ws is not None:
            await self.ws.close()
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            origin = self.ws_urls[self._url_index % len(self.ws_urls)].replace("ws://", "http://")
            try:
                headers = {"Cookie": self.cookie} if self.cookie else None
                async with websockets.connect(
                    self.url(), origin=origin, additional_headers=headers, open_timeout=10
                ) as ws:
                    self.ws = ws
                    attempt = 0
                    self.connects += 1
                    await self._on_open()
                    async for raw in ws:
                        await self._on_frame(json.loads(raw))
                    self.close_codes.append(ws.close_code)
            except (OSError, websockets.exceptions.WebSocketException, TimeoutError) as exc:
                code = getattr(getattr(exc, "rcvd", None), "code", None)
                self.failures.append(f"{type(exc).__name__}: {exc}"[:160])
                self.close_codes.append(code)
                if code in (4403, 4429):
                    raise
            finally:
                self.ws = None
                await self._notify()
            if self._stopping:
                return
            # Exponential backoff with jitter (0.1 s doubling, capped), like socket.js.
            attempt += 1
            ceiling = min(self.max_backoff, 0.1 * 2 ** min(attempt, 6))
            await asyncio.sleep(ceiling / 2 + random.random() * ceiling / 2)
            self._url_index += 1

    async def _on_open(self) -> None:
        if not self.is_visitor:
            await self._send({"type": "subscribe", "chat": self.chat_id, "since": self.last_seq})
        for frame in list(self.pending.values()):
            await self._send(frame)

    async def _send(self, frame: dict[str, Any]) -> None:
        ws = self.ws
        if ws is None:
            return
        # A message stays in `pending` and is sent again after the reconnect.
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            await ws.send(json.dumps(frame))

    async def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        self.frames.append(frame)
        if kind == "message" and frame["chat"] == self.chat_id:
            if frame["seq"] == self.last_seq + 1:
                self.messages.append(frame)
                self.last_seq = frame["seq"]
            elif frame["seq"] > self.last_seq + 1:  # a gap: ask for what is missing
                await self._resume()
        elif kind == "ack":
            self.pending.pop(frame.get("client_id") or "", None)
        elif kind == "replay.done" and frame["chat"] == self.chat_id and frame["more"]:
            await self._resume()
        elif kind == "error":
            self.errors.append(frame)
        await self._notify()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def _resume(self) -> None:
        frame: dict[str, Any] = {"type": "resume", "since": self.last_seq}
        if not self.is_visitor:
            frame["chat"] = self.chat_id
        await self._send(frame)

    # --- what a test does ----------------------------------------------------------------------
    async def send_message(self, text: str) -> str:
        client_id = f"{self.label}-{next(_ids)}"
        frame: dict[str, Any] = {"type": "message", "text": text, "client_id": client_id}
        if not self.is_visitor:
            frame["chat"] = self.chat_id
        self.pending[client_id] = frame
        await self._send(frame)
        return client_id

    async def send(self, **frame: Any) -> None:
        await self._send(frame)

    async def wait_for(self, predicate: Any, timeout: float = 30) -> None:
        """Until `predicate()` holds. Raises what ended the connection loop if it died (a refused
        socket, a bug in a frame handler), and says what the peer had when the time ran out."""

        def done() -> bool:
            return bool(predicate()) or (self._task is not None and self._task.done())

        async def wait() -> None:
            async with self.changed:
                await self.changed.wait_for(done)

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{self.label}: still waiting after {timeout} s; {self.state()}"
            ) from None
        if not predicate() and self._task is not None and self._task.done():
            self._task.result()  # raises what ended the loop
            raise RuntimeError(f"{self.label}: the connection loop ended; {self.state()}")

    def state(self) -> str:
        return (
            f"connects={self.connects}, connected={self.ws is not None}, last_seq={self.last_seq}, "
            f"pending={len(self.pending)}, close codes={self.close_codes[-5:]}, "
            f"errors={[e.get('code') for e in self.errors[-5:]]}, "
            f"last frames={[f.get('type') for f in self.frames[-5:]]}, "
            f"failures={self.failures[-3:]}"
        )

    async def wait_connected(self, timeout: float = 30) -> None:
        await self.wait_for(lambda: self.ws is not None and self.frames, timeout)

    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages]

    def seqs(self) -> list[int]:
        return [m["seq"] for m in self.messages]
