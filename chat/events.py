"""The realtime contract: one frozen dataclass per kind of frame the server sends, and the one way
events are published (`send_event_on_commit`, after the transaction commits, never before).

Every chat has two groups: the agents' stream (every message, internal notes included, numbered
by `seq`) and the visitor's stream (visitor-visible messages only, numbered by `public_seq`, so
it has no gaps and leaks nothing). The events of a chat's stream carry that stream's number: a
message its own, a status change or an agent's removal the number of the last message before it.
A socket delivers a chat's events in that order, holding back one that arrives early until what
comes before it arrives or is read from the database (chat.consumers.protocol), so a status
change can never overtake the messages before it. The database is the truth; clients resync from
it by sequence number, so a lost event costs latency, never data.

docs/protocol.md documents every frame below; tests/chat/test_protocol_contract.py checks that
it does, and that every frame is exercised by a test.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chat.models import Message
from chat.selectors import attachment_info, message_attachment

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 3


def chat_agents_group(chat_id: int) -> str:
    return f"chat.{chat_id}.agents"  # group names: ASCII letters, digits, hyphens, periods


def chat_visitor_group(chat_id: int) -> str:
    return f"chat.{chat_id}.visitor"


def agent_group(agent_id: int) -> str:
    return f"agent.{agent_id}"


def stage_queue_group(stage_id: int) -> str:
    return f"queue.{stage_id}"


# The managers' live view (reporting.consumers) hears that something it shows changed, not what:
# it reads a fresh snapshot, at most about once a second however many changes arrive.
LIVE_GROUP = "live"
LIVE_CHANGED = "live.changed"


# --- Frames --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """A frame the server sends: its `type`, the protocol version `v`, and its fields."""

    type: ClassVar[str] = ""
    socket: ClassVar[str] = "both"  # which socket sends it: "visitor", "console" or "both"
    moves_live_view: ClassVar[bool] = False  # publishing it also tells the live view (LIVE_GROUP)

    def to_dict(self) -> dict[str, Any]:
        data = {"type": self.type, "v": PROTOCOL_VERSION}
        for field in fields(self):
            data[field.name] = getattr(self, field.name)
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class Event(Frame):
    """A frame published through the channel layer to a group (the others are replies)."""


# Events of a chat's stream, in sequence order ----------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class MessagePosted(Event):
    type = "message"
    chat: int
    seq: int
    kind: str
    event: str
    author: str
    text: str
    at: str
    client_id: str | None
    # A file the message carries (event "attachment"): its name, size, type, whether it is an
    # image, and the link to it for this stream (signed for the visitor). Left out of the frame
    # for the others (most messages), which stay as they were.
    attachment: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = Frame.to_dict(self)
        if data["attachment"] is None:
            del data["attachment"]
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatStatus(Event):
    """The chat ended (`by` the agent, the visitor, a timeout or fallback, or the visitor's page
    going silent), after message `seq`."""

    type = "chat.status"
    chat: int
    seq: int
    status: str
    by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRemoved(Event):
    """The agent no longer holds the chat (resolved, escalated, returned, visitor left ...), after
    message `seq`: the console shows everything up to it, then the chat as handed over or ended."""

    type = "chat.removed"
    socket = "console"
    moves_live_view = True
    chat: int
    seq: int
    reason: str
    handed_over_to: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Typing(Event):
    """The other side is typing (or stopped). Never stored; not sent for internal notes."""

    type = "typing"
    chat: int
    who: str  # "visitor" or "agent"
    name: str
    active: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatTags(Event):
    """The chat's tags changed (all of them, in list order; `by`: the agent who changed them).
    Not part of the message stream: a later one replaces an earlier one."""

    type = "chat.tags"
    socket = "console"
    chat: int
    tags: list[dict[str, Any]]  # {"id", "name"}
    by: str


# The agent's own events ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class ChatAssigned(Event):
    type = "chat.assigned"
    socket = "console"
    moves_live_view = True
    chat: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PresenceChanged(Event):
    type = "presence"
    socket = "console"
    moves_live_view = True
    presence: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferMade(Event):
    type = "offer"
    socket = "console"
    moves_live_view = True
    offer: int
    chat: int
    policy: str
    visitor: str
    topic: str
    stage: str
    tier: str
    team: str
    tier_path: list[str]
    note: str
    handover: dict[str, Any] | None
    waiting_since: str
    waited_seconds: int
    offered_at: str
    deadline: str | None
    accept_seconds: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferClosed(Event):
    type = "offer.closed"
    socket = "console"
    moves_live_view = True
    offer: int
    chat: int
    status: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsultChanged(Event):
    """A consult on a chat opened, was answered or closed: to the agent who asked, and to the
    colleague (or the group's members). Not part of the message stream: the thread's messages
    are the chat's internal messages with event "consult"; a later one of these replaces an
    earlier one."""

    type = "consult"
    socket = "console"
    consult: int
    chat: int
    status: str  # "open" or "closed"
    asked_by: str
    asked_by_id: int
    to: str  # the colleague's or the group's name
    agent_id: int | None  # the colleague asked, or None for a group
    group_id: int | None
    answered_by: str | None
    answered_by_id: int | None
    question: str
    visitor: str
    topic: str
    reason: str  # why it closed: "closed", "chat_ended", "handed_over"; "" while open
    closed_by: str
    at: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoverOffered(Event):
    """A chat whose agent stays in it until a receiver comes (a warm escalation, or a hand to a
    colleague) is offered to you: accept to join it (warm) or to take it (cold), or decline."""

    type = "handover.offer"
    socket = "console"
    handover: int
    chat: int
    warm: bool
    visitor: str
    topic: str
    from_agent: str
    to: str
    tier_path: list[str]
    reason: str
    note: str
    deadline: str
    accept_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoverOfferClosed(Event):
    type = "handover.offer.closed"
    socket = "console"
    handover: int
    chat: int
    status: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoverChanged(Event):
    """Where a hand-over stands, for its first agent and its receiver (each of their consoles):
    a later status replaces an earlier one (pending, then joined, then one final status)."""

    type = "handover"
    socket = "console"
    moves_live_view = True  # a receiver who joins counts against their capacity
    handover: int
    chat: int
    status: str
    warm: bool
    from_agent: str
    from_agent_id: int
    receiver: str
    receiver_id: int | None
    to: str
    deadline: str
    text: str


# Queues: deltas, computed once per change ---------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class QueueItemAdded(Event):
    """A chat joined a stage's queue: `item` as in the `queue` list. Consoles place it by its
    order key (priority, then waiting since, then entry) among the items they show."""

    type = "queue.item.added"
    socket = "console"
    moves_live_view = True
    item: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueItemRemoved(Event):
    """A chat left a stage's queue (`reason`: taken, timed_out, abandoned, left, ended)."""

    type = "queue.item.removed"
    socket = "console"
    moves_live_view = True
    chat: int
    stage_id: int
    entry: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuePosition(Event):
    type = "queue.position"
    socket = "visitor"
    chat: int
    position: int
    estimate: dict[str, int] | None
    text: str


# Replies on one socket ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class VisitorHello(Frame):
    type = "hello"
    socket = "visitor"
    chat: int
    status: str
    visitor: str
    topic: str
    last_seq: int
    queue: dict[str, Any] | None
    agent: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleHello(Frame):
    type = "hello"
    socket = "console"
    agent: dict[str, Any]
    queue: list[dict[str, Any]]
    chats: list[dict[str, Any]]
    offers: list[dict[str, Any]]
    handovers: list[dict[str, Any]]  # `handover.offer` frames and `handover` states of yours


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueLists(Frame):
    """Fresh lists: on request, and on a resync (a console that fell behind)."""

    type = "queue"
    socket = "console"
    items: list[dict[str, Any]]
    chats: list[dict[str, Any]]
    offers: list[dict[str, Any]]
    handovers: list[dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatInfo(Frame):
    type = "chat.info"
    socket = "console"
    chat: int
    status: str
    visitor: str
    email: str
    topic: str
    context: dict[str, Any]
    details: dict[str, Any]
    created_at: str
    stage: str | None
    agent: str | None
    agent_id: int | None
    tier_path: list[str]
    last_seq: int
    handover: dict[str, Any] | None
    flow: list[dict[str, Any]]
    held: bool
    tags: list[dict[str, Any]]  # the chat's: {"id", "name"}
    tag_choices: list[dict[str, Any]]  # the tags agents may add
    requires_tag: bool  # its stage asks for a tag before it is ended
    # The chat's open consult, if this agent asked it or is asked in it (as a `consult` frame's
    # fields, and `role`: "asker" or "consultant"); None otherwise.
    consult: dict[str, Any] | None = None
    handover_state: dict[str, Any] | None  # the open hand-over (`handover` frame, with `role`)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayDone(Frame):
    type = "replay.done"
    chat: int
    last: int
    more: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack(Frame):
    type = "ack"
    client_id: str | None
    seq: int
    chat: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Taken(Frame):
    type = "taken"
    socket = "console"
    chat: int
    offer: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Escalated(Frame):
    type = "escalated"
    socket = "console"
    chat: int
    client_id: str | None
    to: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationOptions(Frame):
    type = "escalation.options"
    socket = "console"
    chat: int
    options: list[dict[str, Any]]
    reasons: list[str]
    colleagues: list[dict[str, Any]]  # hand to a colleague: who, or [] where it is off
    colleague_modes: list[str]  # "cold", "warm" as the stage allows


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsultOptions(Frame):
    """Whom the holder of `chat` may consult: online colleagues and every group (with how many
    of its members are online besides the asker)."""

    type = "consult.options"
    socket = "console"
    chat: int
    colleagues: list[dict[str, Any]]  # {"id", "name", "handle"}
    groups: list[dict[str, Any]]  # {"id", "name", "handle", "online"}


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandResult(Frame):
    type = "command.result"
    socket = "console"
    chat: int
    client_id: str | None
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong(Frame):
    type = "pong"


@dataclass(frozen=True, slots=True, kw_only=True)
class Error(Frame):
    type = "error"
    code: str
    message: str
    ref: str | int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "type": self.type,
            "v": PROTOCOL_VERSION,
            "code": self.code,
            "message": self.message,
        }
        if self.ref is not None:
            data["ref"] = self.ref
        return data


def frame_classes() -> list[type[Frame]]:
    """Every kind of frame the server sends (the protocol's contract test walks them)."""
    found: list[type[Frame]] = []
    todo: list[type[Frame]] = [Frame]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        # A slots dataclass is a new class: the one it replaced is a stale subclass, skipped.
        if cls.__dict__.get("type") and "__slots__" in cls.__dict__:
            found.append(cls)
    return sorted(set(found), key=lambda cls: (cls.type, cls.__name__))


# --- Publishing -----------------------------------------------------------------------------------
def message_event(message: Message, *, for_visitor: bool) -> MessagePosted:
    attachment = message_attachment(message)
    return MessagePosted(
        chat=message.chat_id,
        seq=(message.public_seq if for_visitor else message.seq) or 0,
        kind=message.kind,
        event=message.event,
        author=message.author_name,
        text=message.text,
        at=message.created_at.isoformat(),
        client_id=message.client_id,
        attachment=attachment_info(attachment, for_visitor=for_visitor) if attachment else None,
    )


def message_payload(message: Message, *, for_visitor: bool) -> dict[str, Any]:
    return message_event(message, for_visitor=for_visitor).to_dict()


def _publish(events: list[tuple[str, dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    if layer is None or not events:
        return
    messages = [(group, {"type": "chat.event", "payload": payload}) for group, payload in events]
    try:
        many = getattr(layer, "group_send_many_blocking", None)
        if many is not None:  # the fan-out layer: one round trip, from this thread
            many(messages)
            return
        for group, message in messages:
            async_to_sync(layer.group_send)(group, message)
    except Exception:
        # Best effort: the rows are stored and clients resync by sequence number.
        logger.warning("publishing %d events failed", len(events), exc_info=True)


Listener = Callable[[str, "Event"], None]
_listener: ContextVar[Listener | None] = ContextVar("event_listener", default=None)


@contextmanager
def delivered_in_process(listener: Listener) -> Iterator[None]:
    """Inside this block events go to `listener(group, event)` after commit instead of the
    channel layer, and stored messages are published nowhere.

    For writing history that nobody watches live (the demo's replay of past days, see
    escalation.demo_history): its simulated consoles and pages react to the events as real ones
    would. Through the channel layer, 90 days of history are some 8,000 publishes to nobody
    (0.4 to 0.75 ms each on the embedded layer: a sixth of the replay) and, with Redis, events
    of weeks ago on any console that is open. Everything else the services do stays the same."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def send_event_on_commit(group: str, event: Event) -> None:
    """Publish `event` to `group` once the surrounding transaction commits (never before)."""
    if not isinstance(event, Event):
        raise TypeError(f"not a realtime event: {event!r}")
    listener = _listener.get()
    if listener is not None:
        transaction.on_commit(lambda: listener(group, event), robust=True)
        return
    payload = event.to_dict()  # serialise now: later changes must not leak
    events = [(group, payload)]
    if event.moves_live_view:
        events.append((LIVE_GROUP, {"type": LIVE_CHANGED}))  # in the same round trip
    transaction.on_commit(lambda: _publish(events), robust=True)


def message_events(message: Message) -> list[tuple[str, dict[str, Any]]]:
    """The (group, payload) pairs that publish one stored message."""
    events = [(chat_agents_group(message.chat_id), message_payload(message, for_visitor=False))]
    if message.public_seq is not None:
        events.append(
            (chat_visitor_group(message.chat_id), message_payload(message, for_visitor=True))
        )
    return events


def send_messages_on_commit(messages: list[Message]) -> None:
    """Publish many stored messages, in order, in one round trip once the transaction commits."""
    if _listener.get() is not None:
        return  # delivered_in_process: nobody reads these messages live
    events = [event for message in messages for event in message_events(message)]
    if events:
        transaction.on_commit(lambda: _publish(events), robust=True)


async def publish_now(group: str, event: Typing) -> None:
    """Publish an event that nothing stores (typing), from a consumer: there is no transaction
    to wait for, and losing one costs nothing (the next replaces it)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(group, {"type": "chat.event", "payload": event.to_dict()})
    except Exception:
        logger.warning("publishing %s to %s failed", event.type, group, exc_info=True)
