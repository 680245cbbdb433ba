"""Django's Redis cache with one client, and so one connection pool, per process.

Django keeps its cache objects in a context-local store (asgiref's `Local`), and each
`RedisCache` object builds its own `RedisCacheClient`, whose connection pool is its own. Under
ASGI every request, and every `database_sync_to_async` call from a socket, runs in a fresh
context: each built a new client (reading redis-py's version from its package metadata on disk)
and opened a new TCP connection to Redis for a single command, left to the garbage collector.
Django's ticket 35651 (code.djangoproject.com) tracks it upstream. Here the client is built
once per process for each set of servers and options, and every context shares it; redis-py's
pool is thread-safe and starts afresh in a forked child (Celery's prefork workers)."""

import re
import threading
from typing import Any, ClassVar

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.utils.functional import cached_property


class RedisCache(DjangoRedisCache):
    _clients: ClassVar[dict[tuple[Any, ...], RedisCacheClient]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        # As Django reads them (RedisCache.__init__): servers split on ; or , and the OPTIONS.
        self._shared_servers = re.split("[;,]", server) if isinstance(server, str) else server
        self._shared_options = params.get("OPTIONS", {})
        self._shared_key = (tuple(self._shared_servers), repr(sorted(self._shared_options.items())))

    @cached_property
    def _cache(self) -> RedisCacheClient:
        with self._lock:
            client = self._clients.get(self._shared_key)
            if client is None:
                client = self._clients[self._shared_key] = RedisCacheClient(
                    self._shared_servers, **self._shared_options
                )
            return client
