"""A channel layer with one Redis pub/sub subscription per process and in-process fan-out.

channels-redis' `RedisChannelLayer` makes every `group_send` a Lua script that pushes one copy per
member channel into Redis lists, and every consumer pops its own copy back: a Redis round trip per
consumer per event, and past `capacity` copies are dropped without a word. Here:

- `group_send` is one `PUBLISH <namespace>g:<group>`; a process whose consumers follow no such
  group ignores it for the price of a dictionary look-up.
- Each process holds one pub/sub connection (one `PSUBSCRIBE <namespace>*`, made before the first
  `group_add` returns, so "join, then read the snapshot" leaves no gap), read by one thread that
  decodes each event once and hands it to the local members' in-process inboxes.
- Groups are local: a process knows which of its own channels follow which group, so there is no
  group bookkeeping in Redis and nothing to expire.
- Each inbox is bounded (`capacity`). Overrunning it never drops silently: the inbox is emptied and
  its next `receive` returns `{"type": "layer.overrun"}`, on which the consumer resyncs from the
  database by sequence number (chat.consumers). The same happens to every inbox when the Redis
  connection is lost and comes back, because events published meanwhile are gone.

Works across any number of daphne processes sharing one Redis; senders without consumers (Celery
workers, views) only publish. Redis pub/sub ignores the database number, so the namespace carries
it: two environments on different Redis databases do not hear each other.
"""

import asyncio
import collections
import contextlib
import json
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis
import redis.asyncio
from channels.layers import BaseChannelLayer

logger = logging.getLogger(__name__)

OVERRUN = "layer.overrun"


