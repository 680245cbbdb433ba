"""/ws/chat/<chat_id>/?token=...&since=N: one visitor's chat."""

from typing import Any

from channels.db import database_sync_to_async

from chat import selectors as chat_selectors
from chat import services as chat_services
from chat.consumers.protocol import (
    ProtocolConsumer,
    _query_param,
    _since,
    store_post,
    validate_frame,
)
from chat.events import PROTOCOL_VERSION, chat_visitor_group
from chat.exceptions import ChatNotFound
from escalation import frames, services


class VisitorConsumer(ProtocolConsumer):
    """/ws/chat/<chat_id>/?token=...&since=N: one visitor's chat."""

    handlers = {"message": "on_message", "end": "on_end", "ping": "on_ping", "resume": "on_resume"}

    async def connect(self) -> None:
        self.chat_id = int(self.scope["url_route"]["kwargs"]["chat_id"])
        self.joined = False
        token = _query_param(self.scope, "token") or ""
        try:
            chat = await database_sync_to_async(chat_selectors.chat_for_visitor_token)(
                token=token, chat_id=self.chat_id
            )
        except ChatNotFound:
            await self.refuse()
            return
        # Join before reading the snapshot so that no event falls between the two.
        await self.channel_layer.group_add(chat_visitor_group(self.chat_id), self.channel_name)
        self.joined = True
        await self.accept()
        await database_sync_to_async(chat_services.mark_visitor_seen)(chat_id=self.chat_id)
        state = await database_sync_to_async(services.visitor_hello)(chat=chat)
        await self.send_json({**state, "v": PROTOCOL_VERSION})
        await self.send_replay(
            chat_id=self.chat_id, since=_since(_query_param(self.scope, "since")), for_visitor=True
        )

    async def disconnect(self, code: int) -> None:
        if getattr(self, "joined", False):
            await self.channel_layer.group_discard(
                chat_visitor_group(self.chat_id), self.channel_name
            )
            await database_sync_to_async(chat_services.mark_visitor_seen)(chat_id=self.chat_id)

    async def on_message(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"text": (str, True), "client_id": (str, False)})
        message = await store_post(
            services.Post(
                chat_id=self.chat_id, text=values["text"], client_id=values.get("client_id")
            )
        )
        await self.send_json(
            {
                "type": "ack",
                "v": PROTOCOL_VERSION,
                "client_id": message.client_id,
                "seq": message.public_seq,
            }
        )

    async def on_end(self, content: dict[str, Any]) -> None:
        validate_frame(content, {})
        await database_sync_to_async(services.end_chat_by_visitor)(chat_id=self.chat_id)

    async def on_ping(self, content: dict[str, Any]) -> None:
        await database_sync_to_async(chat_services.mark_visitor_seen)(chat_id=self.chat_id)
        await self.send_json({"type": "pong", "v": PROTOCOL_VERSION})

    async def on_resume(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"since": (int, True)})
        await self.send_replay(
            chat_id=self.chat_id, since=_since(values["since"]), for_visitor=True
        )

    async def resync(self) -> None:
        chat = await database_sync_to_async(chat_selectors.chat_for_id)(chat_id=self.chat_id)
        state = await database_sync_to_async(frames.visitor_state)(chat=chat)
        await self.send_json({**state, "v": PROTOCOL_VERSION})
        since = self.__dict__.get("last_sent_seq", {}).get(self.chat_id, 0)
        await self.send_replay(chat_id=self.chat_id, since=since, for_visitor=True)
