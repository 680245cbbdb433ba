"""The known traps of this stack (Celery on Redis, channels-redis, daphne, redis-py), each
pinned by a test."""

from importlib.metadata import version

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings


def test_daphne_is_at_least_4_2_2():
    parts = tuple(int(p) for p in version("daphne").split(".")[:3])
    assert parts >= (4, 2, 2)


def test_timer_countdowns_stay_below_the_redis_visibility_timeout():
    """Redis redelivers an unacknowledged task after the visibility timeout: a countdown longer
    than that would run twice. Timers cap their countdown and re-arm instead."""
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert visibility / 2 > settings.MAX_TIMER_COUNTDOWN_SECONDS


def test_a_killed_worker_task_is_not_lost():
    assert settings.CELERY_TASK_ACKS_LATE is True
    assert settings.CELERY_TASK_REJECT_ON_WORKER_LOST is True


@pytest.mark.django_db
def test_a_far_deadline_is_armed_with_a_capped_countdown_and_rearms(
    l1_setup, monkeypatch, django_capture_on_commit_callbacks
):
    from escalation import services
    from escalation.models import QueueEntry
    from escalation.tasks import wait_timeout

    l1_setup.l1.wait_timeout_seconds = 7200
    l1_setup.l1.save()
    sent: list[dict] = []
    monkeypatch.setattr(wait_timeout, "apply_async", lambda *a, **kw: sent.append(kw))
    with django_capture_on_commit_callbacks(execute=True):
        chat = services.start_chat(
            visitor_name="V",
            visitor_email="",
            topic_name="Billing",
            first_message="hi",
            visitor_context={},
        )
    [timer] = [kw for kw in sent if "countdown" in kw]
    assert timer["countdown"] == settings.MAX_TIMER_COUNTDOWN_SECONDS
    entry = QueueEntry.objects.get(chat=chat)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.handle_wait_timeout(entry_id=entry.pk) == "early"  # woke at the cap
    assert len([kw for kw in sent if "countdown" in kw]) == 2  # and armed itself again


@pytest.mark.redis
@pytest.mark.django_db
def test_the_timer_task_reaches_the_broker_only_after_commit(
    l1_setup, django_capture_on_commit_callbacks
):
    """A task queued before commit could run before its rows exist; ours wait for the commit."""
    import redis

    broker = redis.Redis.from_url(settings.TEST_REDIS_URL)
    broker.delete("celery")
    from escalation import services

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.start_chat(
            visitor_name="V",
            visitor_email="",
            topic_name="Billing",
            first_message="hi",
            visitor_context={},
        )
    assert broker.llen("celery") == 0
    for callback in callbacks:
        callback()
    assert broker.llen("celery") >= 1
    broker.delete("celery")


@pytest.mark.redis
@pytest.mark.django_db
def test_group_send_past_capacity_drops_silently_and_resync_recovers(alice_agent):
    """channels-redis drops group messages past a channel's capacity without an error; the
    stored sequence numbers let the client get every dropped message back."""
    from channels_redis.core import RedisChannelLayer

    from chat.events import chat_visitor_group, message_payload
    from chat.selectors import messages_after
    from escalation import services

    layer = RedisChannelLayer(hosts=[settings.TEST_REDIS_URL], capacity=5, prefix="trap-test")
    chat = services.start_chat(
        visitor_name="V",
        visitor_email="",
        topic_name="Billing",
        first_message="hi",
        visitor_context={},
    )
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    stored = [
        services.post_agent_message(chat_id=chat.pk, agent=alice_agent, text=f"m{i}")
        for i in range(12)
    ]

    async def relay_and_read() -> list[int]:
        channel = "trap-listener.1"
        await layer.flush()
        await layer.group_add(chat_visitor_group(chat.pk), channel)
        for message in stored:  # no error, no exception: the layer just drops the overflow
            await layer.group_send(
                chat_visitor_group(chat.pk),
                {"type": "chat.event", "payload": message_payload(message, for_visitor=True)},
            )
        got = []
        import asyncio

        while True:
            try:
                event = await asyncio.wait_for(layer.receive(channel), 0.5)
            except TimeoutError:
                break
            got.append(event["payload"]["seq"])
        await layer.flush()
        return got

    received = async_to_sync(relay_and_read)()
    assert 0 < len(received) < len(stored)  # the drop is real, and nothing said so
    dropped = sorted({m.public_seq for m in stored} - set(received))
    resynced = messages_after(chat_id=chat.pk, after=max(received), for_visitor=True)
    assert [m.public_seq for m in resynced] == dropped  # resume from the last seq seen: all back


def _connections_named(name: str) -> int:
    import redis

    listed = redis.Redis.from_url(settings.TEST_REDIS_URL).client_list()
    return sum(1 for client in listed if client.get("name") == name)


@pytest.mark.redis
def test_the_cache_shares_one_redis_connection_across_contexts():
    """Django keeps a cache object per context (each ASGI request, each call from a socket) and
    its Redis backend opens a connection pool per cache object: a TCP connection per context.
    Tierline's backend shares one client per process; Django's own is checked too, so that this
    test fails if the trap is gone upstream (then the subclass can go)."""
    import threading
    import uuid

    from django.core.cache.backends.redis import RedisCache as DjangoRedisCache

    from helpdesk.cache import RedisCache

    def use_from_threads(backend_class: type, name: str) -> int:
        kept = []  # the cache objects stay alive, as a busy server's do until collected

        def one_context(index: int) -> None:
            cache = backend_class(settings.TEST_REDIS_URL, {"OPTIONS": {"client_name": name}})
            cache.set(f"{name}:{index}", index, 30)
            assert cache.get(f"{name}:{index}") == index
            kept.append(cache)

        for index in range(10):
            thread = threading.Thread(target=one_context, args=(index,))
            thread.start()
            thread.join()
        return _connections_named(name)

    assert use_from_threads(RedisCache, f"tl-shared-{uuid.uuid4().hex[:8]}") == 1
    assert use_from_threads(DjangoRedisCache, f"tl-stock-{uuid.uuid4().hex[:8]}") == 10
    assert settings.CACHES["default"]["BACKEND"] == "helpdesk.cache.RedisCache"


def test_the_shared_cache_client_is_per_servers_and_options():
    from helpdesk.cache import RedisCache

    def client(options: dict) -> object:
        return RedisCache("redis://127.0.0.1:6379/9", {"OPTIONS": options})._cache

    assert client({"client_name": "a"}) is client({"client_name": "a"})
    assert client({"client_name": "a"}) is not client({"client_name": "b"})
    other = RedisCache("redis://127.0.0.1:6379/10", {"OPTIONS": {"client_name": "a"}})._cache
    assert other is not client({"client_name": "a"})
