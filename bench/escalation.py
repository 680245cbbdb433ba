"""Escalation benchmark: escalations at a steady rate under the realtime load, and wait-timeout
precision.

    .venv/bin/python -m bench.escalation          # 2,000 chats, 200 escalations, 1,000 timers
    .venv/bin/python -m bench.escalation --quick  # 200 chats, 30 escalations, 100 timers

Starts daphne, a Celery worker and beat on the bench database (bench/common.py), opens the load
chats (visitor + agent socket each) and drives them at --load-rate messages/s; meanwhile agents
holding separate chats type `/escalate l2` at --rate a second. For each escalation it times,
from the moment the command frame is sent:
  (a) the visitor's socket receiving the transfer notice (`message` with event "transfer");
  (b) a socket of an agent serving the target stage receiving the `queue.item.added` delta (or a
      `queue` list) with the chat.
Timers: --timers chats are started (by a child process, so the load client is not disturbed) at a
stage with a --timer-wait seconds wait-timeout and nobody serving it; each timeout records when
it ran against its deadline (flow event `timed_out`, `late_ms`), reported as p50/p99/max.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from typing import Any
from urllib.parse import quote

import orjson
import websockets

from bench import common
from bench.loadgen import LoadClient, percentile
from bench.realtime import (
    Tierline,
    profile_path,
    raise_fd_limit,
    start_profiler,
    summarize_profile,
)

TIMER_TOPIC = "Bench Timers"


def prepare_escalations(count: int, l2_agents: int) -> dict[str, Any]:
    """Chats held by their own L1 agents, ready to escalate; L2 agents to watch the target queue.
    Chats left waiting at L2 by an earlier run are ended first. Each escalated chat is ended by its
    visitor once an agent's console has listed it, so the target queue stays short."""
    from escalation import services
    from escalation.models import QueueEntry

    config = common.bench_config()
    for entry in QueueEntry.objects.filter(stage=config["s2"], left_at__isnull=True):
        services.end_chat_by_visitor(chat_id=entry.chat_id)
    chats = common.bench_chats(count, prefix="esc")
    watchers = []
    for i in range(l2_agents):
        agent = common.make_agent(f"bench-l2-{i}", config["g2"])
        watchers.append(common.session_cookie(agent.user))
    return {"chats": chats, "watchers": watchers, "stage": config["s2"].pk}


def make_timer_chats(count: int, wait: int) -> None:
    """Child process: `count` chats waiting where nobody serves, each timing out after `wait` s."""
    from escalation import services
    from escalation.models import AgentGroup, FallbackAction, Pipeline, RoutingPolicy, Stage, Topic

    config = common.bench_config()
    nobody, _ = AgentGroup.objects.get_or_create(
        name="Bench nobody",
        defaults={"tier": config["t1"], "routing_policy": RoutingPolicy.MANUAL},
    )
    pipeline, _ = Pipeline.objects.get_or_create(name=TIMER_TOPIC)
    stage, _ = Stage.objects.get_or_create(
        pipeline=pipeline, name=TIMER_TOPIC, defaults={"tier": config["t1"]}
    )
    stage.wait_timeout_seconds = wait
    stage.fallback_action = FallbackAction.END
    stage.no_agent_rule = Stage.NoAgentRule.QUEUE
    stage.save()
    stage.groups.set([nobody])
    pipeline.entry_stage = stage
    pipeline.save()
    Topic.objects.get_or_create(name=TIMER_TOPIC, defaults={"pipeline": pipeline})
    for i in range(count):
        services.start_chat(
            visitor_name=f"Timer {i}",
            visitor_email="",
            topic_name=TIMER_TOPIC,
            first_message="waiting",
            visitor_context={},
        )
    print(f"made {count} timer chats", flush=True)


def timer_lateness(since: float) -> list[float]:
    from datetime import UTC, datetime

    from chat.models import FlowEvent

    rows = FlowEvent.objects.filter(
        kind=FlowEvent.Kind.TIMED_OUT,
        chat__topic=TIMER_TOPIC,
        chat__created_at__gte=datetime.fromtimestamp(since, tz=UTC),
    ).values_list("data", flat=True)
    return sorted(float(d["late_ms"]) for d in rows)


