"""The realtime load client: one asyncio process, the `websockets` library, N chats of two sockets.

Speaks two dialects:
- "tierline": the product's protocol (docs/protocol.md). The visitor socket sends `message`
  frames, the agent's console socket `message` frames with `chat`; every frame sent carries a
  `client_id` and the sender's monotonic clock in its text. Each socket checks the sequence
  numbers it receives (a `seq` at or below the last one is a duplicate, a jump is a gap), the
  sender's acknowledgement is its own message coming back (protocol 3) or an `ack` (protocol 2),
  the peer socket records the latency.
- "relay": the reference relays (bench/relays.py) forward each text frame to the other socket of
  the pair, nothing else; loss and duplicates are checked by the sender's counter.

Pure functions at the top (percentiles, sequence checking, phase summaries) are tested in
tests/test_bench.py.
"""

import asyncio
import contextlib
import math
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import websockets

# --- Analysis (pure) ---------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (p in 0..100); NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class SeqCheck:
    """Sequence numbers seen on one stream: duplicates (at or below the last) and gaps."""

    last: int = 0
    duplicates: int = 0
    gaps: int = 0

    def see(self, seq: int) -> bool:
        """True when `seq` is new (above the last); a jump past last+1 counts one gap."""
        if seq <= self.last:
            self.duplicates += 1
            return False
        if seq > self.last + 1:
            self.gaps += 1
        self.last = seq
        return True


@dataclass
class Summary:
    name: str
    seconds: float
    sent: int
    delivered: int
    acked: int
    lost: int
    duplicates: int
    errors: dict[str, int]
    p50: float
    p90: float
    p99: float
    max: float
    client_cpu: float  # share of one core used by this load client
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0

    def ok(self, p99_ms: float) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.p99 <= p99_ms


def summarize(
    name: str,
    seconds: float,
    sent_at: dict[str, int],
    delivered_at: dict[str, int],
    acked: set[str] | None,
    duplicates: int,
    errors: dict[str, int],
    client_cpu: float,
) -> Summary:
    """`sent_at`/`delivered_at`: client_id -> monotonic ns at send / at the peer's receipt.
    Lost = sent (and, with acks, acknowledged) but never delivered to the peer."""
    latencies = sorted(
        (delivered_at[cid] - sent) / 1e6 for cid, sent in sent_at.items() if cid in delivered_at
    )
    must_arrive = set(sent_at) if acked is None else set(sent_at) & acked
    lost = sum(1 for cid in must_arrive if cid not in delivered_at)
    return Summary(
        name=name,
        seconds=seconds,
        sent=len(sent_at),
        delivered=sum(1 for cid in sent_at if cid in delivered_at),
        acked=len(must_arrive) if acked is not None else len(sent_at),
        lost=lost,
        duplicates=duplicates,
        errors=dict(errors),
        p50=percentile(latencies, 50),
        p90=percentile(latencies, 90),
        p99=percentile(latencies, 99),
        max=latencies[-1] if latencies else math.nan,
        client_cpu=client_cpu,
    )


# --- The client ----------------------------------------------------------------------------------


@dataclass
class Pair:
    """One chat: visitor and agent sockets (or the two ends of a relay room)."""

    index: int
    chat_id: int
    visitor_url: str
    agent_url: str
    agent_cookie: str = ""
    visitor: Any = None
    agent: Any = None
    counter: int = 0
    checks: dict[str, SeqCheck] = field(default_factory=dict)
    window: asyncio.Semaphore | None = None
    dead: bool = False


