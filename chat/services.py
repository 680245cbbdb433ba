"""Writes to chats: creating them, numbering their messages, their status and their flow."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files import File
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from chat.attachments import CheckedUpload
from chat.attributes import Attributes, merge_attributes
from chat.events import send_messages_on_commit
from chat.exceptions import ChatNotFound, InvalidMessage, InvalidTransition
from chat.models import Attachment, ChatSession, FlowEvent, Message, attachment_storage
from chat.realtime.reads import Read, Row, columns, table

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


@dataclass(slots=True)
class NewMessage:
    """A checked message, ready to be numbered and stored in `chat` (its row locked)."""

    chat: ChatSession
    kind: str
    text: str
    author_id: int | None
    author_name: str
    client_id: str | None
    event: str = ""


# What posting reads and numbering writes, in the model's field order (as `from_db` wants them).
_CHAT_FIELDS = tuple(
    f.attname
    for f in ChatSession._meta.concrete_fields
    if f.attname in {"id", "status", "last_seq", "last_public_seq", "visitor_name"}
)


_LOCK_CHATS = (
    f"SELECT {columns(ChatSession, _CHAT_FIELDS)} FROM {table(ChatSession)} "  # noqa: S608 - names from the model; values bound
    'WHERE "id" = ANY(%s::bigint[]) ORDER BY "id" FOR UPDATE'
)


def lock_chats_read(chat_ids: Sequence[int]) -> Read[dict[int, ChatSession]]:
    """SELECT ... FOR UPDATE of many chats, in id order (the order every batch locks in), with
    the fields that posting reads and numbering writes. Inside a transaction."""
    ids = sorted(set(chat_ids))

    def query() -> QuerySet[ChatSession, tuple[Any, ...]]:
        return (
            ChatSession.objects.select_for_update()
            .filter(pk__in=ids)
            .order_by("pk")
            .values_list(*_CHAT_FIELDS)
        )

    def build(rows: list[Row]) -> dict[int, ChatSession]:
        return {row[0]: ChatSession.from_db("default", _CHAT_FIELDS, row) for row in rows}

    return Read(query if ids else None, build, _LOCK_CHATS, [ids])


def lock_chats(chat_ids: Sequence[int]) -> dict[int, ChatSession]:
    return lock_chats_read(chat_ids).run()


_MESSAGE_FIELDS = tuple(field.attname for field in Message._meta.concrete_fields)
_STORED = (
    f"SELECT {columns(Message, _MESSAGE_FIELDS)} FROM {table(Message)} "  # noqa: S608 - names from the model; values bound
    'WHERE "chat_id" = ANY(%s::bigint[]) AND "client_id" = ANY(%s::text[])'
)


def stored_by_client_id_read(
    pairs: Sequence[tuple[int, str | None]],
) -> Read[dict[tuple[int, str], Message]]:
    """Messages already stored under these (chat, client_id) pairs."""
    wanted = {(chat_id, client_id) for chat_id, client_id in pairs if client_id}
    chat_ids = sorted({chat_id for chat_id, _ in wanted})
    client_ids = sorted({client_id for _, client_id in wanted if client_id})

    def query() -> QuerySet[Message, tuple[Any, ...]]:
        return Message.objects.filter(chat_id__in=chat_ids, client_id__in=client_ids).values_list(
            *_MESSAGE_FIELDS
        )

    def build(rows: list[Row]) -> dict[tuple[int, str], Message]:
        found = [Message.from_db("default", _MESSAGE_FIELDS, row) for row in rows]
        return {
            (m.chat_id, m.client_id or ""): m for m in found if (m.chat_id, m.client_id) in wanted
        }

    return Read(query if wanted else None, build, _STORED, [chat_ids, client_ids])


def stored_by_client_id(pairs: Sequence[tuple[int, str | None]]) -> dict[tuple[int, str], Message]:
    return stored_by_client_id_read(pairs).run()


def append_messages(new: Sequence[NewMessage], *, publish: bool = True) -> list[Message]:
    """Number and store checked messages (their chats locked by the caller) and publish them
    after commit: each chat's messages take its next sequence numbers in order, and internal
    notes take no visitor-visible number (so the visitor's stream has no gaps either). With
    `publish` False the caller publishes them (once what they carry is stored too)."""
    if not new:
        return []
    now = timezone.now()
    touched: dict[int, ChatSession] = {}
    messages: list[Message] = []
    for item in new:
        chat = item.chat
        chat.last_seq += 1
        public_seq = None
        if item.kind != Message.Kind.INTERNAL:
            chat.last_public_seq += 1
            public_seq = chat.last_public_seq
        chat.updated_at = now
        touched[chat.pk] = chat
        messages.append(
            Message(
                chat_id=chat.pk,
                seq=chat.last_seq,
                public_seq=public_seq,
                kind=item.kind,
                event=item.event,
                author_id=item.author_id,
                author_name=item.author_name,
                text=item.text,
                client_id=item.client_id or None,
                created_at=now,
            )
        )
    if connection.vendor == "postgresql":
        _store_pg(messages, list(touched.values()), now)
    else:
        Message.objects.bulk_create(messages)
        ChatSession.objects.bulk_update(
            list(touched.values()), ["last_seq", "last_public_seq", "updated_at"]
        )
    if publish:
        send_messages_on_commit(messages)
    return messages


_CHATS = ChatSession._meta.db_table
_MESSAGES = Message._meta.db_table


def _store_pg(messages: list[Message], chats: list[ChatSession], now: datetime) -> None:
    """PostgreSQL: one INSERT and one UPDATE from arrays, sent together in one round trip
    (psycopg's pipeline mode) whatever the batch size, with no ORM compilation per batch (the
    realtime hot path)."""
    fields = ("chat_id", "seq", "public_seq", "kind", "event", "author_id", "author_name")
    columns = [[getattr(m, f) for m in messages] for f in (*fields, "text", "client_id")]
    connection.ensure_connection()
    raw = connection.connection
    # Server-side binding: the text never changes, so PostgreSQL prepares it after a few runs,
    # and the arrays are not spelled out as literals into the query (as Django's cursor does).
    with (
        connection.wrap_database_errors,
        psycopg.Cursor(raw) as insert,
        psycopg.Cursor(raw) as update,
    ):
        with raw.pipeline():
            insert.execute(
                f"INSERT INTO {_MESSAGES} "  # noqa: S608 - table names from the models; values bound
                "(chat_id, seq, public_seq, kind, event, author_id, author_name, text, "
                "client_id, created_at) "
                "SELECT c, s, p, k, e, a, n, t, i, %s FROM unnest(%s::bigint[], %s::integer[], "
                "%s::integer[], %s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[], "
                "%s::text[]) AS v(c, s, p, k, e, a, n, t, i) RETURNING id",
                [now, *columns],
            )
            update.execute(
                f"UPDATE {_CHATS} AS c SET last_seq = v.s, last_public_seq = v.p, "  # noqa: S608 - table names from the models; values bound
                "updated_at = %s "
                "FROM unnest(%s::bigint[], %s::integer[], %s::integer[]) AS v(id, s, p) "
                "WHERE c.id = v.id",
                [
                    now,
                    [c.pk for c in chats],
                    [c.last_seq for c in chats],
                    [c.last_public_seq for c in chats],
                ],
            )
        for message, (message_id,) in zip(messages, insert.fetchall(), strict=True):
            message.id = message_id


def append_message(
    *,
    chat: ChatSession,
    kind: str,
    text: str,
    author_id: int | None = None,
    author_name: str = "",
    event: str = "",
) -> Message:
    """Store one message (a chat's first, a system notice) and publish it after commit. Caller
    holds the chat row lock. Visitors' and agents' posts go through the posting rules instead
    (escalation.services.posting)."""
    [message] = append_messages(
        [NewMessage(chat, kind, clean_text(text), author_id, author_name, None, event)]
    )
    return message


def append_notice(*, chat: ChatSession, text: str, event: str) -> Message:
    """A system notice (agent joined, transfer, ...). Caller holds the chat row lock."""
    return append_message(chat=chat, kind=Message.Kind.SYSTEM, text=text, event=event)


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


def mark_visitors_seen(*, chat_ids: Sequence[int]) -> list[None]:
    """The visitors' pages of these chats are still there (one UPDATE for all of them)."""
    ChatSession.objects.filter(pk__in=set(chat_ids)).update(visitor_seen_at=timezone.now())
    return [None] * len(chat_ids)


ERASED_NAME = "(erased)"


def erase_chat_content(*, chat: ChatSession) -> int:
    """Delete the chat's messages, their files and the visitor's personal data (name, e-mail,
    browser context); keep the anonymous facts the reports count (status, times, stages, flow
    kinds). Returns how many messages were deleted. Caller holds the chat row lock; the chat is
    not open."""
    delete_attachments(chat=chat)
    deleted = chat.messages.all().delete()[1].get(Message._meta.label, 0)
    chat.visitor_name = ERASED_NAME
    chat.visitor_email = ""
    chat.visitor_context = {}
    chat.save(update_fields=["visitor_name", "visitor_email", "visitor_context", "updated_at"])
    for event in chat.flow.filter(data__has_key="note"):
        event.data = {**event.data, "note": ""}  # hand-over notes may quote the visitor
        event.save(update_fields=["data"])
    return deleted


@transaction.atomic
def set_visitor_attributes(*, chat_id: int, attributes: Attributes) -> Attributes:
    """The embedding page set custom attributes on its visitor's chat (merged; null removes).
    AttributesError past the limit, with nothing changed."""
    chat = lock_chat(chat_id=chat_id)
    context = dict(chat.visitor_context) if isinstance(chat.visitor_context, dict) else {}
    merged = merge_attributes(context.get("attributes"), attributes)
    context["attributes"] = merged
    chat.visitor_context = context
    chat.save(update_fields=["visitor_context", "updated_at"])
    return merged


def store_attachment(
    *, message: Message, upload: File[Any], checked: CheckedUpload, agent_user_id: int | None
) -> Attachment:
    """Store a checked file under a random name and its row, for `message` (just appended).
    The caller deletes the stored file if its transaction does not commit."""
    attachment = Attachment(
        chat_id=message.chat_id,
        message=message,
        uploader=Attachment.Uploader.VISITOR
        if agent_user_id is None
        else Attachment.Uploader.AGENT,
        agent_user_id=agent_user_id,
        name=checked.name,
        content_type=checked.content_type,
        size_bytes=checked.size,
        created_at=message.created_at,
    )
    upload.seek(0)
    attachment.file.save(f"upload{checked.extension}", upload, save=False)
    attachment.save()
    return attachment


def delete_stored_files(names: Sequence[str]) -> None:
    """Delete stored files by name; one that is already gone is no error."""
    storage = attachment_storage()
    for name in names:
        storage.delete(name)


def delete_attachments(*, chat: ChatSession) -> int:
    """Delete the chat's attachment rows now and their files once the transaction commits (a
    rollback keeps both). Returns how many."""
    names = list(Attachment.objects.filter(chat=chat).values_list("file", flat=True))
    Attachment.objects.filter(chat=chat).delete()
    if names:
        transaction.on_commit(lambda: delete_stored_files(names), robust=True)
    return len(names)
