"""The glue around channels-redis's RedisPubSubChannelLayer that bench/realtime weighs against
the fan-out layer (bench/pubsub_layer.py): against real Redis, it keeps Tierline's guarantees
(a full inbox or a lost connection says so; the writer's thread can publish)."""

import asyncio
import uuid

import pytest
import redis
from django.conf import settings

from bench.pubsub_layer import PubSubChannelLayer

pytestmark = pytest.mark.redis


def make_layer(**config):
    name = f"pubsub-test-{uuid.uuid4().hex[:8]}"
    host = {"address": settings.TEST_REDIS_URL, "client_name": name}
    return name, PubSubChannelLayer(hosts=[host], prefix=name, **config)


async def until(condition, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_the_writers_thread_publishes_in_the_librarys_names_and_format():
    _, layer = make_layer()
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    await until(lambda: layer._get_layer()._shards[0]._pubsub.subscribed)
    await asyncio.to_thread(layer.group_send_many_blocking, [("room", {"type": "e", "n": 1})])
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "e", "n": 1}
    await layer.flush()


async def test_a_full_inbox_is_emptied_and_says_it_overran():
    _, layer = make_layer(capacity=3)
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    await until(lambda: layer._get_layer()._shards[0]._pubsub.subscribed)
    layer.group_send_many_blocking([("room", {"type": "e", "n": n}) for n in range(10)])
    await until(lambda: layer._get_layer().overruns >= 1)
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "layer.overrun"}
    await layer.flush()


async def test_a_lost_connection_is_an_overrun_for_every_inbox():
    name, layer = make_layer()
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", a)
    await until(lambda: layer._get_layer()._shards[0]._pubsub.subscribed)
    killer = redis.Redis.from_url(settings.TEST_REDIS_URL)
    ids = [c["id"] for c in killer.client_list() if c.get("name") == name]
    assert ids, "the layer's connections are named"
    for client_id in ids:
        killer.client_kill_filter(_id=client_id)
    await until(lambda: layer._get_layer().overruns >= 2, timeout=10)  # reconnected
    assert await asyncio.wait_for(layer.receive(a), 5) == {"type": "layer.overrun"}
    assert await asyncio.wait_for(layer.receive(b), 5) == {"type": "layer.overrun"}
    layer.group_send_many_blocking([("room", {"type": "e", "n": 2})])  # and then it goes on
    assert await asyncio.wait_for(layer.receive(a), 5) == {"type": "e", "n": 2}
    await layer.flush()
