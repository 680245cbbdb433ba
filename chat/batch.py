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
    author_id: int | None
    author_name: str
    client_id: str | None


@dataclass
class VisitorPost:
    chat_id: int
    text: str
    client_id: str | None = None


# PostgreSQL only (the writer falls back to the per-message services elsewhere): raw SQL with
# array parameters, one round trip per statement whatever the batch size, and no ORM
# compilation per batch.
CHATS = ChatSession._meta.db_table
MESSAGES = Message._meta.db_table


def lock_chats(chat_ids: Sequence[int]) -> dict[int, ChatSession]:
    """SELECT ... FOR UPDATE of every chat, in id order (the order every batch locks in)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, status, last_seq, last_public_seq, visitor_name FROM {CHATS} "  # noqa: S608 - table names from the models; values bound
            "WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            [sorted(set(chat_ids))],
        )
        rows = cursor.fetchall()
    return {
        row[0]: ChatSession(
            id=row[0], status=row[1], last_seq=row[2], last_public_seq=row[3], visitor_name=row[4]
        )
        for row in rows
    }


def stored_by_client_id(pairs: Sequence[tuple[int, str | None]]) -> dict[tuple[int, str], Message]:
    """Messages already stored under these (chat, client_id) pairs."""
    wanted = {(chat_id, client_id) for chat_id, client_id in pairs if client_id}
    if not wanted:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, chat_id, client_id FROM {MESSAGES} "  # noqa: S608 - table names from the models; values bound
            "WHERE chat_id = ANY(%s) AND client_id = ANY(%s)",
            [sorted({c for c, _ in wanted}), sorted({cid for _, cid in wanted})],
        )
        ids = [row[0] for row in cursor.fetchall() if (row[1], row[2]) in wanted]
    if not ids:
        return {}
    return {(m.chat_id, m.client_id or ""): m for m in Message.objects.filter(id__in=ids)}


def append_many(new: Sequence[NewMessage]) -> list[Message]:
    """Number and store checked posts (their chats locked by the caller), publish after commit:
    one INSERT and one UPDATE for the whole batch."""
    if not new:
        return []
    now = timezone.now()
    touched: dict[int, ChatSession] = {}
    columns: list[list[Any]] = [[] for _ in range(8)]
    for item in new:
        chat = item.chat
        chat.last_seq += 1
        public_seq = None
        if item.kind != Message.Kind.INTERNAL:
            chat.last_public_seq += 1
            public_seq = chat.last_public_seq
        touched[chat.pk] = chat
        for column, value in zip(
            columns,
            (
                chat.pk,
                chat.last_seq,
                public_seq,
                item.kind,
                item.author_id,
                item.author_name,
                item.text,
                item.client_id or None,
            ),
            strict=True,
        ):
            column.append(value)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {MESSAGES} "  # noqa: S608 - table names from the models; values bound
            "(chat_id, seq, public_seq, kind, event, author_id, author_name, text, client_id, "
            "created_at) "
            "SELECT c, s, p, k, '', a, n, t, i, %s FROM unnest("
            "%s::bigint[], %s::integer[], %s::integer[], %s::text[], %s::bigint[], %s::text[], "
            "%s::text[], %s::text[]) AS v(c, s, p, k, a, n, t, i) RETURNING id",
            [now, *columns],
        )
        ids = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            f"UPDATE {CHATS} AS c SET last_seq = v.s, last_public_seq = v.p, "  # noqa: S608 - table names from the models; values bound
            "updated_at = %s "
            "FROM unnest(%s::bigint[], %s::integer[], %s::integer[]) AS v(id, s, p) "
            "WHERE c.id = v.id",
            [
                now,
                list(touched),
                [c.last_seq for c in touched.values()],
                [c.last_public_seq for c in touched.values()],
            ],
        )
    messages = [
        Message(
            id=message_id,
            chat_id=chat_id,
            seq=seq,
            public_seq=public_seq,
            kind=kind,
            event="",
            author_id=author_id,
            author_name=author_name,
            text=text,
            client_id=client_id,
            created_at=now,
        )
        for message_id, (
            chat_id,
            seq,
            public_seq,
            kind,
            author_id,
            author_name,
            text,
            client_id,
        ) in zip(ids, zip(*columns, strict=True), strict=True)
    ]
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
