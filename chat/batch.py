"""Many messages in one transaction: the realtime hot path's writes (see chat.writer).

The per-message services (`chat.services.post_visitor_message`,
`escalation.services.post_agent_message`) lock one chat, read, write and commit: five to eight
round trips and a commit (a WAL flush) per message. Here a batch of posts, from any number of
sockets and chats, takes the same row locks (all chats in id order, then their routes), runs the
same checks per post, numbers each chat's messages contiguously in arrival order, and writes with
one INSERT, one UPDATE and one commit. Every post gets its own result: the stored message, or the
exception the per-message service would have raised (nothing of that post is stored).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from chat.events import send_messages_on_commit
from chat.exceptions import ChatClosed, ChatNotFound
from chat.models import ChatSession, Message
from chat.services import clean_text

Result = Message | Exception


@dataclass
class NewMessage:
    """A checked post, ready to be numbered and stored in `chat`."""

    chat: ChatSession
    kind: str
    text: str
    author: User | None
    author_name: str
    client_id: str | None


@dataclass
class VisitorPost:
    chat_id: int
    text: str
    client_id: str | None = None


def lock_chats(chat_ids: Sequence[int]) -> dict[int, ChatSession]:
    """SELECT ... FOR UPDATE of every chat, in id order (the order every batch locks in)."""
    chats = ChatSession.objects.select_for_update().filter(pk__in=set(chat_ids)).order_by("pk")
    return {chat.pk: chat for chat in chats}


def stored_by_client_id(pairs: Sequence[tuple[int, str | None]]) -> dict[tuple[int, str], Message]:
    """Messages already stored under these (chat, client_id) pairs."""
    wanted = {(chat_id, client_id) for chat_id, client_id in pairs if client_id}
    if not wanted:
        return {}
    rows = Message.objects.filter(
        chat_id__in={chat_id for chat_id, _ in wanted},
        client_id__in={client_id for _, client_id in wanted},
    )
    return {
        (m.chat_id, m.client_id): m
        for m in rows
        if m.client_id is not None and (m.chat_id, m.client_id) in wanted
    }


def append_many(new: Sequence[NewMessage]) -> list[Message]:
    """Number and store checked posts (their chats locked by the caller), publish after commit."""
    now = timezone.now()
    messages: list[Message] = []
    touched: dict[int, ChatSession] = {}
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
                chat=chat,
                seq=chat.last_seq,
                public_seq=public_seq,
                kind=item.kind,
                author=item.author,
                author_name=item.author_name,
                text=item.text,
                client_id=item.client_id or None,
                created_at=now,
            )
        )
    if not messages:
        return []
    Message.objects.bulk_create(messages)
    # One statement, pipelined by psycopg (Django's bulk_update builds a CASE per row and costs
    # more than the rest of the batch together).
    table = ChatSession._meta.db_table
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET last_seq = %s, last_public_seq = %s, updated_at = %s "  # noqa: S608
            "WHERE id = %s",
            [(c.last_seq, c.last_public_seq, now, c.pk) for c in touched.values()],
        )
    send_messages_on_commit(messages)
    return messages


def run_batch(
    posts: Sequence[Any],
    check: Callable[[Sequence[Any], list[Result | None]], list[tuple[int, NewMessage]]],
    single: Callable[[Any], Message],
) -> list[Result]:
    """One transaction for the batch: `check` fills in results it can decide (duplicates,
    refusals) and returns the posts to store; if the transaction fails as a whole (a deadlock, a
    constraint), every post is retried alone with `single`, so one bad post costs only itself."""
    results: list[Result | None] = [None] * len(posts)
    try:
        with transaction.atomic():
            to_store = check(posts, results)
            stored = append_many([item for _, item in to_store])
            for (index, _), message in zip(to_store, stored, strict=True):
                results[index] = message
    except Exception:
        results = [None] * len(posts)
        for index, post in enumerate(posts):
            try:
                results[index] = single(post)
            except Exception as exc:
                results[index] = exc
    return [r if r is not None else RuntimeError("post not processed") for r in results]


def check_visitor_post(
    index: int,
    post: VisitorPost,
    chat: ChatSession | None,
    stored: dict[tuple[int, str], Message],
    pending: dict[tuple[int, str], int],
    results: list[Result | None],
    to_store: list[tuple[int, NewMessage]],
) -> None:
    """`post_visitor_message`'s rules for one post of a batch (its chat locked)."""
    key = (post.chat_id, post.client_id or "")
    if chat is None:
        results[index] = ChatNotFound()
    elif post.client_id and key in stored:
        results[index] = stored[key]
    elif post.client_id and key in pending:
        results[index] = _Same(pending[key])
    elif not chat.is_open:
        results[index] = ChatClosed()
    else:
        try:
            text = clean_text(post.text)
        except Exception as exc:
            results[index] = exc  # InvalidMessage, for this post only
            return
        if post.client_id:
            pending[key] = index
        new = NewMessage(chat, Message.Kind.VISITOR, text, None, chat.visitor_name, post.client_id)
        to_store.append((index, new))


def check_visitor_posts(
    posts: Sequence[VisitorPost], results: list[Result | None]
) -> list[tuple[int, NewMessage]]:
    chats = lock_chats([p.chat_id for p in posts])
    stored = stored_by_client_id([(p.chat_id, p.client_id) for p in posts])
    to_store: list[tuple[int, NewMessage]] = []
    pending: dict[tuple[int, str], int] = {}  # a client_id sent twice within this batch
    for index, post in enumerate(posts):
        check_visitor_post(index, post, chats.get(post.chat_id), stored, pending, results, to_store)
    return to_store


class _Same(Exception):
    """Placeholder: this post repeats the client_id of post `index` in the same batch."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def resolve_repeats(results: list[Result]) -> list[Result]:
    return [results[r.index] if isinstance(r, _Same) else r for r in results]


def single_visitor_post(post: VisitorPost) -> Message:
    from chat.services import post_visitor_message

    return post_visitor_message(chat_id=post.chat_id, text=post.text, client_id=post.client_id)


def write_visitor_posts(posts: Sequence[VisitorPost]) -> list[Result]:
    return resolve_repeats(run_batch(posts, check_visitor_posts, single_visitor_post))
