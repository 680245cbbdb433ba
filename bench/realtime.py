"""Realtime benchmark: Tierline on its real services against two reference relays, same machine,
same run, same load client.

    .venv/bin/python -m bench.realtime            # N = 200 and 2,000 chats (about 10 minutes)
    .venv/bin/python -m bench.realtime --quick    # N = 200, short phases (about 1 minute)

For each N (chats; two sockets each) and each system - a bare `websockets` relay (the ceiling), a
bare Channels + channels-redis relay on daphne (a typical Django chat), Tierline (daphne + Celery
worker + PostgreSQL + Redis, every message stored) - it opens the sockets, drives messages at a
ladder of fixed rates (stopping at the first rate a system cannot hold at p99 <= 50 ms without
loss), then to saturation (each chat keeps two messages in flight), and prints delivered
messages/s, latency percentiles (sender's clock at send -> peer socket's receipt), lost and
duplicated messages, server CPU (1.0 = one core) and RSS per 1,000 sockets, and Tierline's ratios
to both references. For Tierline, "lost" counts acknowledged messages the peer never got, and
every acknowledged message is checked in PostgreSQL afterwards.

Uses its own database (BENCH_DATABASE_URL, default tierline_bench_rt) and Redis database
(BENCH_REDIS_URL, default db 11, flushed at the start). Results also go to var/bench-realtime.json.
"""

import argparse
import asyncio
import json
import resource
import sys
import time
import uuid
from dataclasses import asdict
from typing import Any

from bench import common
from bench.loadgen import LoadClient, Pair, Summary

P99_MS = 50.0
AGREE = 0.15  # two runs of a phase agree within this share (see `agree`)


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class System:
    """A server under test: starts its processes, builds the pairs, knows its pids."""

    name = ""
    dialect = "relay"

    def __init__(self, chats: list[common.BenchChat]) -> None:
        self.chats = chats
        self.port = common.free_port()
        self.processes: list[common.Process] = []

    def start(self) -> None:
        raise NotImplementedError

    def server_pid(self) -> int:
        return self.processes[0].pid

    def server_rss_mb(self) -> float:
        return common.tree_rss_mb(self.server_pid())

    def pairs(self) -> list[Pair]:
        base = f"ws://127.0.0.1:{self.port}/room"
        return [
            Pair(i, i, f"{base}/{i}/visitor", f"{base}/{i}/agent") for i in range(len(self.chats))
        ]

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def cpu_groups(self) -> dict[str, list[int]]:
        return {
            "server": common.process_tree(self.server_pid()),
            "postgres": common.pids_named("postgres"),
            "redis": common.pids_named("redis-server"),
        }


class WebsocketsRelay(System):
    name = "websockets relay"

    def start(self) -> None:
        proc = common.Process(
            "relay-websockets",
            [sys.executable, "-m", "bench.relays", "--port", str(self.port)],
            common.server_env(),
        ).start()
        self.processes.append(proc)
        common.wait_port(self.port, proc)


class ChannelsRelay(System):
    name = "Channels relay"

    def start(self) -> None:
        proc = common.Process(
            "relay-channels",
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "bench.channels_relay:application",
            ],
            common.server_env(),
        ).start()
        self.processes.append(proc)
        common.wait_port(self.port, proc)


class Tierline(System):
    """The product: its server process(es) (`servers`), then a Celery worker, all with the
    settings module `settings`."""

    name = "Tierline"
    dialect = "tierline"
    protocol = 3  # the sender's own message is its acknowledgement: 1 frame in, 2 out
    settings = "helpdesk.settings"

    def servers(self) -> list[common.Process]:
        return [common.daphne(self.port, DJANGO_SETTINGS_MODULE=self.settings)]

    def start(self) -> None:
        servers = self.servers()
        for server in servers:
            self.processes.append(server.start())
        common.wait_http(f"http://127.0.0.1:{self.port}/healthz", self.processes[0])
        self.processes.append(common.celery_worker(DJANGO_SETTINGS_MODULE=self.settings).start())
        self.server_count = len(servers)

    def server_pids(self) -> list[int]:
        return [p.pid for p in self.processes[: self.server_count]]

    def server_rss_mb(self) -> float:
        return sum(common.tree_rss_mb(pid) for pid in self.server_pids())

    def cpu_groups(self) -> dict[str, list[int]]:
        return super().cpu_groups() | {
            "server": [p for pid in self.server_pids() for p in common.process_tree(pid)],
            "celery": common.process_tree(self.processes[-1].pid),
        }

    def pairs(self) -> list[Pair]:
        base = f"ws://127.0.0.1:{self.port}"
        return [
            Pair(
                i,
                c.chat_id,
                f"{base}/ws/chat/{c.chat_id}/?token={c.token}&since={2**62}&v={self.protocol}",
                f"{base}/ws/console/?v={self.protocol}",
                agent_cookie=c.cookie,
            )
            for i, c in enumerate(self.chats)
        ]


