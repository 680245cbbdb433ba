"""Reads of chats: replay by sequence number, visitor tokens."""

from typing import Any

from django.conf import settings
from django.core import signing

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
