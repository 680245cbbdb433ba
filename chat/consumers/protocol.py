"""What both websocket consumers share: frame validation, the per-socket rate limit, error
frames, replay from the database by sequence number, and the path posts take to storage.

The protocol (frame types, error codes, close codes) is in docs/protocol.md.
"""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

import orjson
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError

from chat import selectors as chat_selectors
from chat import services as chat_services
from chat.consumers.streams import SEQUENCED, ChatStream
from chat.events import PROTOCOL_VERSION, Ack, Error, Frame, ReplayDone, message_payload
from chat.exceptions import ChatError
from chat.models import Message
from chat.realtime import jsonlimits
from chat.realtime.writer import writer_for
from escalation import services

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
    """JSON frames with a `type`; every bad frame gets an error frame, never a crash. Each chat
    the socket follows has a `ChatStream`: its events leave in sequence order, exactly once."""

    handlers: dict[str, str] = {}
    max_rejections = 50
    for_visitor = False  # which of a chat's streams this socket follows (visitor or agents')

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        self.protocol = _protocol(self.scope)
        self.bucket = TokenBucket(rate=settings.WS_FRAMES_PER_SECOND, burst=settings.WS_FRAME_BURST)
        self.rejections = 0
        self.streams: dict[int, ChatStream] = {}
        self.repairs: dict[int, asyncio.TimerHandle] = {}
        await super().websocket_connect(message)

    async def refuse(self, code: int = CLOSE_FORBIDDEN) -> None:
        # Accept first so that the client sees our close code, not a bare HTTP 403.
        await self.accept()
        await self.close(code=code)

    async def send_frame(self, frame: Frame) -> None:
        await self.send_json(frame.to_dict())

    async def error(self, code: str, message: str, ref: Any = None) -> None:
        if not isinstance(ref, str | int) or isinstance(ref, bool):
            ref = None
        await self.send_frame(Error(code=code, message=message, ref=ref))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if getattr(self, "closing", False):
            return
        try:
            await self.handle_frame(text_data)
        except Exception:
            # Whatever happens, the sender gets an answer and the socket lives on (an exception
            # out of here would close it with 1011 and skip `disconnect`, leaving its groups).
            logger.exception("error reading a frame")
            await self.error("server_error", "That could not be completed; please try again.")

    async def may_act(self, frame_type: str) -> bool:
        """Whether the socket may still act (a console re-checks its agent); False: closed."""
        return True

    async def shut(self, code: int) -> None:
        """Close from our side: leave every group first, so that no event is sent to a socket
        that is going (the disconnect that follows finds nothing left to do)."""
        self.closing = True
        await self.leave_groups()
        await self.close(code=code)

    async def leave_groups(self) -> None:
        """Leave the channel-layer groups this socket joined."""

    async def send_json(self, content: dict[str, Any], close: bool = False) -> None:
        if getattr(self, "closing", False):
            return  # closed by us: late events are dropped here, not sent to a closed protocol
        await super().send_json(content, close=close)

    async def handle_frame(self, text_data: str | None) -> None:
        if not self.bucket.take():
            self.rejections += 1
            if self.rejections > self.max_rejections:
                await self.shut(CLOSE_FLOODING)
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
            content = jsonlimits.loads(text_data, max_depth=settings.JSON_MAX_DEPTH)
        except jsonlimits.JsonTooDeep:
            await self.error(
                "bad_json", f"The frame nests deeper than {settings.JSON_MAX_DEPTH} levels."
            )
            return
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
            if not await self.may_act(content["type"]):
                return
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

    # --- A chat's stream: in order, exactly once, gaps repaired from the database ------------
    async def chat_event(self, event: dict[str, Any]) -> None:
        payload = event["payload"]
        if payload.get("type") in SEQUENCED:
            await self.sequenced(payload)
        else:
            await self.send_json(payload)

    async def sequenced(self, payload: dict[str, Any]) -> None:
        """A numbered event of a chat: through that chat's stream, if the socket follows it."""
        chat_id = payload.get("chat")
        stream = self.streams.get(chat_id) if isinstance(chat_id, int) else None
        if stream is None or not isinstance(chat_id, int):
            await self.unfollowed(payload)
            return
        await self.deliver(chat_id, stream.push(payload))
        self.watch_gap(chat_id)

    async def unfollowed(self, payload: dict[str, Any]) -> None:
        """A numbered event of a chat this socket does not follow (any more)."""

    async def deliver(self, chat_id: int, frames: list[dict[str, Any]]) -> None:
        for frame in frames:
            await self.send_json(frame)

    async def acknowledge(self, message: Message) -> None:
        """Tell the sender that its message is stored. Protocol 3: the stored message itself,
        on the sender's own stream, is the acknowledgement (it carries the `client_id`), and the
        same event arriving through the channel layer is then skipped as delivered: one frame to
        the sender instead of two (a consumer handles one frame or event at a time, so that event
        comes after this; a gap repair running meanwhile may deliver it first, and then the
        sender gets it and an `ack`, harmless). Protocol 2, a chat this socket does not follow,
        or a message this socket was already sent (its client_id sent again): `ack`."""
        seq = message.public_seq if self.for_visitor else message.seq
        stream = self.streams.get(message.chat_id)
        last = stream.last if stream is not None else None
        if self.protocol >= 3 and stream is not None and last is not None and (seq or 0) > last:
            payload = message_payload(message, for_visitor=self.for_visitor)
            await self.deliver(message.chat_id, stream.push(payload))
            self.watch_gap(message.chat_id)
            return
        await self.send_frame(Ack(chat=message.chat_id, client_id=message.client_id, seq=seq or 0))

    def follow(self, chat_id: int, last: int | None) -> ChatStream:
        stream = self.streams.get(chat_id)
        if stream is None:
            stream = self.streams[chat_id] = ChatStream(last)
        return stream

    def unfollow(self, chat_id: int) -> None:
        self.streams.pop(chat_id, None)
        handle = self.repairs.pop(chat_id, None)
        if handle is not None:
            handle.cancel()

    def watch_gap(self, chat_id: int) -> None:
        """If the chat's stream holds events back, fill the gap from the database unless it
        closes by itself within GAP_REPAIR_SECONDS."""
        stream = self.streams.get(chat_id)
        if stream is None or stream.gap is None or chat_id in self.repairs:
            return
        loop = asyncio.get_running_loop()
        self.repairs[chat_id] = loop.call_later(
            settings.GAP_REPAIR_SECONDS,
            lambda: self.repair_tasks.add(loop.create_task(self.repair(chat_id))),
        )

    @property
    def repair_tasks(self) -> set[asyncio.Task[None]]:
        tasks: set[asyncio.Task[None]] = self.__dict__.setdefault("_repair_tasks", set())
        for task in [t for t in tasks if t.done()]:
            tasks.discard(task)
        return tasks

    async def repair(self, chat_id: int) -> None:
        self.repairs.pop(chat_id, None)
        stream = self.streams.get(chat_id)
        if stream is None or stream.gap is None:
            return
        after, _ = stream.gap
        try:
            messages = await database_sync_to_async(chat_selectors.messages_after)(
                chat_id=chat_id, after=after, for_visitor=self.for_visitor
            )
            frames = [message_payload(m, for_visitor=self.for_visitor) for m in messages]
            out = [frame for message in frames for frame in stream.push(message)]
            if stream.gap is not None and stream.gap[0] == after:
                # The database has nothing to fill it with (cannot happen: messages are stored
                # before they are published): deliver what is held rather than hold it forever.
                logger.warning("chat %s: gap after seq %s not in the database", chat_id, after)
                out += stream.release_all()
            await self.deliver(chat_id, out)
            self.watch_gap(chat_id)
        except Exception:  # the socket closed meanwhile, or the database is away: retry later
            logger.warning("gap repair for chat %s failed", chat_id, exc_info=True)
            if chat_id in self.streams:
                self.watch_gap(chat_id)

    async def send_replay(self, *, chat_id: int, since: int) -> None:
        """Send what the client missed after `since`, one page; `more` says if another follows
        (the client asks with `resume` from the last seq it got). Messages the stream already
        delivered are sent again (the client asked for them); newer ones go through the stream,
        so that nothing is sent twice."""
        for_visitor = self.for_visitor
        messages = await database_sync_to_async(chat_selectors.messages_after)(
            chat_id=chat_id, after=since, for_visitor=for_visitor
        )
        stream = self.follow(chat_id, None)
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
        frames = [message_payload(m, for_visitor=for_visitor) for m in messages]
        if stream.last is None:
            # A stale number past the end starts the stream at the chat's real end.
            out = stream.start(last if not messages and since else since)
        else:
            out = [frame for frame in frames if frame["seq"] <= stream.last]  # asked again
        for frame in frames:
            if stream.last is None or frame["seq"] > stream.last:
                out += stream.push(frame)
        await self.deliver(chat_id, out)
        more = len(messages) >= settings.REPLAY_PAGE_SIZE
        await self.send_frame(ReplayDone(chat=chat_id, last=last, more=more))
        self.watch_gap(chat_id)

    # --- Realtime hot path (chat.realtime.fanout) -------------------------------------------
    @classmethod
    async def encode_json(cls, content: dict[str, Any]) -> str:
        try:
            return orjson.dumps(content).decode()
        except TypeError:  # a lone surrogate or an int beyond 64 bits echoed back: stdlib
            return json.dumps(content)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its per-message `close_old_connections` thread hop (every
        database call here goes through database_sync_to_async, which does that itself)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def layer_overrun(self, event: dict[str, Any]) -> None:
        """The channel layer had to drop events for this socket (its inbox overflowed, or Redis
        was lost): send what the database says instead, as a reconnect would."""
        await self.resync()

    async def resync(self) -> None:
        raise NotImplementedError

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        for chat_id in list(getattr(self, "streams", {})):
            self.unfollow(chat_id)
        await super().websocket_disconnect(message)


