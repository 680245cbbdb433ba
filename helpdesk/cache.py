"""Django's Redis cache with one client, and so one connection pool, per process.

Django keeps its cache objects in a context-local store (asgiref's `Local`), and each
`RedisCache` object builds its own `RedisCacheClient`, whose connection pool is its own. Under
ASGI every request, and every `database_sync_to_async` call from a socket, runs in a fresh
context: each built a new client (reading redis-py's version from its package metadata on disk)
and opened a new TCP connection to Redis for a single command, left to the garbage collector.
Django's ticket 35651 (code.djangoproject.com) tracks it upstream. Here the client is built
once per process for each set of servers and options, and every context shares it; redis-py's
pool is thread-safe and starts afresh in a forked child (Celery's prefork workers)."""

import os
import threading
from typing import Any, ClassVar

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.utils.functional import cached_property

# Guards building the shared clients and their pools (Django builds a pool on a client's first
# command without a lock: two threads' first commands would each open one). A fresh one in a
# forked child, in case another thread held it at the fork.
_lock = threading.Lock()


def _new_lock_in_child() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


class SharedRedisCacheClient(RedisCacheClient):
    def _get_connection_pool(self, write: bool) -> Any:
        with _lock:
            return super()._get_connection_pool(write)  # type: ignore[misc]  # not in the stubs


class RedisCache(DjangoRedisCache):
    """OPTIONS `max_connections`, if set, caps the process's connections, not a context's."""

    _clients: ClassVar[dict[tuple[Any, ...], RedisCacheClient]] = {}

    @cached_property
    def _cache(self) -> RedisCacheClient:
        # The servers and OPTIONS as Django's __init__ parsed them (not in the type stubs).
        # Options without a telling repr (a Retry object, say) key by identity: never shared by
        # mistake, at worst built twice.
        servers: list[str] = self._servers  # type: ignore[attr-defined]
        options: dict[str, Any] = self._options  # type: ignore[attr-defined]
        key = (tuple(servers), repr(sorted(options.items())))
        with _lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = SharedRedisCacheClient(servers, **options)
            return client
