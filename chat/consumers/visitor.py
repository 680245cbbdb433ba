"""/ws/chat/<chat_id>/?token=...&since=N: one visitor's chat."""

import re
import time
from typing import Any

from channels.db import database_sync_to_async

from chat import selectors as chat_selectors
from chat.consumers.protocol import (
    ProtocolConsumer,
    _query_param,
    _since,
    mark_seen,
    store_post,
    validate_frame,
)
from chat.events import Pong, Typing, chat_agents_group, chat_visitor_group, publish_now
from chat.exceptions import ChatNotFound
from escalation import frames, services
from escalation.selectors import site_allows_chat_origin

# A typing frame is relayed at most this often while its state does not change.
TYPING_EVERY_SECONDS = 1.0


class VisitorConsumer(ProtocolConsumer):
    """/ws/chat/<chat_id>/?token=...&since=N: one visitor's chat."""

    handlers = {
        "message": "on_message",
        "end": "on_end",
        "ping": "on_ping",
        "resume": "on_resume",
        "typing": "on_typing",
    }
    for_visitor = True

    async def connect(self) -> None:
        self.chat_id = int(self.scope["url_route"]["kwargs"]["chat_id"])
        self.joined = False
        self.typing_sent = (False, 0.0)
        token = _query_param(self.scope, "token") or ""
        try:
            chat = await database_sync_to_async(chat_selectors.chat_for_visitor_token)(
                token=token, chat_id=self.chat_id
            )
        except ChatNotFound:
            await self.refuse()
            return
        self.visitor_name = chat.visitor_name
        # Follow, then join, then read the snapshot: no event falls between the two, and the
        # stream holds what arrives before the replay says where delivery stands.
        self.follow(self.chat_id, None)
        await self.channel_layer.group_add(chat_visitor_group(self.chat_id), self.channel_name)
        self.joined = True
        await self.accept()
        await mark_seen(visitor_chat=self.chat_id)
        await self.send_frame(await database_sync_to_async(services.visitor_hello)(chat=chat))
        await self.send_replay(
            chat_id=self.chat_id, since=_since(_query_param(self.scope, "since"))
        )

    async def leave_groups(self) -> None:
        if getattr(self, "joined", False):
            self.joined = False
            await self.channel_layer.group_discard(
                chat_visitor_group(self.chat_id), self.channel_name
            )

    async def disconnect(self, code: int) -> None:
        await self.leave_groups()
        if hasattr(self, "chat_id"):
            await mark_seen(visitor_chat=self.chat_id)

    async def on_message(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"text": (str, True), "client_id": (str, False)})
        message = await store_post(
            services.Post(
                chat_id=self.chat_id, text=values["text"], client_id=values.get("client_id")
            )
        )
        await self.acknowledge(message)

    async def on_end(self, content: dict[str, Any]) -> None:
        validate_frame(content, {})
        await database_sync_to_async(services.end_chat_by_visitor)(chat_id=self.chat_id)

    async def on_ping(self, content: dict[str, Any]) -> None:
        await mark_seen(visitor_chat=self.chat_id)
        await self.send_frame(Pong())

    async def on_resume(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"since": (int, True)})
        await self.send_replay(chat_id=self.chat_id, since=_since(values["since"]))

    async def on_typing(self, content: dict[str, Any]) -> None:
        """The visitor is typing (or stopped): told to the agents, never stored."""
        values = validate_frame(content, {"active": (bool, True)})
        active, now = values["active"], time.monotonic()
        last_active, last_at = self.typing_sent
        if active == last_active and now - last_at < TYPING_EVERY_SECONDS:
            return  # the same news again, too soon: dropped on purpose (documented)
        self.typing_sent = (active, now)
        event = Typing(chat=self.chat_id, who="visitor", name=self.visitor_name, active=active)
        await publish_now(chat_agents_group(self.chat_id), event)

    async def resync(self) -> None:
        chat = await database_sync_to_async(chat_selectors.chat_for_id)(chat_id=self.chat_id)
        await self.send_frame(await database_sync_to_async(frames.visitor_state)(chat=chat))
        stream = self.streams.get(self.chat_id)
        since = stream.last if stream is not None and stream.last is not None else 0
        await self.send_replay(chat_id=self.chat_id, since=since)


VISITOR_PATH = re.compile(r"^/ws/chat/(\d{1,18})/$")


async def site_origin_allowed(scope: dict[str, Any], origin: str) -> bool:
    """A visitor socket from another origin: allowed when that is an allowed origin of the site
    whose widget started this chat (the socket still needs the chat's token)."""
    match = VISITOR_PATH.match(scope.get("path", ""))
    if match is None:
        return False
    allows = database_sync_to_async(site_allows_chat_origin)
    return bool(await allows(chat_id=int(match.group(1)), origin=origin))
