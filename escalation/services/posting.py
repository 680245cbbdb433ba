"""Posting messages: the one implementation of the posting rules, batch-first.

A batch of posts, from any number of sockets and chats (the coalescing writer gathers them, see
chat.realtime.writer), takes the chats' row locks in id order and then their routes' (the order
`lock_route` takes them in), checks every post, numbers each chat's messages contiguously in
arrival order and writes them in one transaction. A single post (the API, a test, a socket
without the writer) is a batch of one. The rules, for each post:

- the chat exists (ChatNotFound), and a `client_id` already stored in it, or sent earlier in the
  same batch, gives back that message: a client that re-sends after a reconnect makes no
  duplicate;
- a visitor writes only to an open chat (ChatClosed);
- an agent writes only to a chat it holds (ChatClosed, NotYourChat); an internal note is never
  shown to the visitor;
- the text is cleaned and bounded (InvalidMessage);
- an agent's first visitor-visible reply in a chat is a flow event, marked on the assignment by a
  conditional update (the mark lives in the database, not in process memory).

Every post gets its own result, the stored message or the exception that refused it (nothing of
that post is stored). If the transaction fails as a whole (a deadlock, a lost connection), each
post is tried again alone, so one bad post costs only itself.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.utils import timezone

from chat import services as chat_services
from chat.attachments import SNIFF_BYTES, AttachmentLimits, check_upload, format_bytes
from chat.events import send_messages_on_commit
from chat.exceptions import ChatClosed, ChatError, ChatNotFound
from chat.models import ChatSession, FlowEvent, Message
from chat.realtime.reads import run_together
from chat.services import NewMessage
from escalation import selectors
from escalation.exceptions import ConsoleLoginRevoked
from escalation.models import Agent, Assignment
from escalation.services.route import (
    Holder,
    lock_route_holders,
    lock_route_holders_read,
    require_writer,
)

Result = Message | Exception


@dataclass(frozen=True, slots=True)
class Post:
    """One message to post: by the visitor (`agent` None) or by an agent."""

    chat_id: int
    text: str
    client_id: str | None = None
    agent: Agent | None = None
    internal: bool = False
    # A console's login, to be checked before the post is stored: the agent is still active,
    # still an agent and still logged in (see selectors.invalid_console_logins).
    login: selectors.ConsoleLogin | None = None


class _Same(Exception):
    """Placeholder: this post repeats the client_id of post `index` in the same batch."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def post_messages(posts: Sequence[Post]) -> list[Result]:
    """Post many messages in one transaction; a result for every post, in order."""
    if not posts:
        return []
    try:
        with transaction.atomic():
            results = _post(posts)
    except Exception as exc:
        if len(posts) == 1:
            return [exc]
        return [post_messages([post])[0] for post in posts]
    return [results[r.index] if isinstance(r, _Same) else r for r in results]


def post_message(post: Post) -> Message:
    """One post: a batch of one. Raises what refused it."""
    [result] = post_messages([post])
    if isinstance(result, Exception):
        raise result
    return result


def post_visitor_message(*, chat_id: int, text: str, client_id: str | None = None) -> Message:
    return post_message(Post(chat_id=chat_id, text=text, client_id=client_id))


def post_agent_message(
    *, chat_id: int, agent: Agent, text: str, internal: bool = False, client_id: str | None = None
) -> Message:
    return post_message(
        Post(chat_id=chat_id, text=text, client_id=client_id, agent=agent, internal=internal)
    )


def _post(posts: Sequence[Post]) -> list[Result]:
    # Everything a batch reads before it writes, in one round trip (chat.realtime.reads): the
    # chats' rows locked in id order, then the agents' chats' routes, as `lock_route` takes them.
    logins = {p.login for p in posts if p.login is not None}
    passwords, live = selectors.invalid_console_logins_reads(logins)
    chats, holders, stored, passwords_now, live_now = run_together(
        [
            chat_services.lock_chats_read([p.chat_id for p in posts]),
            lock_route_holders_read(sorted({p.chat_id for p in posts if p.agent is not None})),
            chat_services.stored_by_client_id_read([(p.chat_id, p.client_id) for p in posts]),
            passwords,
            live,
        ]
    )
    revoked = selectors.revoked_logins(logins, passwords_now, live_now) if logins else set()
    results: list[Result] = []
    to_store: list[tuple[int, NewMessage]] = []
    pending: dict[tuple[int, str], int] = {}  # a client_id sent twice within this batch
    for index, post in enumerate(posts):
        key = (post.chat_id, post.client_id or "")
        chat = chats.get(post.chat_id)
        if post.login is not None and post.login in revoked:
            results.append(ConsoleLoginRevoked())
        elif chat is None:
            results.append(ChatNotFound())
        elif post.client_id and key in stored:
            results.append(stored[key])
        elif post.client_id and key in pending:
            results.append(_Same(pending[key]))
        else:
            try:
                new = _checked(post, chat, holders.get(post.chat_id))
            except ChatError as exc:
                results.append(exc)
                continue
            if post.client_id:
                pending[key] = index
            to_store.append((index, new))
            results.append(ChatNotFound())  # replaced by the stored message below
    messages = chat_services.append_messages([new for _, new in to_store])
    for (index, _), message in zip(to_store, messages, strict=True):
        results[index] = message
    # A turn that has had its first reply needs no look: most batches skip the UPDATE. A
    # joined receiver's replies are not the holder's turn's first reply.
    _mark_first_replies(
        [
            m
            for m in messages
            if not (m.chat_id in holders and holders[m.chat_id].replied)
            and not _by_guest(m, holders)
        ]
    )
    return results