def timers_pending(since: float) -> int:
    from datetime import UTC, datetime

    from escalation.models import QueueEntry

    return QueueEntry.objects.filter(
        chat__topic=TIMER_TOPIC,
        left_at__isnull=True,
        chat__created_at__gte=datetime.fromtimestamp(since, tz=UTC),
    ).count()


class EscalationDriver:
    def __init__(self, server_port: int, setup: dict[str, Any]) -> None:
        self.base = f"ws://127.0.0.1:{server_port}"
        self.origin = f"http://127.0.0.1:{server_port}"
        self.setup = setup
        self.sent: dict[int, int] = {}
        self.notice: dict[int, int] = {}
        self.queued: dict[int, int] = {}
        self.escalated: dict[int, int] = {}
        self.errors: list[dict[str, Any]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.sockets: list[Any] = []

    async def _open(self, url: str, cookie: str = "") -> Any:
        ws = await websockets.connect(
            url,
            origin=self.origin,
            additional_headers={"Cookie": cookie} if cookie else None,  # type: ignore[arg-type]
            compression=None,
            max_queue=None,
            ping_interval=None,
            open_timeout=60,
        )
        self.sockets.append(ws)
        return ws

    async def connect(self) -> None:
        self.agents: dict[int, Any] = {}
        self.visitors: dict[int, Any] = {}
        for chat in self.setup["chats"]:
            visitor = await self._open(
                f"{self.base}/ws/chat/{chat.chat_id}/?token={quote(chat.token)}&since={2**62}"
            )
            self.visitors[chat.chat_id] = visitor
            self.tasks.append(asyncio.create_task(self._read_visitor(visitor, chat.chat_id)))
            agent = await self._open(f"{self.base}/ws/console/", chat.cookie)
            self.agents[chat.chat_id] = agent
            self.tasks.append(asyncio.create_task(self._read_agent(agent)))
        for cookie in self.setup["watchers"]:
            watcher = await self._open(f"{self.base}/ws/console/", cookie)
            self.tasks.append(asyncio.create_task(self._read_watcher(watcher)))

    async def _read_visitor(self, ws: Any, chat_id: int) -> None:
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame.get("event") == "transfer" and chat_id not in self.notice:
                self.notice[chat_id] = time.monotonic_ns()

    async def _read_agent(self, ws: Any) -> None:
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame["type"] == "escalated":
                self.escalated[frame["chat"]] = time.monotonic_ns()
            elif frame["type"] == "error":
                self.errors.append(frame)

    async def _read_watcher(self, ws: Any) -> None:
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame["type"] in ("queue.item.added", "queue", "hello"):
                now = time.monotonic_ns()
                if frame["type"] == "queue.item.added":
                    items = [frame["item"]]
                else:
                    items = frame["items"] if frame["type"] == "queue" else frame["queue"]
                for item in items:
                    if item["chat"] in self.sent and item["chat"] not in self.queued:
                        self.queued[item["chat"]] = now
                        # Measured: the visitor leaves, so that the queue the agents' consoles
                        # list stays as short as in a served queue.
                        await self.visitors[item["chat"]].send('{"type": "end"}')

    async def run(self, rate: float) -> None:
        chats = [c.chat_id for c in self.setup["chats"]]
        started = time.monotonic()
        for n, chat_id in enumerate(chats):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            self.sent[chat_id] = time.monotonic_ns()
            await self.agents[chat_id].send(
                orjson.dumps(
                    {
                        "type": "message",
                        "chat": chat_id,
                        "text": "/escalate l2 bench hand-over",
                        "client_id": uuid.uuid4().hex[:12],
                    }
                ).decode()
            )

    async def settle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.notice) >= len(self.sent) and len(self.queued) >= len(self.sent):
                return
            await asyncio.sleep(0.05)

    def latencies(self, got: dict[int, int]) -> list[float]:
        return sorted((got[c] - t) / 1e6 for c, t in self.sent.items() if c in got)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for ws in self.sockets:
            await ws.close()


def line(name: str, values: list[float], expected: int) -> str:
    if not values:
        return f"  {name}: nothing measured ({expected} expected)"
    return (
        f"  {name}: {len(values)}/{expected} p50 {percentile(values, 50):.1f} "
        f"p99 {percentile(values, 99):.1f} max {values[-1]:.1f} ms"
    )