def _query_param(scope: dict[str, Any], name: str) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


def _protocol(scope: dict[str, Any]) -> int:
    """The protocol version the page speaks: `v` in the socket's address (`?v=3`); without it
    (pages loaded before version 3, still open during an upgrade), version 2."""
    value = _query_param(scope, "v") or ""
    digits = value.isascii() and value.isdigit()  # not "²", which isdigit() takes
    return PROTOCOL_VERSION if digits and int(value[:4]) >= PROTOCOL_VERSION else 2


def _since(value: Any) -> int:
    """A resume point: a whole number ≥ 0; anything else is treated as 0 (replay everything)."""
    if isinstance(value, bool):
        return 0
    try:
        return min(max(0, int(value)), MAX_INT)
    except (TypeError, ValueError):
        return 0


def _visitors_seen(chat_ids: Sequence[int]) -> list[None]:
    return chat_services.mark_visitors_seen(chat_ids=chat_ids)


def _consoles_seen(agent_ids: Sequence[int]) -> list[None]:
    return services.mark_consoles_seen(agent_ids=agent_ids)


def _coalescing() -> bool:
    """The coalescing writer runs on PostgreSQL (one more SQLite writer thread would only add
    "database is locked" waits in the embedded default)."""
    # From the settings, not `connection.vendor`: on a socket's task that would create a
    # database connection object for that task, kept for as long as the socket is open.
    engine = settings.DATABASES["default"]["ENGINE"]
    return bool(settings.REALTIME_BATCH_WRITES) and "postgresql" in engine


