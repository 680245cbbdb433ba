"""Coalescing writer: concurrent posts from a process's sockets share one transaction.

A consumer awaits `Writer.submit(post)`; while a batch is being written (on the writer's own
thread, with its own database connection), new posts wait in a list, and the next batch takes
them all. An idle server writes each post alone at once (no added delay); a busy one writes
hundreds per commit. The writer knows nothing of what a post is: `write` takes a batch and
returns one result per post, a value or an exception, which its sender gets back (raised).
"""

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import InterfaceError, OperationalError, close_old_connections, connection

WriteFn = Callable[[Sequence[Any]], Sequence[Any]]

logger = logging.getLogger(__name__)
MAX_BATCH = 500
_CONNECTION_ERRORS = (InterfaceError, OperationalError)
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tierline-writer")


CHECK_SECONDS = 1.0  # how often the writer's connection is checked, at most
_checked_at = float("-inf")  # when it last was (the writer has one thread)


def _write(write: WriteFn, posts: list[Any], may_retry: Callable[[Any], bool]) -> Sequence[Any]:
    """One batch on the writer's thread. Its connection is checked (CONN_MAX_AGE, and
    CONN_HEALTH_CHECKS' `SELECT 1`) at most once a second, not before every batch as
    `database_sync_to_async` would: at a hundred batches a second that round trip would be one in
    every five. A connection that broke in between fails the batch with a database error; the
    connection is then replaced, and the posts that `may_retry` allows are written once more.
    Only those: the error may have come at COMMIT, after the database had stored the batch, so a
    post is retried only if writing it twice is harmless (a message with a client_id is found
    again, not stored twice; a still-here mark is the same UPDATE)."""
    global _checked_at
    now = time.monotonic()
    if now - _checked_at >= CHECK_SECONDS:
        close_old_connections()
        _checked_at = now
    try:
        results = list(write(posts))
    except _CONNECTION_ERRORS:
        _reconnect()
        if not all(may_retry(post) for post in posts):
            raise
        return list(write(posts))
    failed = [i for i, result in enumerate(results) if isinstance(result, _CONNECTION_ERRORS)]
    if failed:
        _reconnect()
        again = [i for i in failed if may_retry(posts[i])]
        for i, result in zip(again, write([posts[i] for i in again]), strict=True):
            results[i] = result
    if connection.errors_occurred:  # any other error: the connection is checked now, not later
        _reconnect()
    return results


def _reconnect() -> None:
    """After a database error: a connection that no longer works is closed (and reopened by the
    next query), as close_old_connections does when errors occurred."""
    global _checked_at
    close_old_connections()
    _checked_at = time.monotonic()


def never(post: Any) -> bool:
    return False


class Writer[Post]:
    def __init__(self, write: WriteFn, may_retry: Callable[[Post], bool] = never) -> None:
        self.write = write
        self.may_retry = may_retry
        self._pending: list[tuple[Post, asyncio.Future[Any]]] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # for benchmarks and tests
        self.posts = 0

    async def submit(self, post: Post) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((post, future))
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())
        result = await future
        if isinstance(result, Exception):
            raise result
        return result

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                taken, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    results = await loop.run_in_executor(
                        _executor, _write, self.write, [post for post, _ in taken], self.may_retry
                    )
                except Exception as exc:
                    results = [exc] * len(taken)
                self.batches += 1
                self.posts += len(taken)
                if self.posts // 5000 != (self.posts - len(taken)) // 5000:
                    logger.info(
                        "writer: %d posts in %d batches (%.1f a batch)",
                        self.posts,
                        self.batches,
                        self.posts / self.batches,
                    )
                for (_, future), result in zip(taken, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._draining = False


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Writer[Any]]] = (
    weakref.WeakKeyDictionary()
)


def writer_for(name: str, write: WriteFn, may_retry: Callable[[Any], bool] = never) -> Writer[Any]:
    """The event loop's writer for one kind of post (one per loop: futures belong to a loop).
    `may_retry`: whether a post may be written again after a lost connection (see `_write`)."""
    loop = asyncio.get_running_loop()
    writers = _writers.setdefault(loop, {})
    found = writers.get(name)
    if found is None:
        found = writers[name] = Writer(write, may_retry)
    return found
