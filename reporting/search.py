"""Search past chats: words from the conversation (messages and internal notes), and the chat's
visitor, agent, tier, tag, outcome and dates.

On PostgreSQL the words are matched by full-text search (`websearch_to_tsquery` with the
`simple` configuration: no stemming, any language) against a GIN index on the messages' text;
on the embedded default's SQLite, by a plain case-insensitive `LIKE`. Newest chats first, a
page at a time without counting every match (a count over a million chats would cost more than
the page)."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchVector
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from chat.models import ChatSession, Message
from escalation.models import Assignment, ChatTag, QueueEntry

PAGE_SIZE = 25
# The expression the GIN index is built on (chat/migrations): queries must use the same one.
MESSAGE_DOCUMENT = SearchVector("text", config="simple")
MARK_START, MARK_END = "\x02", "\x03"  # around matches in a snippet, made <mark> after escaping


@dataclass(frozen=True, slots=True)
class ChatSearch:
    words: str = ""
    visitor: str = ""  # a part of the name or e-mail
    agent_id: int | None = None
    tier_level: int | None = None
    tag_id: int | None = None
    status: str = ""
    start: date | None = None
    end: date | None = None


def _full_text() -> bool:
    return connection.vendor == "postgresql"


def _query(words: str) -> SearchQuery:
    return SearchQuery(words, config="simple", search_type="websearch")


def matching_messages(words: str) -> QuerySet[Message]:
    if _full_text():
        return Message.objects.annotate(document=MESSAGE_DOCUMENT).filter(document=_query(words))
    return Message.objects.filter(text__icontains=words)


# Up to this many matches, their chats are looked up by id; past it, by walking the chats newest
# first (see _few_or_all).
FEW_MATCHES = 2000


def _few_or_all(ids: QuerySet[Any]) -> Any:
    """The chat ids of `ids` as a list when there are few, else `ids` itself (a subquery).

    PostgreSQL cannot estimate how many rows a word or a LIKE '%part%' matches (it guesses), and
    for a rare one it chose to walk every chat newest first and test each: 13 s for a rare word
    and 1 s for a name part on a million chats. Asking the index first for a few matches settles
    it: a rare match is answered from its ids; a common one, which stops that walk within a
    page, keeps the walk. Unordered: messages' default order (chat, seq) would walk the chat
    index instead of the search index."""
    few = list(ids.order_by()[: FEW_MATCHES + 1])
    if len(few) <= FEW_MATCHES:
        return sorted(set(few))
    return ids.order_by()


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_default_timezone())


def search_chats(chats: QuerySet[ChatSession], s: ChatSearch) -> QuerySet[ChatSession]:
    """`chats` (those the reader may see) narrowed by the search, newest first."""
    if s.words:
        with_words = matching_messages(s.words).values_list("chat_id", flat=True)
        chats = chats.filter(pk__in=_few_or_all(with_words))
    if s.visitor:
        named = ChatSession.objects.filter(
            Q(visitor_name__icontains=s.visitor) | Q(visitor_email__icontains=s.visitor)
        )
        chats = chats.filter(pk__in=_few_or_all(named.values_list("pk", flat=True)))
    if s.agent_id:
        held = Assignment.objects.filter(agent_id=s.agent_id).values("chat_id")
        chats = chats.filter(pk__in=held)
    if s.tier_level:
        visited = QueueEntry.objects.filter(tier__level=s.tier_level).values("chat_id")
        chats = chats.filter(pk__in=visited)
    if s.tag_id:
        chats = chats.filter(pk__in=ChatTag.objects.filter(tag_id=s.tag_id).values("chat_id"))
    if s.status:
        chats = chats.filter(status=s.status)
    if s.start:
        chats = chats.filter(created_at__gte=_day_start(s.start))
    if s.end:
        chats = chats.filter(created_at__lt=_day_start(s.end + timedelta(days=1)))
    return chats.order_by("-created_at", "-pk")


def _snippets(chat_ids: list[int], words: str) -> dict[int, str]:
    """Each chat's first matching message, cut around the match with the match marked: one
    query for the page."""
    matches = matching_messages(words).filter(chat_id__in=chat_ids).order_by("chat_id", "seq")
    if _full_text():
        headline = SearchHeadline(
            "text",
            _query(words),
            config="simple",
            start_sel=MARK_START,
            stop_sel=MARK_END,
            max_words=20,
            min_words=8,
        )
        firsts = matches.distinct("chat_id").annotate(headline=headline)
        return dict(firsts.values_list("chat_id", "headline"))
    snippets: dict[int, str] = {}
    for chat_id, text in matches.values_list("chat_id", "text"):
        if chat_id not in snippets:
            at = text.lower().find(words.lower())
            start = max(0, at - 60)
            snippets[chat_id] = ("…" if start else "") + text[start : start + 160]
    return snippets


def page_of(
    chats: QuerySet[ChatSession], s: ChatSearch, page: int
) -> tuple[list[dict[str, Any]], bool]:
    """(the page's rows, whether there is a next page)."""
    offset = (page - 1) * PAGE_SIZE
    found = list(
        search_chats(chats, s).prefetch_related("tags__tag")[offset : offset + PAGE_SIZE + 1]
    )
    shown = found[:PAGE_SIZE]
    snippets = _snippets([chat.pk for chat in shown], s.words) if s.words else {}
    rows = [
        {
            "chat": chat,
            "tags": [t.tag.name for t in chat.tags.all()],
            "snippet": snippets.get(chat.pk, ""),
        }
        for chat in shown
    ]
    return rows, len(found) > PAGE_SIZE
