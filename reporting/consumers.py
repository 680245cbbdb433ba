"""/ws/live/: the managers' live view, over the Django session.

Services that change queues, offers, assignments or presence also tell the `live` group after
they commit (chat.events, `moves_live_view`), in whichever process they ran. Each daphne process
answers those nudges with one fresh snapshot for all its live sockets: the first nudge at once,
the ones that follow within SNAPSHOT_EVERY_SECONDS together, so a busy desk costs a process one
snapshot a second however many changes it makes or managers watch. Who is on each socket is
checked again every AGENT_RECHECK_SECONDS, all of a process's sockets in one set of queries.
"""

import asyncio
import logging
import time
import weakref
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from chat.consumers.protocol import CLOSE_FORBIDDEN, ProtocolConsumer, off_loop
from chat.events import LIVE_CHANGED, LIVE_GROUP, Pong
from reporting import live

logger = logging.getLogger(__name__)

# At most one snapshot per this many seconds per process (the first change is sent at once).
SNAPSHOT_EVERY_SECONDS = 1.0
# A snapshot at least this often even with no nudge: what changes without an event (an admin's
# edit of a capacity or a timeout, the turn of the day for the service level) shows up too.
SNAPSHOT_AT_LEAST_EVERY_SECONDS = 60.0


class LiveConsumer(ProtocolConsumer):
    handlers = {"ping": "on_ping"}

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not await database_sync_to_async(live.may_watch_live)(user):
            await self.refuse()
            return
        session = self.scope.get("session")
        self.login: live.ManagerLogin = (
            user.pk,
            getattr(session, "session_key", None) or "",
            getattr(user, "password", ""),
        )
        # Join before reading the snapshot, so that no change falls between the two.
        await self.channel_layer.group_add(LIVE_GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        await self.send_json(await off_loop(live.live_snapshot)())
        board_for(asyncio.get_running_loop()).add(self)

    async def leave_groups(self) -> None:
        board_for(asyncio.get_running_loop()).discard(self)
        if getattr(self, "joined", False):
            self.joined = False
            await self.channel_layer.group_discard(LIVE_GROUP, self.channel_name)

    async def disconnect(self, code: int) -> None:
        await self.leave_groups()

    async def chat_event(self, event: dict[str, Any]) -> None:
        if event["payload"].get("type") == LIVE_CHANGED:
            board_for(asyncio.get_running_loop()).changed()

    async def resync(self) -> None:
        """Nudges were lost (the layer overran or lost Redis): a fresh snapshot."""
        board_for(asyncio.get_running_loop()).changed()

    async def on_ping(self, content: dict[str, Any]) -> None:
        await self.send_frame(Pong())


class LiveBoard:
    """The live sockets of one event loop (one daphne process): one snapshot read for all of
    them, and one check of who is on them."""

    def __init__(self) -> None:
        self.sockets: set[LiveConsumer] = set()
        self.dirty = False
        self.sent_at = time.monotonic()
        self.refresher: asyncio.Task[None] | None = None
        self.watcher: asyncio.Task[None] | None = None

    def add(self, socket: LiveConsumer) -> None:
        self.sockets.add(socket)
        if self.watcher is None or self.watcher.done():
            self.watcher = asyncio.get_running_loop().create_task(self.watch())

    def discard(self, socket: LiveConsumer) -> None:
        self.sockets.discard(socket)

    def changed(self) -> None:
        self.dirty = True
        if self.sockets and (self.refresher is None or self.refresher.done()):
            self.refresher = asyncio.get_running_loop().create_task(self.refresh())

    async def refresh(self) -> None:
        """Snapshots while changes keep coming, SNAPSHOT_EVERY_SECONDS apart: the changes that
        arrive while one is read and sent are all in the next."""
        while self.dirty and self.sockets:
            self.dirty = False
            began = time.monotonic()
            try:
                snapshot = await off_loop(live.live_snapshot)()
            except Exception:  # the database is away: the next change or tick tries again
                logger.warning("reading the live view failed", exc_info=True)
                return
            self.sent_at = time.monotonic()
            for socket in list(self.sockets):
                try:
                    await socket.send_json(snapshot)
                except Exception:  # that socket is going; the others still get theirs
                    logger.warning("sending the live view failed", exc_info=True)
            await asyncio.sleep(max(0.0, SNAPSHOT_EVERY_SECONDS - (time.monotonic() - began)))

    async def watch(self) -> None:
        while self.sockets:
            await asyncio.sleep(settings.AGENT_RECHECK_SECONDS)
            sockets = list(self.sockets)
            try:
                revoked = await off_loop(live.invalid_manager_logins)(
                    {socket.login for socket in sockets}
                )
            except Exception:  # the database is away: the next tick tries again
                logger.warning("checking the live view's managers failed", exc_info=True)
                continue
            for socket in sockets:
                if socket.login in revoked:
                    await socket.shut(CLOSE_FORBIDDEN)
            if time.monotonic() - self.sent_at >= SNAPSHOT_AT_LEAST_EVERY_SECONDS:
                self.changed()


_boards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LiveBoard] = (
    weakref.WeakKeyDictionary()
)


def board_for(loop: asyncio.AbstractEventLoop) -> LiveBoard:
    board = _boards.get(loop)
    if board is None:
        board = _boards[loop] = LiveBoard()
    return board
