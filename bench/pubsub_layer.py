"""channels-redis's own `RedisPubSubChannelLayer`, with the least glue Tierline's guarantees need,
for bench/realtime to weigh against the hand-written layer (chat/realtime/fanout.py). Not a
supported setting: it is selected by bench/pubsub_settings.py for the benchmark's server only.

The library's layer, as it is: each consumer's channel and each group is a Redis channel of its
own (one SUBSCRIBE per socket and one per group), every event is deserialised once per local
recipient, publishing takes a per-connection lock. What had to be added, and why:

- **Publishing from the writer's thread.** Tierline publishes a batch's events after its commit,
  on the writer's thread; the library's layer is per event loop and has no blocking call, and
  `async_to_sync` from that thread would make a fresh event loop (and a fresh layer with its own
  connections) for every call. `group_send_many_blocking` publishes the batch on one pipelined
  synchronous connection, in the library's own channel names and wire format.
- **Bounded inboxes that say when they overrun.** The library's per-channel queues are
  unbounded: a socket that cannot keep up grows the process's memory without limit. Here a full
  queue is emptied and left holding one `layer.overrun` event, on which the consumer resyncs
  from the database, as with the fan-out layer.
- **A lost Redis connection is an overrun for everyone.** Events published while the pub/sub
  connection was down are gone; the library reconnects and re-subscribes without a word. Here
  each reconnection puts `layer.overrun` in every local inbox.
"""

import asyncio
from typing import Any

import redis
from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from redis import asyncio as aioredis

OVERRUN = {"type": "layer.overrun"}


class BoundedShard(RedisSingleShardConnection):  # type: ignore[misc]
    def _receive_message(self, message: dict[str, Any] | None) -> None:
        if message is None:
            return
        name = message["channel"]
        if isinstance(name, bytes):
            name = name.decode()
        layer = self.channel_layer
        targets = [name] if name in layer.channels else list(layer.groups.get(name, ()))
        for channel in targets:
            queue = layer.channels.get(channel)
            if queue is None:
                continue
            try:
                queue.put_nowait(message["data"])
            except asyncio.QueueFull:
                layer.overran(queue)

    def _ensure_redis(self) -> None:
        if self._redis is None:
            super()._ensure_redis()
            self._pubsub = ReconnectAwarePubSub(self._redis.connection_pool)
            self._pubsub.shard = self

    def reconnected(self) -> None:
        for queue in list(self.channel_layer.channels.values()):
            self.channel_layer.overran(queue)


class ReconnectAwarePubSub(aioredis.client.PubSub):  # type: ignore[misc]
    shard: BoundedShard

    async def on_connect(self, connection: Any) -> None:
        """redis-py calls this on every reconnection (not on the first connection): it
        subscribes again; what was published meanwhile is lost."""
        await super().on_connect(connection)
        self.shard.reconnected()


class BoundedLoopLayer(RedisPubSubLoopLayer):  # type: ignore[misc]
    def __init__(self, *args: Any, capacity: int = 1000, **kwargs: Any) -> None:
        kwargs.pop("expiry", None)
        super().__init__(*args, **kwargs)
        self.capacity = capacity
        self.overruns = 0
        self._shards = [BoundedShard(shard.host, self) for shard in self._shards]
        self._overrun = self.channel_layer.serialize(OVERRUN)

    async def _subscribe_to_channel(self, channel: str) -> None:
        self.channels[channel] = asyncio.Queue(maxsize=self.capacity)
        await self._get_shard(channel).subscribe(channel)

    def overran(self, queue: asyncio.Queue[bytes]) -> None:
        self.overruns += 1
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(self._overrun)


class PubSubChannelLayer(RedisPubSubChannelLayer):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        hosts = kwargs.get("hosts") or ["redis://localhost:6379"]
        # One host: the library shards channels over several, which this publisher does not.
        if len(hosts) != 1:
            raise ValueError("the benchmark's pub/sub layer takes exactly one Redis host")
        host = hosts[0]
        self._prefix = kwargs.get("prefix", "asgi")
        self._blocking = redis.Redis.from_url(host if isinstance(host, str) else host["address"])

    def _get_layer(self) -> Any:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = BoundedLoopLayer(
                *self._args, **self._kwargs, channel_layer=self
            )
        return layer

    def group_send_many_blocking(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        """Publish (group, message) pairs from a thread without an event loop: one pipeline."""
        pipe = self._blocking.pipeline(transaction=False)
        for group, message in messages:
            pipe.publish(f"{self._prefix}__group__{group}", self.serialize(message))
        pipe.execute()
