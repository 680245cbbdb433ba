"""Websocket consumers: authenticate, authorise, validate, call a service, forward events.

The protocol (frame types, error codes, close codes) is in docs/protocol.md.
"""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.utils import timezone

from chat import selectors as chat_selectors
from chat import services as chat_services
from chat.events import (
    PROTOCOL_VERSION,
    agent_group,
    chat_agents_group,
    chat_visitor_group,
    message_payload,
    stage_queue_group,
)
from chat.exceptions import ChatError, ChatNotFound
from chat.models import Message
from escalation import selectors, services
from escalation.commands import COMMANDS_HELP, Command, parse_command
from escalation.exceptions import UnknownCommand
from escalation.models import Agent, Escalation
from escalation.services.batch import post_agent_message_batched, post_visitor_message_batched

logger = logging.getLogger(__name__)

MAX_INT = 2**63 - 1  # ids and sequence numbers are 64-bit in the database
# Short fields and their stored sizes; `text` and `note` are checked by the services.
MAX_CHARS = {"client_id": 64, "target": 30, "reason": 80, "presence": 10, "note": 4000}
CLOSE_FORBIDDEN = 4403  # no or bad credentials for this socket
CLOSE_FLOODING = 4429  # kept sending past the rate limit

FieldSpec = dict[str, tuple[type | tuple[type, ...], bool]]


