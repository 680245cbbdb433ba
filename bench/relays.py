"""The two reference relays the realtime benchmark measures Tierline against.

- `python -m bench.relays --port P`: a bare relay on the `websockets` library, the ceiling of
  what one Python process can forward on this machine. `/room/<n>/<side>`: each text frame goes to
  the other socket of room n, as it is.
- `bench.channels_relay:application` (run by daphne): the same relay as a plain Channels consumer
  with channels-redis' `RedisChannelLayer`, the way a typical Django chat is written.
"""

import argparse
import asyncio
from typing import Any

import websockets

rooms: dict[str, dict[str, Any]] = {}


async def handler(ws: Any) -> None:
    parts = ws.request.path.strip("/").split("/")
    room, side = parts[1], parts[2]
    members = rooms.setdefault(room, {})
    members[side] = ws
    other = "agent" if side == "visitor" else "visitor"
    try:
        async for frame in ws:
            peer = members.get(other)
            if peer is not None:
                await peer.send(frame)
    finally:
        members.pop(side, None)


async def main(port: int) -> None:
    async with websockets.serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        max_queue=None,
        ping_interval=None,
        backlog=4096,
    ):
        print(f"relay listening on {port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