async def main_async(args: argparse.Namespace) -> None:
    load_chats = await asyncio.to_thread(common.bench_chats, args.chats)
    setup = await asyncio.to_thread(prepare_escalations, args.escalations, args.l2_agents)
    os.environ["VISITOR_GONE_SECONDS"] = "3600"  # the timer chats have no visitor socket
    system = Tierline(load_chats)
    system.start()
    beat = common.celery_beat().start()
    try:
        print(f"load average before: {common.loadavg()}", flush=True)
        client = LoadClient(
            "tierline", system.pairs(), f"http://127.0.0.1:{system.port}", uuid.uuid4().hex[:8]
        )
        await client.connect_all()
        driver = EscalationDriver(system.port, setup)
        await driver.connect()
        print(
            f"{2 * args.chats} load sockets, {len(driver.sockets)} escalation sockets open",
            flush=True,
        )

        duration = args.escalations / args.rate + 5
        load = asyncio.create_task(client.fixed_rate(args.load_rate, duration))
        await asyncio.sleep(2)  # the load is running
        meter = common.CpuMeter(system.cpu_groups())
        profiler = start_profiler(system, args.escalations / args.rate) if args.profile else None
        await driver.run(args.rate)
        await driver.settle(15)
        cpu = meter.read()
        summary = await load

        print(
            f"\nEscalations: {len(driver.sent)} at {args.rate}/s under {args.load_rate:.0f} msg/s "
            f"over {2 * args.chats} sockets (load delivered {summary.rate:.0f} msg/s, p99 "
            f"{summary.p99:.1f} ms, lost {summary.lost}); server cpu {cpu['server']:.2f}, "
            f"machine {cpu['machine']:.2f}; load {common.loadavg()}"
        )
        print(
            line(
                "(a) /escalate -> visitor's transfer notice",
                driver.latencies(driver.notice),
                len(driver.sent),
            )
        )
        print(
            line(
                "(b) /escalate -> target queue on an agent socket",
                driver.latencies(driver.queued),
                len(driver.sent),
            )
        )
        print(
            line(
                "    /escalate -> escalating agent's `escalated`",
                driver.latencies(driver.escalated),
                len(driver.sent),
            )
        )
        if driver.errors:
            print(f"  errors: {driver.errors[:3]}")
        if profiler is not None:
            await asyncio.to_thread(profiler.wait, 60)
            print(f"  profile (self time): {summarize_profile(profile_path(system), 12)}")

        # Timers, after the escalations (a thousand waiting visitors are a load of their own:
        # their places are recomputed and published every second), under the same message load.
        since = time.time() - 1
        maker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.escalation",
                "--make-timers",
                str(args.timers),
                "--timer-wait",
                str(args.timer_wait),
            ],
            cwd=common.ROOT,
            env=common.server_env(),
        )
        load = asyncio.create_task(client.fixed_rate(args.load_rate, 3600))
        await asyncio.to_thread(maker.wait)
        deadline = time.monotonic() + args.timer_wait + 60
        while time.monotonic() < deadline and await asyncio.to_thread(timers_pending, since):
            await asyncio.sleep(0.5)
        load.cancel()
        late = await asyncio.to_thread(timer_lateness, since)
        print(line(f"Timers ({args.timer_wait} s wait): fire time - deadline", late, args.timers))
        print(f"  (under {args.load_rate:.0f} msg/s; load {common.loadavg()})")
        await driver.close()
        await client.close_all()
    finally:
        beat.stop()
        system.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--chats", type=int)
    parser.add_argument("--load-rate", type=float)
    parser.add_argument("--escalations", type=int)
    parser.add_argument("--rate", type=float, default=5.0, help="escalations a second")
    parser.add_argument("--l2-agents", type=int, default=3)
    parser.add_argument("--timers", type=int)
    parser.add_argument("--timer-wait", type=int)
    parser.add_argument("--profile", action="store_true", help="py-spy daphne meanwhile")
    parser.add_argument("--make-timers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_timers is not None:
        common.setup_django()
        make_timer_chats(args.make_timers, args.timer_wait)
        return
    quick = args.quick
    args.chats = args.chats or (200 if quick else 2000)
    args.load_rate = args.load_rate or (500.0 if quick else 1000.0)
    args.escalations = args.escalations or (30 if quick else 200)
    args.timers = args.timers or (100 if quick else 1000)
    args.timer_wait = args.timer_wait or (10 if quick else 30)
    raise_fd_limit()
    common.setup_django()
    common.flush_bench_redis()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