class TierlineUvicorn(Tierline):
    """The same application and services, served by uvicorn instead of daphne."""

    name = "Tierline uvicorn"

    def servers(self) -> list[common.Process]:
        return [common.uvicorn(self.port)]


class TierlineGranian(Tierline):
    name = "Tierline granian"

    def servers(self) -> list[common.Process]:
        return [common.granian(self.port)]


class TierlinePubSub(Tierline):
    """The same application on channels-redis's RedisPubSubChannelLayer (bench/pubsub_layer.py)
    instead of the hand-written fan-out layer."""

    name = "Tierline pubsub"
    settings = "bench.pubsub_settings"


class TierlineTwoProcesses(Tierline):
    """Two daphne processes on one port: a listening socket bound here and handed down to both
    (`daphne --fd`), as a supervisor does; the kernel spreads the connections, so a chat's
    visitor and agent are often on different processes and every event crosses Redis."""

    name = "Tierline 2 daphne"

    def servers(self) -> list[common.Process]:
        self.socket = common.listening_socket(self.port)
        return [common.daphne_on_socket(self.socket, f"daphne-{n}") for n in (1, 2)]

    def stop(self) -> None:
        super().stop()
        self.socket.close()


class TierlineProtocol2(Tierline):
    """As pages loaded before protocol 3: `ack` and then the message (1 frame in, 3 out)."""

    name = "Tierline v2"
    protocol = 2


def check_persisted(first_id: int, acked: set[str]) -> dict[str, int]:
    """Every acknowledged message is in PostgreSQL exactly once."""
    from chat.models import Message

    stored = (
        list(
            Message.objects.filter(id__gt=first_id, client_id__in=acked).values_list(
                "client_id", flat=True
            )
        )
        if acked
        else []
    )
    return {"acked": len(acked), "stored": len(set(stored)), "stored_rows": len(stored)}


def last_message_id() -> int:
    from chat.models import Message

    return Message.objects.order_by("-id").values_list("id", flat=True).first() or 0


def profile_path(system: System) -> Any:
    return common.LOGS / f"profile-{system.name.replace(' ', '-')}-{len(system.chats)}.txt"


