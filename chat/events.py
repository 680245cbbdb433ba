"""Realtime fan-out: the only module outside consumers that touches the channel layer.

Every chat has two groups: the agents' stream (every message, internal notes included, numbered
by `seq`) and the visitor's stream (visitor-visible messages only, numbered by `public_seq`, so
it has no gaps and leaks nothing). Events are sent after commit; the database is the truth and
clients resync from it by sequence number, so a lost event costs latency, never data.
"""

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chat.models import Message

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1


def chat_agents_group(chat_id: int) -> str:
    return f"chat.{chat_id}.agents"  # group names: ASCII letters, digits, hyphens, periods


def chat_visitor_group(chat_id: int) -> str:
    return f"chat.{chat_id}.visitor"


def agent_group(agent_id: int) -> str:
    return f"agent.{agent_id}"


def stage_queue_group(stage_id: int) -> str:
    return f"queue.{stage_id}"


def message_payload(message: Message, *, for_visitor: bool) -> dict[str, Any]:
    seq = message.public_seq if for_visitor else message.seq
    payload: dict[str, Any] = {
        "type": "message",
        "v": PROTOCOL_VERSION,
        "chat": message.chat_id,
        "seq": seq,
        "kind": message.kind,
        "event": message.event,
        "author": message.author_name,
        "text": message.text,
        "at": message.created_at.isoformat(),
        "client_id": message.client_id,
    }
    return payload


def _send_now(group: str, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        blocking = getattr(layer, "group_send_blocking", None)
        if (
            blocking is not None
        ):  # chat.realtime.fanout: publish from this thread, no event-loop hop
            blocking(group, {"type": "chat.event", "payload": payload})
        else:
            async_to_sync(layer.group_send)(group, {"type": "chat.event", "payload": payload})
    except Exception:
        # Best effort: the row is stored and clients resync by sequence number.
        logger.warning("group_send to %s failed", group, exc_info=True)


def send_event_on_commit(group: str, payload: dict[str, Any]) -> None:
    """Publish `payload` to `group` once the surrounding transaction commits (never before)."""
    payload = {"v": PROTOCOL_VERSION, **payload}  # serialise now: later changes must not leak
    transaction.on_commit(lambda: _send_now(group, payload), robust=True)


def send_message_on_commit(message: Message) -> None:
    send_event_on_commit(
        chat_agents_group(message.chat_id), message_payload(message, for_visitor=False)
    )
    if message.public_seq is not None:
        send_event_on_commit(
            chat_visitor_group(message.chat_id), message_payload(message, for_visitor=True)
        )


def message_events(message: Message) -> list[tuple[str, dict[str, Any]]]:
    """The (group, payload) pairs that publish one stored message."""
    events = [(chat_agents_group(message.chat_id), message_payload(message, for_visitor=False))]
    if message.public_seq is not None:
        events.append(
            (chat_visitor_group(message.chat_id), message_payload(message, for_visitor=True))
        )
    return events


def _send_many_now(events: list[tuple[str, dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    many = getattr(layer, "group_send_many_blocking", None)
    if many is None:
        for group, payload in events:
            _send_now(group, payload)
        return
    try:
        many([(group, {"type": "chat.event", "payload": payload}) for group, payload in events])
    except Exception:
        logger.warning("publishing %d events failed", len(events), exc_info=True)


def send_messages_on_commit(messages: list[Message]) -> None:
    """Publish many stored messages, in order, in one round trip once the transaction commits."""
    events = [event for message in messages for event in message_events(message)]
    if events:
        transaction.on_commit(lambda: _send_many_now(events), robust=True)