def encode(message: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(message)
    except TypeError:  # e.g. an int beyond 64 bits or a lone surrogate: the slow, lenient path
        return json.dumps(message).encode("utf-8", "surrogatepass")


def decode(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data.decode("utf-8", "surrogatepass"))


class _Inbox:
    __slots__ = ("items", "overrun", "waiter")

    def __init__(self) -> None:
        self.items: collections.deque[dict[str, Any]] = collections.deque()
        self.overrun = False
        self.waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None


def _wake(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


class FanoutChannelLayer(BaseChannelLayer):  # type: ignore[misc]
    extensions = ["groups", "flush"]

    def __init__(
        self,
        hosts: list[Any] | None = None,
        prefix: str = "tierline",
        capacity: int = 1000,
        expiry: int = 60,
        channel_capacity: Any = None,
        **_ignored: Any,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        host = (hosts or ["redis://127.0.0.1:6379/0"])[0]
        self.url: str = host["address"] if isinstance(host, dict) else host
        db = (urlsplit(self.url).path or "/0").strip("/") or "0"
        self.namespace = f"{prefix}:{db}:"
        self.client_prefix = uuid.uuid4().hex[:12]
        self._origin = self.client_prefix.encode() + b"|"
        self._lock = threading.Lock()
        self._inboxes: dict[str, _Inbox] = {}
        self._groups: dict[str, set[str]] = {}
        self._memberships: dict[str, set[str]] = {}
        self._pending_joins: dict[
            str, tuple[str, str, asyncio.AbstractEventLoop, asyncio.Future[None]]
        ] = {}
        self._barrier_key = f"{self.namespace}b:{self.client_prefix}"
        self._sync = redis.Redis.from_url(self.url)
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._subscriber: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopping = threading.Event()
        self.overruns = 0  # how many times an inbox was overrun (or lost to a Redis outage)
        self._overrun_seen = threading.Condition(self._lock)

    # --- Sending ----------------------------------------------------------------------------
    def _group_key(self, group: str) -> str:
        return f"{self.namespace}g:{group}"

    def _channel_key(self, channel: str) -> str:
        return f"{self.namespace}c:{channel}"

    def _client(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._async[loop] = redis.asyncio.Redis.from_url(self.url)
        return client

    def _wire(self, message: dict[str, Any]) -> bytes:
        """What goes through Redis: this process's tag, then the JSON (our own subscriber skips
        what we sent: local members got it at once)."""
        return self._origin + encode(message)

    def _deliver_to_group(self, group: str, message: dict[str, Any]) -> None:
        with self._lock:
            members = list(self._groups.get(group, ()))
        if members:
            self._deliver_local(members, message)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.require_valid_group_name(group)
        self._deliver_to_group(group, message)
        await self._client().publish(self._group_key(group), self._wire(message))

    def group_send_blocking(self, group: str, message: dict[str, Any]) -> None:
        """`group_send` for synchronous callers (worker threads, Celery): no event loop hop.
        This process's members have the event in their inboxes when it returns."""
        self._deliver_to_group(group, message)
        self._sync.publish(self._group_key(group), self._wire(message))

    def group_send_many_blocking(self, sends: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Several `group_send`s in one round trip, published in order."""
        pipe = self._sync.pipeline(transaction=False)
        for group, message in sends:
            self._deliver_to_group(group, message)
            pipe.publish(self._group_key(group), self._wire(message))
        pipe.execute()

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        self.require_valid_channel_name(channel)
        with self._lock:
            local = channel in self._inboxes
        if local:
            self._deliver_local([channel], message)
        else:
            await self._client().publish(self._channel_key(channel), self._wire(message))

    # --- Receiving --------------------------------------------------------------------------
    async def new_channel(self, prefix: str = "specific") -> str:
        return f"{prefix}.{self.client_prefix}!{uuid.uuid4().hex[:16]}"

    async def receive(self, channel: str) -> dict[str, Any]:
        self.require_valid_channel_name(channel)
        self._ensure_subscribed()
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                inbox = self._inboxes.get(channel)
                if inbox is None:
                    inbox = self._inboxes[channel] = _Inbox()
                if inbox.overrun:
                    inbox.overrun = False
                    return {"type": OVERRUN}
                if inbox.items:
                    return inbox.items.popleft()
                future: asyncio.Future[None] = loop.create_future()
                inbox.waiter = (loop, future)
            try:
                await future
            finally:
                with self._lock:
                    if inbox.waiter is not None and inbox.waiter[1] is future:
                        inbox.waiter = None
                    self._forget_if_idle(channel)

    async def group_add(self, group: str, channel: str) -> None:
        """Join at a point in Redis' order of events: a marker published now is routed by our
        subscriber after every event published before it, and the membership starts exactly
        there. So the channel gets every event published after the join began and none from
        before it (whose data a snapshot read after joining includes anyway)."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self._ensure_subscribed()
        token = uuid.uuid4().hex
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            if channel not in self._inboxes:
                self._inboxes[channel] = _Inbox()
            self._pending_joins[token] = (group, channel, asyncio.get_running_loop(), future)
        await self._client().publish(self._barrier_key, token)
        try:
            await asyncio.wait_for(future, timeout=5)
        except TimeoutError:
            # The subscription is down: join now; the reconnect marks every inbox overrun.
            with self._lock:
                if self._pending_joins.pop(token, None) is not None:
                    self._join(group, channel)

    def _join(self, group: str, channel: str) -> None:
        """Caller holds the lock."""
        self._groups.setdefault(group, set()).add(channel)
        self._memberships.setdefault(channel, set()).add(group)
        if channel not in self._inboxes:
            self._inboxes[channel] = _Inbox()

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        with self._lock:
            members = self._groups.get(group)
            if members is not None:
                members.discard(channel)
                if not members:
                    del self._groups[group]
            groups = self._memberships.get(channel)
            if groups is not None:
                groups.discard(group)
                if not groups:
                    del self._memberships[channel]
            self._forget_if_idle(channel)

    async def flush(self) -> None:
        with self._lock:
            self._inboxes.clear()
            self._groups.clear()
            self._memberships.clear()

    def _forget_if_idle(self, channel: str) -> None:
        """Drop an inbox nobody reads and no group feeds. Caller holds the lock."""
        inbox = self._inboxes.get(channel)
        if (
            inbox is not None
            and inbox.waiter is None
            and not inbox.items
            and not inbox.overrun
            and channel not in self._memberships
        ):
            del self._inboxes[channel]

    # --- Fan-out (subscriber thread) --------------------------------------------------------
    def _put(
        self,
        channel: str,
        message: dict[str, Any],
        wakeups: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]],
    ) -> None:
        """Caller holds the lock."""
        inbox = self._inboxes.get(channel)
        if inbox is None:
            return
        if inbox.overrun:
            pass  # the resync the consumer is about to do reads this event from the database
        elif len(inbox.items) >= self.get_capacity(channel):
            inbox.items.clear()
            inbox.overrun = True
            self.overruns += 1
            self._overrun_seen.notify_all()
            logger.warning("channel %s overran its buffer: the consumer resyncs", channel)
        else:
            inbox.items.append(message)
        if inbox.waiter is not None:
            loop, future = inbox.waiter
            inbox.waiter = None
            wakeups.setdefault(loop, []).append(future)

    @staticmethod
    def _wake_all(wakeups: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]]) -> None:
        for loop, futures in wakeups.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: its consumers are gone
                loop.call_soon_threadsafe(_wake, futures)

    def _deliver_local(self, channels: list[str], message: dict[str, Any]) -> None:
        wakeups: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        with self._lock:
            for channel in channels:
                self._put(channel, message, wakeups)
        self._wake_all(wakeups)

    def _mark_all_overrun(self) -> None:
        wakeups: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        with self._lock:
            for inbox in self._inboxes.values():
                inbox.items.clear()
                inbox.overrun = True
                self.overruns += 1
                self._overrun_seen.notify_all()
                if inbox.waiter is not None:
                    loop, future = inbox.waiter
                    inbox.waiter = None
                    wakeups.setdefault(loop, []).append(future)
        self._wake_all(wakeups)

    def _connect_pubsub(self) -> Any:
        pubsub = redis.Redis.from_url(self.url).pubsub()  # type: ignore[no-untyped-call]
        pubsub.psubscribe(f"{self.namespace}*")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait for Redis to confirm the subscription
            reply = pubsub.get_message(timeout=1.0)
            if reply is not None and reply["type"] == "psubscribe":
                return pubsub
        raise redis.ConnectionError("Redis did not confirm the subscription")

    def _ensure_subscribed(self) -> None:
        if self._subscriber is not None and self._subscriber.is_alive():
            return
        with self._start_lock:
            if self._subscriber is not None and self._subscriber.is_alive():
                return
            pubsub = self._connect_pubsub()  # once per process, before the first join returns
            self._subscriber = threading.Thread(
                target=self._run, args=(pubsub,), name="tierline-fanout", daemon=True
            )
            self._subscriber.start()

    def _run(self, pubsub: Any) -> None:
        group_prefix = f"{self.namespace}g:".encode()
        channel_prefix = f"{self.namespace}c:".encode()
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                if pubsub is None:
                    pubsub = self._connect_pubsub()
                    self._mark_all_overrun()  # events published while we were away are gone
                    backoff = 0.1
                reply = pubsub.get_message(timeout=1.0)
                wakeups: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
                while reply is not None:
                    if reply["type"] == "pmessage":
                        self._route(
                            reply["channel"], reply["data"], group_prefix, channel_prefix, wakeups
                        )
                    reply = pubsub.get_message(timeout=0)
                self._wake_all(wakeups)
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                logger.warning("fan-out lost its Redis subscription; reconnecting", exc_info=True)
                try:
                    if pubsub is not None:
                        pubsub.close()
                except Exception:  # noqa: S110 - already broken
                    pass
                pubsub = None
                self._mark_all_overrun()
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:
                logger.exception("fan-out failed to route an event")

    def _route(
        self,
        key: bytes,
        data: bytes,
        group_prefix: bytes,
        channel_prefix: bytes,
        wakeups: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]],
    ) -> None:
        if key.startswith(group_prefix):
            group = key[len(group_prefix) :].decode()
            with self._lock:
                members = list(self._groups.get(group, ()))
            if not members:
                return  # nobody here follows it: not even decoded
        elif key == self._barrier_key.encode():
            with self._lock:
                pending = self._pending_joins.pop(data.decode(), None)
                if pending is not None:
                    group, channel, loop, future = pending
                    self._join(group, channel)
                    wakeups.setdefault(loop, []).append(future)
            return
        elif key.startswith(channel_prefix):
            channel = key[len(channel_prefix) :].decode()
            with self._lock:
                members = [channel] if channel in self._inboxes else []
            if not members:
                return
        else:
            return
        if data.startswith(self._origin):
            return  # ours: delivered locally when it was sent
        message = decode(data.split(b"|", 1)[1])  # once, shared by the local members (read-only)
        with self._lock:
            for channel in members:
                self._put(channel, message, wakeups)

    def wait_for_overruns(self, count: int, timeout: float) -> bool:
        """Block until `overruns` reaches `count` (monitoring and tests); False on timeout."""
        with self._overrun_seen:
            return self._overrun_seen.wait_for(lambda: self.overruns >= count, timeout)

    async def close(self) -> None:
        self._stopping.set()