def start_profiler(system: System, seconds: float) -> Any:
    """py-spy on the server process for the saturation phase (collapsed stacks, all threads)."""
    import shutil
    import subprocess

    spy = shutil.which("py-spy") or str(common.ROOT / ".venv" / "bin" / "py-spy")
    return subprocess.Popen(
        [
            spy,
            "record",
            "-p",
            str(system.server_pid()),
            "-d",
            str(int(seconds)),
            "-r",
            "200",
            "-f",
            "raw",
            "--nonblocking",
            "-t",
            "-o",
            str(profile_path(system)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarize_profile(path: Any, top: int = 25) -> list[tuple[str, float]]:
    """Share of samples by function (self time), from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    total = 0
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frame = stack.split(";")[-1]
        own[frame] = own.get(frame, 0) + int(count)
        total += int(count)
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:top]
    return [(name, round(100 * n / max(1, total), 1)) for name, n in ranked]


def agree(a: Summary, b: Summary, *, saturation: bool) -> bool:
    """Whether two runs of one phase tell the same story. Saturation: delivered rates within
    15 % of the larger. A fixed rate: the same verdict (held at p99 <= 50 ms with nothing lost,
    or not) and p99s within 15 % of the larger, or within 2 ms (timer noise at a few ms)."""
    if saturation:
        high = max(a.rate, b.rate)
        return high == 0 or abs(a.rate - b.rate) <= AGREE * high
    if a.ok(P99_MS) != b.ok(P99_MS):
        return False
    return abs(a.p99 - b.p99) <= max(AGREE * max(a.p99, b.p99), 2.0)


async def one_phase(
    client: LoadClient,
    system: System,
    kind: str,
    rate: float,
    seconds: float,
    saturation: float,
    profile: bool,
) -> Summary:
    client.run_id = uuid.uuid4().hex[:8]
    first_id = await asyncio.to_thread(last_message_id) if system.dialect == "tierline" else 0
    meter = common.CpuMeter(system.cpu_groups())
    if kind == "rate":
        summary = await client.fixed_rate(rate, seconds)
    else:
        profiler = start_profiler(system, saturation) if profile else None
        summary = await client.saturate(saturation)
        if profiler is not None:
            await asyncio.to_thread(profiler.wait, 60)
            summary.extra["profile"] = summarize_profile(profile_path(system))
    cpu = {k: round(v, 2) for k, v in meter.read().items()}
    # What else ran on the machine meanwhile (1.0 = one core): not this system, not the client.
    measured = sum(v for k, v in cpu.items() if k != "machine") + summary.client_cpu
    cpu["others"] = round(max(0.0, cpu["machine"] - measured), 2)
    summary.extra["cpu"] = cpu
    summary.extra["loadavg"] = common.loadavg()
    if system.dialect == "tierline":
        summary.extra["persisted"] = await asyncio.to_thread(
            check_persisted, first_id, set(client.acked)
        )
    return summary


async def agreed_phase(
    client: LoadClient,
    system: System,
    kind: str,
    rate: float,
    *,
    seconds: float,
    saturation: float,
    profile: bool,
    repeats: int,
) -> list[Summary]:
    """Run a phase until two runs in a row agree (at most `repeats` runs; 1: once). The last
    run is the phase's result; its `agreed` says after how many runs, or that none agreed."""
    runs: list[Summary] = []
    while True:
        summary = await one_phase(client, system, kind, rate, seconds, saturation, profile)
        runs.append(summary)
        print_phase(system.name, 2 * len(client.pairs), summary)
        if repeats <= 1:
            return runs
        if len(runs) >= 2 and agree(runs[-2], runs[-1], saturation=kind == "saturation"):
            summary.extra["agreed"] = f"after {len(runs)} runs"
            return runs
        if len(runs) >= repeats:
            summary.extra["agreed"] = f"no: {len(runs)} runs disagreed"
            print(f"    {system.name}: {len(runs)} runs of {summary.name} did not agree")
            return runs
        await client.settle(30)


async def run_system(
    system: System,
    rates: list[float],
    seconds: float,
    saturation: float,
    profile: bool = False,
    *,
    warmup: float = 0.0,
    repeats: int = 1,
) -> dict[str, Any]:
    system.start()
    try:
        rss0 = system.server_rss_mb()
        client = LoadClient(system.dialect, system.pairs(), f"http://127.0.0.1:{system.port}", "r")
        connect_s = await client.connect_all()
        await asyncio.sleep(0.5)
        sockets = 2 * len(client.pairs)
        rss1 = system.server_rss_mb()
        result: dict[str, Any] = {
            "system": system.name,
            "sockets": sockets,
            "connect_seconds": round(connect_s, 1),
            "rss_mb": round(rss1, 1),
            "rss_mb_per_1000_sockets": round((rss1 - rss0) / sockets * 1000, 1),
            "phases": [],
        }
        if warmup > 0 and rates:
            # Caches, connection pools, the JIT-less interpreter's first paths: not measured.
            # Its own client ids (a repeated one is acknowledged but not stored or sent again).
            client.run_id = uuid.uuid4().hex[:8]
            warm = await client.fixed_rate(rates[0], warmup)
            print(f"  {system.name:17} warm-up {warm.name}: p99 {warm.p99:.1f} ms (not counted)")
            result["warmup"] = asdict(warm)
            await client.settle(30)
        persisted = {"acked": 0, "stored": 0, "stored_rows": 0}
        phases: list[tuple[str, float]] = [("rate", r) for r in rates]
        if saturation > 0:
            phases.append(("saturation", 0.0))
        ladder_broken = False
        for kind, rate in phases:
            if kind == "rate" and ladder_broken:
                continue  # past what this system can hold: straight to saturation
            runs = await agreed_phase(
                client,
                system,
                kind,
                rate,
                seconds=seconds,
                saturation=saturation,
                profile=profile,
                repeats=repeats,
            )
            for run in runs:
                for key in persisted:
                    persisted[key] += run.extra.get("persisted", {}).get(key, 0)
            summary = runs[-1]
            summary.extra["runs"] = [
                {"rate": round(r.rate), "p99": round(r.p99, 1), "lost": r.lost} for r in runs
            ]
            result["phases"].append(asdict(summary) | {"rate": summary.rate})
            if kind == "rate" and not summary.ok(P99_MS):
                ladder_broken = True
                await client.settle(30)  # let the backlog drain before the next phase
        if system.dialect == "tierline":
            result["persisted"] = persisted
        result["client_closed"] = client.closed_unexpectedly
        await client.close_all()
        return result
    finally:
        system.stop()


def print_phase(name: str, sockets: int, s: Summary) -> None:
    cpu = s.extra.get("cpu", {})
    persisted = s.extra.get("persisted")
    stored = f" stored {persisted['stored']}/{persisted['acked']}" if persisted else ""
    errors = f" errors {s.errors}" if s.errors else ""
    print(
        f"  {name:17} {sockets:5} sockets {s.name:>10}: {s.rate:8.0f} msg/s delivered "
        f"p50 {s.p50:6.1f} p90 {s.p90:6.1f} p99 {s.p99:7.1f} max {s.max:7.1f} ms "
        f"lost {s.lost} dup {s.duplicates}{stored}{errors} | cpu server {cpu.get('server', 0):.2f} "
        f"pg {cpu.get('postgres', 0):.2f} redis {cpu.get('redis', 0):.2f} "
        f"celery {cpu.get('celery', 0):.2f} client {s.client_cpu:.2f} "
        f"others {cpu.get('others', 0):.2f} machine {cpu.get('machine', 0):.2f} "
        f"| load {s.extra['loadavg']}",
        flush=True,
    )


def sustained(result: dict[str, Any]) -> float:
    """The highest fixed rate held at p99 <= 50 ms with nothing lost or duplicated."""
    best = 0.0
    for phase in result["phases"]:
        held = phase["lost"] == 0 and phase["duplicates"] == 0 and phase["p99"] <= P99_MS
        if phase["name"] != "saturation" and held and phase["delivered"] >= phase["sent"]:
            best = max(best, phase["rate"])
    return best


def saturation_rate(result: dict[str, Any]) -> float:
    return max((p["rate"] for p in result["phases"] if p["name"] == "saturation"), default=0.0)


def next_step(result: dict[str, Any]) -> str:
    """The first fixed rate the system did not hold, and how it went there."""
    for phase in result["phases"]:
        if phase["name"] == "saturation":
            continue
        held = phase["lost"] == 0 and phase["duplicates"] == 0 and phase["p99"] <= P99_MS
        if not held or phase["delivered"] < phase["sent"]:
            return f"{phase['name']}: p99 {phase['p99']:,.0f} ms, {phase['lost']} lost"
    return "(the ladder ends here)"


def markdown_table(all_results: list[dict[str, Any]]) -> str:
    """The table docs/performance.md shows, from this run."""
    lines = [
        "| N (sockets) | system | held at p99 ≤ 50 ms, 0 lost | p99 there | next step "
        "| saturation (msg/s) | lost | server CPU at saturation | RSS MB / 1,000 sockets "
        "| runs agreed |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for block in all_results:
        for r in block["systems"]:
            held = sustained(r)
            there = next(
                (p["p99"] for p in r["phases"] if p["name"] != "saturation" and p["rate"] == held),
                None,
            )
            sat = [p for p in r["phases"] if p["name"] == "saturation"]
            lost = sum(p["lost"] for p in r["phases"])
            cpu = sat[0]["extra"]["cpu"].get("server", 0.0) if sat else 0.0
            agreed = sorted(
                {p["extra"].get("agreed", "") for p in r["phases"] if p["extra"].get("agreed")}
            )
            lines.append(
                f"| {block['chats']:,} ({r['sockets']:,}) | {r['system']} "
                f"| {'≥ ' if held and next_step(r).startswith('(') else ''}{held:,.0f} msg/s "
                f"| {f'{there:.1f} ms' if there is not None else '-'} | {next_step(r)} "
                f"| {saturation_rate(r):,.0f} | {lost} | {cpu:.2f} "
                f"| {r['rss_mb_per_1000_sockets']:.1f} | {'; '.join(agreed) or '-'} |"
            )
    return "\n".join(lines)


def report(all_results: list[dict[str, Any]]) -> None:
    print("\nSummary (msg/s delivered; sustained = highest fixed rate at p99 <= 50 ms, 0 lost)")
    print(f"{'N':>5} {'system':17} {'sustained':>10} {'saturation':>11} {'RSS MB/1k sockets':>18}")
    for block in all_results:
        for r in block["systems"]:
            print(
                f"{block['chats']:5} {r['system']:17} {sustained(r):10.0f} "
                f"{saturation_rate(r):11.0f} {r['rss_mb_per_1000_sockets']:18.1f}"
            )
        by = {r["system"]: r for r in block["systems"]}
        t, w, c = by.get("Tierline"), by.get("websockets relay"), by.get("Channels relay")
        if t and w and saturation_rate(w):
            ceiling = saturation_rate(w)
            print(
                f"      Tierline / websockets ceiling: sustained {sustained(t) / ceiling:.1%}"
                f", saturation {saturation_rate(t) / ceiling:.1%}"
            )
        if t and c and saturation_rate(c):
            ratio = sustained(t) / max(1, sustained(c))
            print(
                f"      Tierline / Channels relay: sustained {ratio:.1f}x"
                f" (its sustained {sustained(c):.0f}), saturation "
                f"{saturation_rate(t) / saturation_rate(c):.1f}x"
            )


SYSTEMS: dict[str, type[System]] = {
    "websockets": WebsocketsRelay,
    "channels": ChannelsRelay,
    "tierline": Tierline,
    "tierline-v2": TierlineProtocol2,
    "tierline-uvicorn": TierlineUvicorn,
    "tierline-granian": TierlineGranian,
    "tierline-pubsub": TierlinePubSub,
    "tierline-2": TierlineTwoProcesses,
}


async def main_async(args: argparse.Namespace) -> None:
    all_results = []
    systems = SYSTEMS
    print(f"load average before: {common.loadavg()}", flush=True)
    for n in args.chats:
        print(f"\nN = {n} chats ({2 * n} sockets)", flush=True)
        chats = await asyncio.to_thread(common.bench_chats, n)
        block: dict[str, Any] = {"chats": n, "systems": []}
        for key in args.systems:
            started = time.monotonic()
            print(f"load average before {key}: {common.loadavg()}", flush=True)
            result = await run_system(
                systems[key](chats),
                args.rates,
                args.seconds,
                args.saturation,
                args.profile,
                warmup=args.warmup,
                repeats=args.repeats,
            )
            result["wall_seconds"] = round(time.monotonic() - started, 1)
            block["systems"].append(result)
        all_results.append(block)
    report(all_results)
    print("\n" + markdown_table(all_results))
    out = common.ROOT / "var" / "bench-realtime.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": all_results}, indent=1, default=str))
    print(f"\nwritten {out}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=200, short phases")
    parser.add_argument("--chats", type=lambda v: [int(x) for x in v.split(",")])
    parser.add_argument("--rates", type=lambda v: [float(x) for x in v.split(",")])
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--saturation", type=float, help="seconds of the saturation phase")
    parser.add_argument("--profile", action="store_true", help="py-spy the servers at saturation")
    parser.add_argument("--warmup", type=float, help="seconds at the first rate, not counted")
    parser.add_argument(
        "--repeats", type=int, help="run each phase until two runs agree, at most this often"
    )
    parser.add_argument(
        "--systems", type=lambda v: v.split(","), default=["websockets", "channels", "tierline"]
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.chats = args.chats or [200]
        args.rates = args.rates or [200, 1000]
        args.seconds = args.seconds or 4
        args.saturation = args.saturation if args.saturation is not None else 4
        args.warmup = args.warmup if args.warmup is not None else 3
        args.repeats = args.repeats or 4
    else:
        args.chats = args.chats or [200, 2000]
        args.rates = args.rates or [200, 500, 1000, 2000, 3000, 4000]
        args.seconds = args.seconds or 10
        args.saturation = args.saturation if args.saturation is not None else 10
        args.warmup = args.warmup if args.warmup is not None else 5
        args.repeats = args.repeats or 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    raise_fd_limit()
    common.setup_django()
    common.flush_bench_redis()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