class LoadClient:
    def __init__(self, dialect: str, pairs: list[Pair], origin: str, run_id: str) -> None:
        self.dialect, self.pairs, self.origin, self.run_id = dialect, pairs, origin, run_id
        self.sent_at: dict[str, int] = {}
        self.delivered_at: dict[str, int] = {}
        self.acked: set[str] = set()
        self.errors: dict[str, int] = {}
        self.duplicates = 0
        self.gaps = 0
        self.readers: list[asyncio.Task[None]] = []
        self.by_cid_pair: dict[str, Pair] = {}
        self.closed_unexpectedly = 0
        self.watchers: list[Any] = []  # callables(frame, role, pair) for the escalation bench

    # Connecting --------------------------------------------------------------------------------
    async def connect_all(self, concurrency: int = 20) -> float:
        started = time.monotonic()
        gate = asyncio.Semaphore(concurrency)

        async def one(pair: Pair) -> None:
            async with gate:
                pair.visitor = await self._open(pair.visitor_url, "")
                pair.agent = await self._open(pair.agent_url, pair.agent_cookie)
                await self._handshake(pair)
                self.readers.append(asyncio.create_task(self._read(pair, "visitor")))
                self.readers.append(asyncio.create_task(self._read(pair, "agent")))

        await asyncio.gather(*(one(p) for p in self.pairs))
        return time.monotonic() - started

    async def _open(self, url: str, cookie: str) -> Any:
        for attempt in range(3):  # as the pages do: a refused or dropped handshake is retried
            try:
                return await self._connect(url, cookie)
            except (OSError, websockets.InvalidHandshake, websockets.InvalidMessage):
                self.errors["connect retried"] = self.errors.get("connect retried", 0) + 1
                await asyncio.sleep(0.5 * (attempt + 1))
        return await self._connect(url, cookie)

    async def _connect(self, url: str, cookie: str) -> Any:
        headers = {"Cookie": cookie} if cookie else None
        return await websockets.connect(
            url,
            origin=self.origin,  # type: ignore[arg-type]
            additional_headers=headers,
            compression=None,
            max_queue=None,
            ping_interval=None,
            open_timeout=60,
        )

    async def _handshake(self, pair: Pair) -> None:
        """Tierline: read each socket's state up to its end (hello + replay.done / hello)."""
        if self.dialect != "tierline":
            return
        while True:
            frame = orjson.loads(await pair.visitor.recv())
            if frame["type"] == "hello":
                pair.checks["visitor"] = SeqCheck(last=frame["last_seq"])
            if frame["type"] == "replay.done":
                break
        frame = orjson.loads(await pair.agent.recv())
        assert frame["type"] == "hello", frame
        held = {c["chat"]: c["last_seq"] for c in frame["chats"]}
        assert pair.chat_id in held, f"agent socket does not hold chat {pair.chat_id}"
        pair.checks["agent"] = SeqCheck(last=held[pair.chat_id])

    async def close_all(self) -> None:
        for task in self.readers:
            task.cancel()
        for pair in self.pairs:
            for ws in (pair.visitor, pair.agent):
                if ws is not None:
                    with contextlib.suppress(Exception):
                        await ws.close()

    # Reading -----------------------------------------------------------------------------------
    async def _read(self, pair: Pair, role: str) -> None:
        ws = pair.visitor if role == "visitor" else pair.agent
        try:
            async for raw in ws:
                now = time.monotonic_ns()
                if self.dialect == "relay":
                    self._on_relay(raw, now)
                else:
                    self._on_frame(pair, role, orjson.loads(raw), now)
        except websockets.ConnectionClosed:
            self.closed_unexpectedly += 1
        except asyncio.CancelledError:
            raise

    def _delivered(self, cid: str, now: int) -> None:
        if cid in self.delivered_at:
            self.duplicates += 1
            return
        self.delivered_at[cid] = now
        pair = self.by_cid_pair.get(cid)
        if pair is not None and pair.window is not None:
            pair.window.release()

    def _on_relay(self, raw: str | bytes, now: int) -> None:
        frame = orjson.loads(raw)
        self._delivered(frame["client_id"], now)

    def _on_frame(self, pair: Pair, role: str, frame: dict[str, Any], now: int) -> None:
        kind = frame["type"]
        if kind == "message":
            check = pair.checks[role]
            if not check.see(frame["seq"]):
                return
            cid = frame.get("client_id") or ""
            # The sender's own stream brings its message back: stored, the acknowledgement in
            # protocol 3. Latency is taken at the peer.
            if cid.startswith(self.run_id):
                if cid.split(":")[2] == role[0]:
                    self.acked.add(cid)
                else:
                    self._delivered(cid, now)
        elif kind == "ack":
            self.acked.add(frame["client_id"])
        elif kind == "error":
            self.errors[frame["code"]] = self.errors.get(frame["code"], 0) + 1
        for watch in self.watchers:
            watch(frame, role, pair, now)

    # Sending -----------------------------------------------------------------------------------
    async def send(self, pair: Pair, role: str | None = None) -> str:
        pair.counter += 1
        role = role or ("visitor" if pair.counter % 2 else "agent")
        cid = f"{self.run_id}:{pair.index}:{role[0]}:{pair.counter}"
        now = time.monotonic_ns()
        text = f"{now} load {pair.counter}"
        if self.dialect == "relay":
            frame: dict[str, Any] = {"type": "message", "client_id": cid, "text": text}
        elif role == "visitor":
            frame = {"type": "message", "client_id": cid, "text": text}
        else:
            frame = {"type": "message", "chat": pair.chat_id, "client_id": cid, "text": text}
        ws = pair.visitor if role == "visitor" else pair.agent
        if pair.dead:
            return cid
        self.sent_at[cid] = now
        self.by_cid_pair[cid] = pair
        try:
            await ws.send(orjson.dumps(frame).decode())
        except websockets.ConnectionClosed:
            # The server closed this socket (the Channels reference does, past its limits): what
            # was sent on it and not delivered counts as lost; the pair sends no more.
            pair.dead = True
            self.errors["socket closed by server"] = (
                self.errors.get("socket closed by server", 0) + 1
            )
        return cid

    def reset(self) -> None:
        self.sent_at, self.delivered_at, self.acked = {}, {}, set()
        self.errors, self.duplicates = {}, 0
        self.by_cid_pair = {}
        for pair in self.pairs:
            pair.window = None
            for check in pair.checks.values():
                self.gaps += check.gaps
                check.duplicates = check.gaps = 0

    def outstanding(self) -> int:
        return sum(1 for cid in self.sent_at if cid not in self.delivered_at)

    async def settle(self, timeout: float) -> None:
        """Until every message sent so far is delivered (and acked), or `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = self.outstanding()
            if self.dialect == "tierline":
                pending += sum(1 for cid in self.sent_at if cid not in self.acked) - sum(
                    self.errors.values()
                )
            if pending <= 0:
                return
            await asyncio.sleep(0.05)

    async def fixed_rate(self, rate: float, seconds: float, settle: float = 5.0) -> Summary:
        """Open loop: `rate` messages a second over all pairs, round robin."""
        self.reset()
        cpu0 = _cpu_seconds()
        started = time.monotonic()
        count = 0
        index = 0
        while True:
            elapsed = time.monotonic() - started
            if elapsed >= seconds:
                break
            due = int(rate * elapsed) - count
            for _ in range(due):
                await self.send(self.pairs[index % len(self.pairs)])
                index += 1
                count += 1
            await asyncio.sleep(0.002)
        send_seconds = time.monotonic() - started
        await self.settle(settle)
        return self._summary(f"{rate:.0f}/s", send_seconds, cpu0, started)

    async def saturate(self, seconds: float, window: int = 2) -> Summary:
        """Closed loop: each pair keeps `window` messages in flight; as fast as they come back."""
        self.reset()
        cpu0 = _cpu_seconds()
        started = time.monotonic()
        stop = started + seconds

        async def drive(pair: Pair) -> None:
            pair.window = asyncio.Semaphore(window)
            while time.monotonic() < stop:
                try:
                    await asyncio.wait_for(
                        pair.window.acquire(), timeout=max(0.01, stop - time.monotonic())
                    )
                except TimeoutError:
                    return
                if time.monotonic() >= stop or pair.dead:
                    return
                await self.send(pair)

        await asyncio.gather(*(drive(p) for p in self.pairs))
        send_seconds = time.monotonic() - started
        # Throughput counts what arrived within the window; then let the rest drain.
        in_time = sum(1 for t in self.delivered_at.values() if t <= started * 1e9 + seconds * 1e9)
        await self.settle(10.0)
        summary = self._summary("saturation", send_seconds, cpu0, started)
        summary.extra["delivered_in_window"] = in_time
        summary.delivered = in_time
        return summary

    def _summary(self, name: str, seconds: float, cpu0: float, started: float) -> Summary:
        cpu = (_cpu_seconds() - cpu0) / max(1e-9, time.monotonic() - started)
        duplicates = self.duplicates + sum(
            c.duplicates for p in self.pairs for c in p.checks.values()
        )
        summary = summarize(
            name,
            seconds,
            self.sent_at,
            self.delivered_at,
            self.acked if self.dialect == "tierline" else None,
            duplicates,
            self.errors,
            cpu,
        )
        summary.extra["gaps"] = sum(c.gaps for p in self.pairs for c in p.checks.values())
        summary.extra["closed"] = self.closed_unexpectedly
        return summary


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
