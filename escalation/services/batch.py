"""Agents' messages in batches: `post_agent_message`'s rules for many posts in one transaction
(chat.batch explains the shape)."""

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from django.db import connection, transaction
from django.db.models import Q

from chat import batch
from chat.batch import NewMessage, Result, VisitorPost
from chat.models import FlowEvent, Message
from chat.services import clean_text
from escalation.models import Agent, ChatRoute
from escalation.services.routing import post_agent_message, require_holder

# (chat, user) pairs known to have an agent reply already: that never becomes false again, so
# the first-reply check queries only pairs not seen yet.
_replied: set[tuple[int, int]] = set()


@dataclass
class AgentPost:
    chat_id: int
    agent: Agent
    text: str
    internal: bool = False
    client_id: str | None = None


def _first_replies(pairs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Of these (chat, user) pairs, those with no agent message yet."""
    unknown = pairs - _replied
    if not unknown:
        return set()
    condition = Q()
    for chat_id, user_id in unknown:
        condition |= Q(chat_id=chat_id, author_id=user_id)
    found = set(
        Message.objects.filter(condition, kind=Message.Kind.AGENT)
        .values_list("chat_id", "author_id")
        .distinct()
    )
    _replied.update(found)
    return unknown - found


def _lock_routes(chat_ids: list[int]) -> dict[int, Any]:
    """The routes' agent, rows locked in chat order (after the chats, as `lock_route`)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT chat_id, agent_id FROM {ChatRoute._meta.db_table} "  # noqa: S608 - table names from the models; values bound
            "WHERE chat_id = ANY(%s) ORDER BY chat_id FOR UPDATE",
            [chat_ids],
        )
        return {chat_id: SimpleNamespace(agent_id=agent_id) for chat_id, agent_id in cursor}


def check_posts(
    posts: Sequence[AgentPost | VisitorPost], results: list[Result | None]
) -> list[tuple[int, NewMessage]]:
    """Visitors' and agents' posts together: every chat locked once, in id order, then the
    routes of the chats agents write to (the order `lock_route` takes them in)."""
    chats = batch.lock_chats([p.chat_id for p in posts])
    agent_chats = {p.chat_id for p in posts if isinstance(p, AgentPost)} & chats.keys()
    routes = _lock_routes(sorted(agent_chats)) if agent_chats else {}
    stored = batch.stored_by_client_id([(p.chat_id, p.client_id) for p in posts])
    first = _first_replies(
        {
            (p.chat_id, p.agent.user_id)
            for p in posts
            if isinstance(p, AgentPost) and not p.internal and p.chat_id in chats
        }
    )
    to_store: list[tuple[int, NewMessage]] = []
    pending: dict[tuple[int, str], int] = {}
    flow: list[FlowEvent] = []
    for index, post in enumerate(posts):
        key = (post.chat_id, post.client_id or "")
        chat = chats.get(post.chat_id)
        if isinstance(post, VisitorPost):
            batch.check_visitor_post(index, post, chat, stored, pending, results, to_store)
            continue
        route = routes.get(post.chat_id)
        if chat is None or route is None:
            # Not found, or no route: let the one-by-one service give its exact answer.
            results[index] = _alone(post)
            continue
        if post.client_id and key in stored:
            results[index] = stored[key]
            continue
        if post.client_id and key in pending:
            results[index] = batch._Same(pending[key])
            continue
        try:
            require_holder(chat=chat, route=route, agent=post.agent)
            text = clean_text(post.text)
        except Exception as exc:
            results[index] = exc
            continue
        if post.client_id:
            pending[key] = index
        kind = Message.Kind.INTERNAL if post.internal else Message.Kind.AGENT
        pair = (post.chat_id, post.agent.user_id)
        if not post.internal and pair in first:
            first.discard(pair)
            transaction.on_commit(lambda pair=pair: _replied.add(pair))  # type: ignore[misc]
            flow.append(
                FlowEvent(
                    chat=chat,
                    kind=FlowEvent.Kind.FIRST_AGENT_MESSAGE,
                    actor_id=post.agent.user_id,
                    data={"agent": post.agent.display_name},
                    at=chat.updated_at,
                )
            )
        to_store.append(
            (
                index,
                NewMessage(
                    chat, kind, text, post.agent.user_id, post.agent.display_name, post.client_id
                ),
            )
        )
    if flow:
        from django.utils import timezone

        now = timezone.now()
        for event in flow:
            event.at = now
        FlowEvent.objects.bulk_create(flow)
    return to_store


def _alone(post: AgentPost) -> Result:
    try:
        return _single(post)
    except Exception as exc:
        return exc


def _single(post: AgentPost) -> Message:
    return post_agent_message(
        chat_id=post.chat_id,
        agent=post.agent,
        text=post.text,
        internal=post.internal,
        client_id=post.client_id,
    )


def _single_any(post: AgentPost | VisitorPost) -> Message:
    if isinstance(post, VisitorPost):
        return batch.single_visitor_post(post)
    return _single(post)


def write_posts(posts: Sequence[AgentPost | VisitorPost]) -> list[Result]:
    return batch.resolve_repeats(batch.run_batch(posts, check_posts, _single_any))


async def post_agent_message_batched(
    *, chat_id: int, agent: Agent, text: str, internal: bool = False, client_id: str | None = None
) -> Message:
    """`post_agent_message` through the process's coalescing writer (chat.writer)."""
    from channels.db import database_sync_to_async
    from django.conf import settings

    from chat.writer import writer_for

    if not settings.REALTIME_BATCH_WRITES or connection.vendor != "postgresql":
        message: Message = await database_sync_to_async(post_agent_message)(
            chat_id=chat_id, agent=agent, text=text, internal=internal, client_id=client_id
        )
        return message
    writer = writer_for("posts", write_posts)
    post = AgentPost(
        chat_id=chat_id, agent=agent, text=text, internal=internal, client_id=client_id
    )
    return await writer.submit(post)


async def post_visitor_message_batched(
    *, chat_id: int, text: str, client_id: str | None = None
) -> Message:
    """`chat.services.post_visitor_message` through the same writer as agents' messages, so
    both share one transaction per batch."""
    from django.conf import settings

    from chat.writer import post_visitor_message, writer_for

    if not settings.REALTIME_BATCH_WRITES or connection.vendor != "postgresql":
        return await post_visitor_message(chat_id=chat_id, text=text, client_id=client_id)
    writer = writer_for("posts", write_posts)
    return await writer.submit(VisitorPost(chat_id=chat_id, text=text, client_id=client_id))