def _by_guest(message: Message, holders: dict[int, Holder]) -> bool:
    holder = holders.get(message.chat_id)
    return holder is not None and message.author_id == (holder.guest_user_id or -1)


def _checked(post: Post, chat: ChatSession, holder: Holder | None) -> NewMessage:
    """The post as it will be stored, or the ChatError that refuses it. Chat row locked."""
    if post.agent is None:
        if not chat.is_open:
            raise ChatClosed()
        text = chat_services.clean_text(post.text)
        return NewMessage(chat, Message.Kind.VISITOR, text, None, chat.visitor_name, post.client_id)
    require_writer(chat=chat, holder=holder, agent=post.agent)
    text = chat_services.clean_text(post.text)
    kind = Message.Kind.INTERNAL if post.internal else Message.Kind.AGENT
    agent = post.agent
    return NewMessage(chat, kind, text, agent.user_id, agent.display_name, post.client_id)


ATTACHMENT_EVENT = "attachment"


def post_attachment(
    *,
    chat_id: int,
    upload: UploadedFile[bytes],
    limits: AttachmentLimits,
    agent: Agent | None = None,
    internal: bool = False,
) -> Message:
    """Post a file as a message of the chat (its text the file's name), by the visitor (`agent`
    None) or by the agent holding the chat, under the same rules as a text message. An agent's
    file in note mode stays internal, like the note: the visitor never gets it or a link to it.

    The file is checked against `limits` before anything is stored (AttachmentRefused), and a
    refusal after it was stored (the chat ended meanwhile, the agent lost it) deletes it again:
    a refused upload leaves no row and no file."""
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    checked = check_upload(
        name=upload.name or "",
        declared_type=upload.content_type or "",
        size=upload.size or 0,
        head=head,
        max_bytes=limits.max_bytes,
        allowed_types=limits.types,
    )
    stored: list[str] = []
    try:
        with transaction.atomic():
            chat = chat_services.lock_chat(chat_id=chat_id)
            holders = lock_route_holders([chat_id]) if agent is not None else {}
            holder = holders.get(chat_id)
            post = Post(chat_id=chat_id, text=checked.name, agent=agent, internal=internal)
            new = _checked(post, chat, holder)
            new.event = ATTACHMENT_EVENT
            [message] = chat_services.append_messages([new], publish=False)
            attachment = chat_services.store_attachment(
                message=message,
                upload=upload,
                checked=checked,
                agent_user_id=agent.user_id if agent is not None else None,
            )
            stored.append(attachment.file.name or "")
            data: dict[str, Any] = {
                "by": agent.display_name if agent is not None else "visitor",
                "type": checked.content_type,
                "size": format_bytes(checked.size),
                "internal": message.public_seq is None,
            }
            chat_services.add_flow_event(
                chat=chat,
                kind=FlowEvent.Kind.ATTACHMENT,
                actor=agent.user if agent is not None else None,
                data=data,
            )
            send_messages_on_commit([message])
            if not (holder and holder.replied):
                _mark_first_replies([message])
    except BaseException:
        chat_services.delete_stored_files([name for name in stored if name])
        raise
    return message


_ASSIGNMENTS = Assignment._meta.db_table


def _mark_first_replies(messages: Sequence[Message]) -> None:
    """Mark the holders' first visitor-visible reply on their assignment (an assignment whose
    agent replied in an earlier turn of the same chat is not marked again), and record each as a
    flow event. One conditional UPDATE for the batch."""
    replied = {m.chat_id for m in messages if m.kind == Message.Kind.AGENT}
    if not replied:
        return
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_ASSIGNMENTS} SET replied_at = %s "  # noqa: S608 - table name from the model; values bound
            f"WHERE chat_id IN ({', '.join(['%s'] * len(replied))}) "
            "AND ended_at IS NULL AND replied_at IS NULL AND NOT EXISTS ("
            f"SELECT 1 FROM {_ASSIGNMENTS} AS earlier "
            f"WHERE earlier.chat_id = {_ASSIGNMENTS}.chat_id "
            f"AND earlier.agent_id = {_ASSIGNMENTS}.agent_id "
            "AND earlier.replied_at IS NOT NULL) RETURNING chat_id",
            [now, *sorted(replied)],
        )
        first = {row[0] for row in cursor.fetchall()}
    if not first:
        return
    by_chat: dict[int, Message] = {}
    for message in messages:
        if message.kind == Message.Kind.AGENT and message.chat_id in first:
            by_chat.setdefault(message.chat_id, message)
    FlowEvent.objects.bulk_create(
        FlowEvent(
            chat_id=chat_id,
            kind=FlowEvent.Kind.FIRST_AGENT_MESSAGE,
            actor_id=message.author_id,
            data={"agent": message.author_name},
            at=now,
        )
        for chat_id, message in sorted(by_chat.items())
    )


@transaction.atomic
def mark_read(*, chat_id: int, agent: Agent, seq: int) -> None:
    """The agent has seen the chat up to `seq` (its console's unread count)."""
    last_seq = ChatSession.objects.filter(pk=chat_id).values_list("last_seq", flat=True).first()
    seq = min(seq, last_seq or 0)  # never past what exists (and within the column's range)
    Assignment.objects.filter(
        chat_id=chat_id, agent=agent, ended_at__isnull=True, last_read_seq__lt=seq
    ).update(last_read_seq=seq)
