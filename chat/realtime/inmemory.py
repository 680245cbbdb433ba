"""The embedded default's channel layer: the in-memory layer, safe to call from other threads.

`InMemoryChannelLayer` keeps asyncio queues whose readers live on daphne's event loop. The embedded
Celery worker runs in a thread with its own loop (through `async_to_sync`); putting into those
queues from there would not wake daphne's loop. This subclass remembers the loop its readers run
on and hands sends from any other loop over to it. Fine for one process and a few hundred sockets;
production uses Redis (the fan-out layer, chat.realtime.fanout).
"""

import asyncio
from typing import Any

from channels.layers import InMemoryChannelLayer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):  # type: ignore[misc]
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._home_loop: asyncio.AbstractEventLoop | None = None

    async def _on_home_loop(self, coro: Any) -> Any:
        loop = asyncio.get_running_loop()
        home = self._home_loop
        if home is None or home is loop or home.is_closed() or not home.is_running():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, home))

    async def receive(self, channel: str) -> Any:
        self._home_loop = asyncio.get_running_loop()
        return await super().receive(channel)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self._on_home_loop(super().send(channel, message))

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self._on_home_loop(super().group_send(group, message))