def off_loop(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """database_sync_to_async on the executor's pool instead of the one thread-sensitive thread,
    for self-contained, slow calls (an escalation, a queue refresh) that must not queue up every
    other socket's database work behind them."""
    wrapped: Callable[..., Awaitable[Any]] = database_sync_to_async(func, thread_sensitive=False)
    return wrapped


class FrameError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def validate_frame(content: dict[str, Any], spec: FieldSpec) -> dict[str, Any]:
    """Check a frame's fields against `spec` ({name: (types, required)}): no missing required
    field, no unknown field, every value of its type (a bool is not an int here)."""
    unknown = sorted(set(content) - set(spec) - {"type", "ref"})
    if unknown:
        raise FrameError("bad_frame", f"Unknown field(s): {', '.join(unknown)}.")
    values: dict[str, Any] = {}
    for name, (types, required) in spec.items():
        if name not in content or content[name] is None:
            if required:
                raise FrameError("bad_frame", f"Field “{name}” is required.")
            continue
        value = content[name]
        bad_bool = isinstance(value, bool) and bool not in (
            types if isinstance(types, tuple) else (types,)
        )
        if bad_bool or not isinstance(value, types):
            raise FrameError("bad_frame", f"Field “{name}” has the wrong type.")
        if isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
            raise FrameError("bad_frame", f"Field “{name}” is out of range.")
        if isinstance(value, str) and name in MAX_CHARS and len(value) > MAX_CHARS[name]:
            raise FrameError("bad_frame", f"Field “{name}” is longer than {MAX_CHARS[name]}.")
        if isinstance(value, str) and name != "text" and "\x00" in value:
            raise FrameError("bad_frame", f"Field “{name}” contains a NUL character.")
        values[name] = value
    return values


class TokenBucket:
    """Frames a client may send: `rate` a second on average, bursts up to `burst`."""

    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


Handler = Callable[[dict[str, Any]], Awaitable[None]]


class ProtocolConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """JSON frames with a `type`; every bad frame gets an error frame, never a crash."""

    handlers: dict[str, str] = {}
    max_rejections = 50

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        self.bucket = TokenBucket(rate=settings.WS_FRAMES_PER_SECOND, burst=settings.WS_FRAME_BURST)
        self.rejections = 0
        await super().websocket_connect(message)

    async def refuse(self, code: int = CLOSE_FORBIDDEN) -> None:
        # Accept first so that the client sees our close code, not a bare HTTP 403.
        await self.accept()
        await self.close(code=code)

    async def error(self, code: str, message: str, ref: Any = None) -> None:
        frame: dict[str, Any] = {
            "type": "error",
            "v": PROTOCOL_VERSION,
            "code": code,
            "message": message,
        }
        if isinstance(ref, str | int) and not isinstance(ref, bool):
            frame["ref"] = ref
        await self.send_json(frame)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.bucket.take():
            self.rejections += 1
            if self.rejections > self.max_rejections:
                await self.close(code=CLOSE_FLOODING)
                return
            await self.error("rate_limited", "Too many frames; slow down and send this again.")
            return
        if text_data is None:
            await self.error("bad_frame", "Binary frames are not supported; send JSON text.")
            return
        if len(text_data.encode("utf-8", "surrogatepass")) > settings.WS_FRAME_MAX_BYTES:
            await self.error(
                "frame_too_large", f"A frame may be at most {settings.WS_FRAME_MAX_BYTES} bytes."
            )
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self.error("bad_json", "The frame is not valid JSON.")
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.error("bad_frame", "A frame is a JSON object with a string “type”.")
            return
        ref = content.get("ref", content.get("client_id"))
        method_name = self.handlers.get(content["type"])
        if method_name is None:
            known = ", ".join(sorted(self.handlers))
            await self.error(
                "unknown_type", f"Unknown frame type; this socket takes: {known}.", ref
            )
            return
        handler: Handler = getattr(self, method_name)
        try:
            await handler(content)
        except FrameError as exc:
            await self.error(exc.code, exc.message, ref)
        except ChatError as exc:
            await self.error(exc.code, exc.message, ref)
        except PermissionDenied as exc:
            await self.error("forbidden", str(exc) or "Not allowed.", ref)
        except DatabaseError:
            # The socket stays up; nothing was stored (the service's transaction rolled back).
            logger.exception("database error handling a %s frame", content["type"])
            await self.error("server_error", "That could not be stored; please try again.", ref)
        except Exception:
            # Anything else (Redis down, a bug): the sender is told, never left without an answer.
            # Sending again with the same client_id is safe: a stored message is not stored twice.
            logger.exception("error handling a %s frame", content["type"])
            await self.error("server_error", "That could not be completed; please try again.", ref)

    async def chat_event(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])

    async def send_replay(self, *, chat_id: int, since: int, for_visitor: bool) -> None:
        """Send what the client missed after `since`, one page; `more` says if another follows
        (the client asks with `resume` from the last seq it got)."""
        messages = await database_sync_to_async(chat_selectors.messages_after)(
            chat_id=chat_id, after=since, for_visitor=for_visitor
        )
        for message in messages:
            await self.send_json(message_payload(message, for_visitor=for_visitor))
        last = since
        if messages:
            last_message = messages[-1]
            last = (last_message.public_seq if for_visitor else last_message.seq) or since
        elif since:
            # A resume point past the end (a client's bad or stale number): say where the chat
            # really ends, so that the client does not skip what comes next.
            last = await database_sync_to_async(chat_selectors.last_seq)(
                chat_id=chat_id, for_visitor=for_visitor, at_most=since
            )
        await self.send_json(
            {
                "type": "replay.done",
                "v": PROTOCOL_VERSION,
                "chat": chat_id,
                "last": last,
                "more": len(messages) >= settings.REPLAY_PAGE_SIZE,
            }
        )

    # --- Realtime hot path (chat.fanout, issue #8) -----------------------------------------
    @classmethod
    async def encode_json(cls, content: dict[str, Any]) -> str:
        try:
            return orjson.dumps(content).decode()
        except TypeError:  # a lone surrogate or an int beyond 64 bits echoed back: stdlib
            return json.dumps(content)

    async def send_json(self, content: dict[str, Any], close: bool = False) -> None:
        if content.get("type") == "message" and isinstance(content.get("seq"), int):
            sent = self.__dict__.setdefault("last_sent_seq", {})
            chat = content.get("chat")
            if content["seq"] > sent.get(chat, 0):
                sent[chat] = content["seq"]
        await super().send_json(content, close=close)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its per-message `close_old_connections` thread hop (every
        database call here goes through database_sync_to_async, which does that itself), and
        without live `message` events this socket already sent (after a resync's replay)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        if message["type"] == "chat.event":
            payload = message["payload"]
            if payload.get("type") == "message" and isinstance(payload.get("seq"), int):
                sent = self.__dict__.get("last_sent_seq", {})
                if payload["seq"] <= sent.get(payload.get("chat"), 0):
                    return
        await handler(message)

    async def layer_overrun(self, event: dict[str, Any]) -> None:
        """The channel layer had to drop events for this socket (its inbox overflowed, or Redis
        was lost): send what the database says instead, as a reconnect would."""
        await self.resync()

    async def resync(self) -> None:
        raise NotImplementedError


def _query_param(scope: dict[str, Any], name: str) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


def _since(value: Any) -> int:
    """A resume point: a whole number ≥ 0; anything else is treated as 0 (replay everything)."""
    if isinstance(value, bool):
        return 0
    try:
        return min(max(0, int(value)), MAX_INT)
    except (TypeError, ValueError):
        return 0


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
        message = await post_visitor_message_batched(
            chat_id=self.chat_id, text=values["text"], client_id=values.get("client_id")
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
        state = await database_sync_to_async(selectors.visitor_state)(chat=chat)
        await self.send_json({**state, "v": PROTOCOL_VERSION})
        since = self.__dict__.get("last_sent_seq", {}).get(self.chat_id, 0)
        await self.send_replay(chat_id=self.chat_id, since=since, for_visitor=True)


class ConsoleConsumer(ProtocolConsumer):
    """/ws/console/: an agent's queues, chats and presence, over the Django session."""

    handlers = {
        "subscribe": "on_subscribe",
        "resume": "on_subscribe",
        "message": "on_message",
        "take": "on_take",
        "end": "on_end",
        "presence": "on_presence",
        "read": "on_read",
        "queue": "on_queue",
        "escalate": "on_escalate",
        "escalation.options": "on_escalation_options",
        "offer.accept": "on_offer_accept",
        "offer.decline": "on_offer_decline",
        "ping": "on_ping",
    }
    agent: Agent

    async def connect(self) -> None:
        self.groups_joined: set[str] = set()
        self.previewing: set[int] = set()
        try:
            self.agent = await database_sync_to_async(selectors.get_agent_for_user)(
                self.scope["user"]
            )
        except PermissionDenied:
            await self.refuse()
            return
        await self.join(agent_group(self.agent.pk))
        for stage_id in await database_sync_to_async(selectors.served_stage_ids)(agent=self.agent):
            await self.join(stage_queue_group(stage_id))
        chat_ids = await database_sync_to_async(selectors.open_assignment_chat_ids)(
            agent=self.agent
        )
        for chat_id in chat_ids:
            await self.join(chat_agents_group(chat_id))
        await self.accept()
        await database_sync_to_async(services.mark_console_seen)(agent_id=self.agent.pk)
        state = await database_sync_to_async(selectors.console_state)(agent=self.agent)
        await self.send_json({**state, "v": PROTOCOL_VERSION})

    async def join(self, group: str) -> None:
        if group not in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.add(group)

    async def leave(self, group: str) -> None:
        if group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
            self.groups_joined.discard(group)

    async def disconnect(self, code: int) -> None:
        for group in list(getattr(self, "groups_joined", ())):
            await self.leave(group)
        if hasattr(self, "agent"):
            # The last sight of this tab: with no other tab open the agent is set offline
            # AGENT_GONE_SECONDS from now (escalation.tasks.sweep_gone_agents), not at once, so
            # that a reload or a dropped connection that comes back changes nothing.
            await database_sync_to_async(services.mark_console_seen)(agent_id=self.agent.pk)

    async def chat_event(self, event: dict[str, Any]) -> None:
        payload = event["payload"]
        kind = payload.get("type")
        chat_id = payload.get("chat")
        if kind in ("message", "chat.status") and (
            chat_agents_group(chat_id) not in self.groups_joined
        ):
            return  # already in the channel when this socket left the chat's group: drop it
        if kind in ("message", "chat.status") and chat_id in self.previewing:
            # Watching a chat this agent does not hold (it waited in its queue): stop as soon as
            # the agent may no longer see it, e.g. another agent took it.
            allowed = await database_sync_to_async(selectors.agent_may_view_chat)(
                agent=self.agent, chat_id=chat_id
            )
            if not allowed:
                self.previewing.discard(chat_id)
                await self.leave(chat_agents_group(chat_id))
                await self.send_json(
                    {
                        "type": "chat.removed",
                        "v": PROTOCOL_VERSION,
                        "chat": chat_id,
                        "reason": "no_longer_visible",
                    }
                )
                return
        if kind == "chat.assigned":
            self.previewing.discard(payload["chat"])
            await self.join(chat_agents_group(payload["chat"]))
        elif kind == "chat.removed":
            await self.leave(chat_agents_group(payload["chat"]))
        elif kind == "queue.changed":
            await self.refresh_queue_soon()
            return
        await self.send_json(payload)

    async def _may_view(self, chat_id: int) -> None:
        allowed = await database_sync_to_async(selectors.agent_may_view_chat)(
            agent=self.agent, chat_id=chat_id
        )
        if not allowed:
            raise FrameError("forbidden", "You cannot open this chat.")

    async def on_subscribe(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"chat": (int, True), "since": (int, False)})
        chat_id = values["chat"]
        await self._may_view(chat_id)
        held = await database_sync_to_async(selectors.open_assignment_chat_ids)(agent=self.agent)
        if chat_id not in held:
            self.previewing.add(chat_id)
        await self.join(chat_agents_group(chat_id))
        info = await database_sync_to_async(selectors.chat_info)(chat_id=chat_id)
        await self.send_json({**info, "v": PROTOCOL_VERSION})
        await self.send_replay(
            chat_id=chat_id, since=_since(values.get("since", 0)), for_visitor=False
        )

    async def on_message(self, content: dict[str, Any]) -> None:
        values = validate_frame(
            content,
            {
                "chat": (int, True),
                "text": (str, True),
                "client_id": (str, False),
                "internal": (bool, False),
            },
        )
        command = parse_command(values["text"])
        if command is not None:
            await self.run_command(values["chat"], command, values.get("client_id"))
            return
        message: Message = await post_agent_message_batched(
            chat_id=values["chat"],
            agent=self.agent,
            text=values["text"],
            internal=values.get("internal", False),
            client_id=values.get("client_id"),
        )
        await self.send_json(
            {
                "type": "ack",
                "v": PROTOCOL_VERSION,
                "chat": message.chat_id,
                "client_id": message.client_id,
                "seq": message.seq,
            }
        )

    async def on_take(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"chat": (int, True)})
        await database_sync_to_async(services.take_chat)(chat_id=values["chat"], agent=self.agent)
        self.previewing.discard(values["chat"])
        await self.join(chat_agents_group(values["chat"]))
        await self.send_json({"type": "taken", "v": PROTOCOL_VERSION, "chat": values["chat"]})

    async def on_offer_accept(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"offer": (int, True)})
        assignment = await database_sync_to_async(services.accept_offer)(
            offer_id=values["offer"], agent=self.agent
        )
        self.previewing.discard(assignment.chat_id)
        await self.join(chat_agents_group(assignment.chat_id))
        await self.send_json(
            {
                "type": "taken",
                "v": PROTOCOL_VERSION,
                "chat": assignment.chat_id,
                "offer": values["offer"],
            }
        )

    async def on_offer_decline(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"offer": (int, True)})
        await database_sync_to_async(services.decline_offer)(
            offer_id=values["offer"], agent=self.agent
        )

    async def on_end(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"chat": (int, True)})
        await database_sync_to_async(services.end_chat_by_agent)(
            chat_id=values["chat"], agent=self.agent
        )

    async def on_presence(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"presence": (str, True)})
        if values["presence"] not in Agent.Presence.values:
            raise FrameError("bad_frame", "Presence is one of: online, away, offline.")
        self.agent = await database_sync_to_async(services.set_presence)(
            agent=self.agent, presence=values["presence"]
        )

    async def on_read(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"chat": (int, True), "seq": (int, True)})
        await database_sync_to_async(services.mark_read)(
            chat_id=values["chat"], agent=self.agent, seq=values["seq"]
        )

    async def on_queue(self, content: dict[str, Any]) -> None:
        state = await off_loop(selectors.console_state)(agent=self.agent)
        await self.send_json(
            {
                "type": "queue",
                "v": PROTOCOL_VERSION,
                "items": state["queue"],
                "chats": state["chats"],
                "offers": state["offers"],
            }
        )

    async def on_ping(self, content: dict[str, Any]) -> None:
        await database_sync_to_async(services.mark_console_seen)(agent_id=self.agent.pk)
        await self.send_json({"type": "pong", "v": PROTOCOL_VERSION})

    async def run_command(self, chat_id: int, command: Command, client_id: str | None) -> None:
        """Slash commands: answered on this socket only, never stored in the transcript."""
        if command.name == "help":
            await self.send_json(
                {
                    "type": "command.result",
                    "v": PROTOCOL_VERSION,
                    "chat": chat_id,
                    "client_id": client_id,
                    "text": COMMANDS_HELP,
                }
            )
            return
        if command.name != "escalate":
            raise UnknownCommand(f"Unknown command /{command.name}. {COMMANDS_HELP}")
        await self.escalate(
            chat_id, command.keyword, command.rest, "", Escalation.RequestedBy.COMMAND, client_id
        )

    async def escalate(
        self,
        chat_id: int,
        keyword: str,
        note: str,
        reason: str,
        via: str,
        client_id: str | None = None,
    ) -> None:
        escalation = await off_loop(services.escalate_chat)(
            chat_id=chat_id,
            agent=self.agent,
            keyword=keyword,
            note=note,
            reason=reason,
            requested_by=via,
        )
        await self.leave(chat_agents_group(chat_id))
        await self.send_json(
            {
                "type": "escalated",
                "v": PROTOCOL_VERSION,
                "chat": chat_id,
                "client_id": client_id,
                "to": escalation.target_label,
                "text": f"Handed over to {escalation.target_label}. The visitor has been told.",
            }
        )

    async def on_escalate(self, content: dict[str, Any]) -> None:
        values = validate_frame(
            content,
            {
                "chat": (int, True),
                "target": (str, True),
                "note": (str, False),
                "reason": (str, False),
            },
        )
        await self.escalate(
            values["chat"],
            values["target"],
            values.get("note", ""),
            values.get("reason", ""),
            Escalation.RequestedBy.BUTTON,
        )

    async def on_escalation_options(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"chat": (int, True)})
        options = await database_sync_to_async(selectors.escalation_options_for)(
            agent=self.agent, chat_id=values["chat"]
        )
        await self.send_json({"type": "escalation.options", "v": PROTOCOL_VERSION, **options})

    async def resync(self) -> None:
        """After lost events: the groups of the chats this agent holds, each chat's messages
        after the last one sent, and fresh queue and chat lists."""
        await self.join(agent_group(self.agent.pk))
        for stage_id in await database_sync_to_async(selectors.served_stage_ids)(agent=self.agent):
            await self.join(stage_queue_group(stage_id))
        held = set(
            await database_sync_to_async(selectors.open_assignment_chat_ids)(agent=self.agent)
        )
        for chat_id in held:
            await self.join(chat_agents_group(chat_id))
        sent = self.__dict__.get("last_sent_seq", {})
        for group in sorted(self.groups_joined):
            if not group.startswith("chat."):
                continue
            chat_id = int(group.split(".")[1])
            if chat_id not in held and chat_id not in self.previewing:
                await self.leave(group)
                continue
            await self.send_replay(chat_id=chat_id, since=sent.get(chat_id, 0), for_visitor=False)
        await self.on_queue({})

    async def push_queue(self) -> None:
        """The queue list alone (a `queue` frame without `chats` and `offers`): what a queue change
        changes. The agent's own chats and offers have their own events, after which the page asks
        for full lists; reading only the queue halves the work a queue change costs per console."""
        items = await off_loop(selectors.queue_for_agent)(agent=self.agent, now=timezone.now())
        await self.send_json({"type": "queue", "v": PROTOCOL_VERSION, "items": items})

    async def refresh_queue_soon(self) -> None:
        """Send a fresh queue for a `queue.changed`, without holding up this socket's other events;
        changes that arrive while a refresh runs are covered by one more refresh after it."""
        self.queue_dirty = True
        task = getattr(self, "queue_refresh", None)
        if task is None or task.done():
            self.queue_refresh = asyncio.ensure_future(self._refresh_queue())

    async def _refresh_queue(self) -> None:
        try:
            while getattr(self, "queue_dirty", False):
                self.queue_dirty = False
                await self.push_queue()
        except Exception:  # the socket closed meanwhile: its next connect sends fresh lists
            logger.debug("queue refresh after close", exc_info=True)
