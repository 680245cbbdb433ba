"""Idle sockets: what an open chat page or widget costs the server while nobody types.

    .venv/bin/python -m bench.idle                        # 10,000 sockets, held 60 s
    .venv/bin/python -m bench.idle --sockets 2000 --hold 20 --systems tierline

For each system it opens the sockets (Tierline: visitor sockets, several per bench chat, as a
visitor with the page open in more than one tab; the relay: both ends of its rooms), holds them
for `--hold` seconds with the keep-alives the page sends (a `ping` every 20 s, staggered; the
servers' own websocket pings run as configured), and prints the server's RSS per 1,000 sockets,
its CPU while idle (1.0 = one core), sockets the server closed, and the machine's other load.
"""

import argparse
import asyncio
import contextlib
import json
import random
import time
from typing import Any

import orjson
import websockets

from bench import common
from bench.realtime import SYSTEMS, System, raise_fd_limit

PING_EVERY = 20.0


def urls(system: System, sockets: int) -> list[str]:
    pairs = system.pairs()
    out: list[str] = []
    for i in range(sockets):
        pair = pairs[(i // 2 if system.dialect == "relay" else i) % len(pairs)]
        relay_agent_end = system.dialect == "relay" and i % 2
        out.append(pair.agent_url if relay_agent_end else pair.visitor_url)
    return out


async def hold_idle(system: System, sockets: int, hold: float, concurrency: int) -> dict[str, Any]:
    system.start()
    opened: list[Any] = []
    tasks: list[asyncio.Task[None]] = []
    closed = 0
    try:
        rss0 = system.server_rss_mb()
        gate = asyncio.Semaphore(concurrency)
        origin = f"http://127.0.0.1:{system.port}"

        async def read(ws: Any) -> None:
            nonlocal closed
            try:
                async for _ in ws:
                    pass
            except websockets.ConnectionClosed:
                pass
            closed += 1

        async def keep_alive(ws: Any) -> None:
            await asyncio.sleep(random.uniform(0, PING_EVERY))
            while True:
                with contextlib.suppress(websockets.ConnectionClosed):
                    await ws.send('{"type":"ping"}')
                await asyncio.sleep(PING_EVERY)

        async def open_one(url: str) -> None:
            async with gate:
                for attempt in range(5):
                    try:
                        ws = await websockets.connect(
                            url,
                            origin=origin,
                            compression=None,
                            ping_interval=None,
                            open_timeout=60,
                        )
                        break
                    except (OSError, websockets.InvalidHandshake, websockets.InvalidMessage):
                        await asyncio.sleep(0.5 * (attempt + 1))
                else:
                    raise RuntimeError(f"could not open {url}")
            opened.append(ws)
            tasks.append(asyncio.create_task(read(ws)))
            tasks.append(asyncio.create_task(keep_alive(ws)))

        started = time.monotonic()
        await asyncio.gather(*(open_one(u) for u in urls(system, sockets)))
        connect_seconds = time.monotonic() - started
        await asyncio.sleep(2)  # the last handshakes' replies
        rss1 = system.server_rss_mb()
        meter = common.CpuMeter(system.cpu_groups())
        await asyncio.sleep(hold)
        cpu = {k: round(v, 3) for k, v in meter.read().items()}
        rss2 = system.server_rss_mb()
        measured = sum(v for k, v in cpu.items() if k != "machine")
        return {
            "system": system.name,
            "sockets": len(opened),
            "connect_seconds": round(connect_seconds, 1),
            "hold_seconds": hold,
            "rss_mb": round(rss2, 1),
            "rss_mb_per_1000_sockets": round((rss1 - rss0) / max(1, len(opened)) * 1000, 1),
            "rss_growth_while_idle_mb": round(rss2 - rss1, 1),
            "cpu": cpu,
            "others_and_client": round(max(0.0, cpu["machine"] - measured), 2),
            "closed_by_server": closed,
            "loadavg": common.loadavg(),
        }
    finally:
        for task in tasks:
            task.cancel()
        for ws in opened:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)
        system.stop()


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    chats = await asyncio.to_thread(common.bench_chats, args.chats)
    results = []
    for key in args.systems:
        print(f"load average before {key}: {common.loadavg()}", flush=True)
        result = await hold_idle(SYSTEMS[key](chats), args.sockets, args.hold, args.concurrency)
        print(orjson.dumps(result).decode(), flush=True)
        results.append(result)
    print("\n| system | idle sockets | RSS MB / 1,000 sockets | server CPU while idle | closed |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['system']} | {r['sockets']:,} | {r['rss_mb_per_1000_sockets']:.1f} "
            f"| {r['cpu'].get('server', 0):.3f} | {r['closed_by_server']} |"
        )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--hold", type=float, default=60.0)
    parser.add_argument("--chats", type=int, default=2000, help="bench chats the sockets share")
    parser.add_argument("--concurrency", type=int, default=50, help="handshakes at a time")
    parser.add_argument(
        "--systems", type=lambda v: v.split(","), default=["websockets", "tierline"]
    )
    args = parser.parse_args(argv)
    raise_fd_limit()
    common.setup_django()
    common.flush_bench_redis()
    results = asyncio.run(main_async(args))
    out = common.ROOT / "var" / "bench-idle.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