async def mark_seen(*, visitor_chat: int | None = None, console_agent: int | None = None) -> None:
    """Still-here marks (a ping, a connect, a disconnect) through the coalescing writer: the
    marks of the moment share one UPDATE, on the writer's thread, not the thread the sockets'
    other database work shares; the caller goes on once its mark is stored."""
    marks: list[tuple[str, Callable[[Sequence[int]], list[None]], int | None]] = [
        ("visitors-seen", _visitors_seen, visitor_chat),
        ("consoles-seen", _consoles_seen, console_agent),
    ]
    for name, write, key in marks:
        if key is None:
            continue
        if _coalescing():
            await writer_for(name, write, may_retry=_always).submit(key)
        else:
            await database_sync_to_async(write)([key])


def _always(mark: int) -> bool:
    return True  # a still-here mark is the same UPDATE twice


def _has_client_id(post: services.Post) -> bool:
    return bool(post.client_id)  # found again after a lost COMMIT, not stored twice


async def store_post(post: services.Post) -> Message:
    """Store a visitor's or agent's post: through the process's coalescing writer (concurrent
    posts share one transaction) on PostgreSQL, else as a batch of one."""
    if _coalescing():
        message: Message = await writer_for(
            "posts", services.post_messages, may_retry=_has_client_id
        ).submit(post)
        return message
    stored: Message = await database_sync_to_async(services.post_message)(post)
    return stored
