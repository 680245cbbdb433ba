"""Reads of chats: replay by sequence number, visitor tokens, what the visitor's browser told."""

import functools
from typing import Any

from django.conf import settings
from django.core import signing
from ua_parser import parse as parse_user_agent

from chat.exceptions import ChatNotFound
from chat.models import ChatSession, Message

_TOKEN_SALT = "tierline.visitor-chat"  # noqa: S105 - a namespace for signatures, not a secret


def make_visitor_token(chat: ChatSession) -> str:
    """A signed, expiring token that lets one browser into one chat (and no other)."""
    return signing.TimestampSigner(salt=_TOKEN_SALT).sign_object(
        {"c": chat.pk, "p": chat.public_id.hex}, compress=True
    )


def chat_for_visitor_token(*, token: str, chat_id: int) -> ChatSession:
    """The chat the token was made for, if it is `chat_id`; ChatNotFound otherwise (any reason:
    tampered, expired, another chat's token) so that a guesser learns nothing."""
    try:
        data: Any = signing.TimestampSigner(salt=_TOKEN_SALT).unsign_object(
            token, max_age=settings.VISITOR_TOKEN_MAX_AGE_SECONDS
        )
    except (signing.BadSignature, ValueError, TypeError):
        raise ChatNotFound() from None
    if not isinstance(data, dict) or data.get("c") != chat_id:
        raise ChatNotFound()
    chat = ChatSession.objects.filter(pk=chat_id).first()
    if chat is None or chat.public_id.hex != data.get("p"):
        raise ChatNotFound()
    return chat


def messages_after(
    *, chat_id: int, after: int, for_visitor: bool, limit: int | None = None
) -> list[Message]:
    """The messages a client has not seen, in order: `after` is the last sequence number it saw
    (visitors count `public_seq`, agents `seq`). At most `limit` (a page), oldest first."""
    limit = limit or settings.REPLAY_PAGE_SIZE
    after = max(0, after)
    messages = Message.objects.filter(chat_id=chat_id)
    if for_visitor:
        messages = messages.filter(public_seq__gt=after).order_by("public_seq")
    else:
        messages = messages.filter(seq__gt=after).order_by("seq")
    return list(messages[:limit])


def last_seq(*, chat_id: int, for_visitor: bool, at_most: int) -> int:
    """The chat's last sequence number (the visitor's or the agents'), but at most `at_most`."""
    field = "last_public_seq" if for_visitor else "last_seq"
    last = ChatSession.objects.filter(pk=chat_id).values_list(field, flat=True).first()
    return min(at_most, last or 0)


def transcript(*, chat_id: int, for_visitor: bool) -> list[Message]:
    messages = Message.objects.filter(chat_id=chat_id)
    if for_visitor:
        return list(messages.filter(public_seq__isnull=False).order_by("public_seq"))
    return list(messages.order_by("seq"))


def chat_for_id(*, chat_id: int) -> ChatSession:
    chat = ChatSession.objects.filter(pk=chat_id).first()
    if chat is None:
        raise ChatNotFound()
    return chat


def chat_has_ended(*, chat_id: int) -> bool:
    """Whether the chat is over (ended, abandoned or missed); a missing chat counts as over."""
    return not ChatSession.objects.filter(pk=chat_id, status__in=ChatSession.OPEN_STATUSES).exists()


# A value the visitor's browser or the widget set is cut to this for keeping in a frame or a page
# (the console shows less and the rest on hover); a key or label to the shorter one.
CONTEXT_VALUE_MAX_CHARS = 500
CONTEXT_KEY_MAX_CHARS = 80
MAX_ATTRIBUTES = 50


def _text(value: Any, limit: int = CONTEXT_VALUE_MAX_CHARS) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return ("" if value is None else str(value))[:limit]


@functools.lru_cache(maxsize=1024)
def browser_and_os(user_agent: str) -> tuple[str, str]:
    """("Chrome 120", "Windows 10") from a User-Agent header ("" for what it does not say), by
    ua-parser's maintained rules; the same few strings come again and again, hence the cache."""
    result = parse_user_agent(user_agent[:CONTEXT_VALUE_MAX_CHARS])

    def named(part: Any) -> str:
        if part is None or part.family == "Other":
            return ""
        return " ".join(v for v in (part.family, part.major) if v)

    return named(result.user_agent), named(result.os)


def _question_order(item: tuple[str, Any]) -> tuple[int, str]:
    """Answers in their questions' order (each answer keeps its question's position)."""
    key, answer = item
    position = answer.get("position") if isinstance(answer, dict) else None
    return (position if isinstance(position, int) else 0, key)


def visitor_details(chat: ChatSession) -> dict[str, Any]:
    """What the visitor told and their browser sent at the start, as the agent's panel and the
    Metadata tab show it: each value a string, cut to a sane length (the pages escape them)."""
    context: dict[str, Any] = chat.visitor_context if isinstance(chat.visitor_context, dict) else {}
    fields = context.get("fields")
    attributes = context.get("attributes")
    user_agent = _text(context.get("user_agent"))
    browser, os = browser_and_os(user_agent) if user_agent else ("", "")
    offset = context.get("utc_offset_minutes")
    return {
        "name": chat.visitor_name,
        "email": chat.visitor_email,
        "topic": chat.topic,
        "fields": [
            {
                "key": _text(key, CONTEXT_KEY_MAX_CHARS),
                "label": _text(answer.get("label") or key, CONTEXT_KEY_MAX_CHARS),
                "value": _text(answer.get("value")),
            }
            for key, answer in sorted(
                (fields.items() if isinstance(fields, dict) else ()), key=_question_order
            )
            if isinstance(answer, dict)
        ],
        "page": _text(context.get("page")),
        "page_title": _text(context.get("page_title")),
        "referrer": _text(context.get("referrer")),
        "user_agent": user_agent,
        "browser": browser,
        "os": os,
        "language": _text(context.get("language")),
        "time_zone": _text(context.get("time_zone"), CONTEXT_KEY_MAX_CHARS),
        "utc_offset_minutes": offset if isinstance(offset, int) else None,
        "attributes": [
            {"name": _text(name, CONTEXT_KEY_MAX_CHARS), "value": _text(value)}
            # jsonb keeps no key order: by name, so that the panel does not reshuffle
            for name, value in sorted(attributes.items() if isinstance(attributes, dict) else ())[
                :MAX_ATTRIBUTES
            ]
        ],
    }
