"""Writes to chats: creating them, numbering their messages, their status and their flow."""

import re
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from chat.events import send_message_on_commit
from chat.exceptions import ChatClosed, ChatNotFound, InvalidMessage, InvalidTransition
from chat.models import ChatSession, FlowEvent, Message

_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def sanitize_text(text: str) -> str:
    """No NUL (PostgreSQL refuses it) and no lone surrogates (not encodable as UTF-8)."""
    return _LONE_SURROGATE.sub("\ufffd", text.replace("\x00", ""))


def clean_text(text: str) -> str:
    """Text as stored: no NUL (PostgreSQL refuses it), no lone surrogates (not encodable), trimmed.

    Raises InvalidMessage for empty or oversized text; everything else is kept as typed and is
    rendered as text, never as HTML, by every client.
    """
    if not isinstance(text, str):
        raise InvalidMessage("The message text must be a string.")
    text = sanitize_text(text).strip()
    if not text:
        raise InvalidMessage("The message is empty.")
    if len(text) > settings.MESSAGE_MAX_CHARS:
        raise InvalidMessage(
            f"The message is {len(text)} characters long; "
            f"the limit is {settings.MESSAGE_MAX_CHARS}."
        )
    return text


def lock_chat(*, chat_id: int) -> ChatSession:
    """SELECT ... FOR UPDATE: serialises every change to one chat. Call inside a transaction."""
    try:
        return ChatSession.objects.select_for_update().get(pk=chat_id)
    except ChatSession.DoesNotExist:
        raise ChatNotFound() from None


def create_chat(
    *, visitor_name: str, visitor_email: str, topic: str, visitor_context: dict[str, Any]
) -> ChatSession:
    chat = ChatSession.objects.create(
        visitor_name=visitor_name,
        visitor_email=visitor_email,
        topic=topic,
        visitor_context=visitor_context,
        visitor_seen_at=timezone.now(),
    )
    add_flow_event(chat=chat, kind=FlowEvent.Kind.CREATED, data={"topic": topic})
    return chat


def add_flow_event(
    *, chat: ChatSession, kind: str, actor: User | None = None, data: dict[str, Any] | None = None
) -> FlowEvent:
    return FlowEvent.objects.create(
        chat=chat, kind=kind, actor=actor, data=data or {}, at=timezone.now()
    )


def append_message(
    *,
    chat: ChatSession,
    kind: str,
    text: str,
    author: User | None = None,
    author_name: str = "",
    client_id: str | None = None,
    event: str = "",
) -> tuple[Message, bool]:
    """Store a message with the chat's next sequence number(s) and publish it after commit.

    Caller holds the chat row lock. A message whose client_id was already stored in this chat is
    returned as it is (created=False): a client that re-sends after a reconnect makes no duplicate.
    """
    if client_id:
        existing = Message.objects.filter(chat=chat, client_id=client_id).first()
        if existing is not None:
            return existing, False
    text = clean_text(text)
    chat.last_seq += 1
    public_seq = None
    if kind != Message.Kind.INTERNAL:
        chat.last_public_seq += 1
        public_seq = chat.last_public_seq
    chat.save(update_fields=["last_seq", "last_public_seq", "updated_at"])
    message = Message.objects.create(
        chat=chat,
        seq=chat.last_seq,
        public_seq=public_seq,
        kind=kind,
        event=event,
        author=author,
        author_name=author_name,
        text=text,
        client_id=client_id or None,
    )
    send_message_on_commit(message)
    return message, True


def append_notice(*, chat: ChatSession, text: str, event: str) -> Message:
    """A system notice (agent joined, transfer, ...). Caller holds the chat row lock."""
    message, _ = append_message(chat=chat, kind=Message.Kind.SYSTEM, text=text, event=event)
    return message


def change_status(*, chat: ChatSession, to: str) -> None:
    """Caller holds the chat row lock."""
    if not chat.can_transition_to(to):
        raise InvalidTransition(chat.status, to)
    chat.status = to
    fields = ["status", "updated_at"]
    if to not in ChatSession.OPEN_STATUSES:
        chat.ended_at = timezone.now()
        fields.append("ended_at")
    chat.save(update_fields=fields)


@transaction.atomic
def post_visitor_message(*, chat_id: int, text: str, client_id: str | None = None) -> Message:
    chat = lock_chat(chat_id=chat_id)
    if client_id:
        existing = Message.objects.filter(chat=chat, client_id=client_id).first()
        if existing is not None:
            return existing
    if not chat.is_open:
        raise ChatClosed()
    message, _ = append_message(
        chat=chat,
        kind=Message.Kind.VISITOR,
        text=text,
        author_name=chat.visitor_name,
        client_id=client_id,
    )
    return message


def mark_visitor_seen(*, chat_id: int) -> None:
    ChatSession.objects.filter(pk=chat_id).update(visitor_seen_at=timezone.now())


ERASED_NAME = "(erased)"


def erase_chat_content(*, chat: ChatSession) -> int:
    """Delete the chat's messages and the visitor's personal data (name, e-mail, browser context);
    keep the anonymous facts the reports count (status, times, stages, flow kinds). Returns how
    many messages were deleted. Caller holds the chat row lock; the chat is not open."""
    deleted, _ = chat.messages.all().delete()
    chat.visitor_name = ERASED_NAME
    chat.visitor_email = ""
    chat.visitor_context = {}
    chat.save(update_fields=["visitor_name", "visitor_email", "visitor_context", "updated_at"])
    for event in chat.flow.filter(data__has_key="note"):
        event.data = {**event.data, "note": ""}  # hand-over notes may quote the visitor
        event.save(update_fields=["data"])
    return deleted
