"""Reads of chats: replay by sequence number, visitor tokens, what the visitor's browser told,
attachments and their links."""

import functools
from typing import Any

from django.conf import settings
from django.core import signing
from django.urls import reverse
from ua_parser import parse as parse_user_agent

from chat.exceptions import AttachmentLinkExpired, ChatNotFound
from chat.models import Attachment, ChatSession, Message

_TOKEN_SALT = "tierline.visitor-chat"  # noqa: S105 - a namespace for signatures, not a secret
_FILE_SALT = "tierline.attachment"


def make_visitor_token(chat: ChatSession) -> str:
    """A signed, expiring token that lets one browser into one chat (and no other)."""
    return signing.TimestampSigner(salt=_TOKEN_SALT).sign_object(
        {"c": chat.pk, "p": chat.public_id.hex}, compress=True
    )


def chat_for_visitor_credential(*, credential: str) -> ChatSession:
    """The chat a "<chat id>:<token>" credential opens (the visitor cookie's value, the widget's
    form field, the X-Tierline-Visitor header); ChatNotFound for anything else."""
    chat_id, _, token = credential.partition(":")
    if not (chat_id.isascii() and chat_id.isdigit() and len(chat_id) <= 18):
        raise ChatNotFound()
    return chat_for_visitor_token(token=token, chat_id=int(chat_id))


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
    return list(messages.select_related("attachment")[:limit])


def last_seq(*, chat_id: int, for_visitor: bool, at_most: int) -> int:
    """The chat's last sequence number (the visitor's or the agents'), but at most `at_most`."""
    field = "last_public_seq" if for_visitor else "last_seq"
    last = ChatSession.objects.filter(pk=chat_id).values_list(field, flat=True).first()
    return min(at_most, last or 0)


def transcript(*, chat_id: int, for_visitor: bool) -> list[Message]:
    messages = Message.objects.filter(chat_id=chat_id).select_related("attachment")
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


# --- Attachments ------------------------------------------------------------------------------
def message_attachment(message: Message) -> Attachment | None:
    """The file a message carries. Only messages posted with one (event "attachment") are
    looked up, so that the text messages of the hot path cost no query."""
    if message.event != "attachment":
        return None
    try:
        return message.attachment
    except Attachment.DoesNotExist:
        return None


def signed_attachment_url(attachment: Attachment) -> str:
    """A link to the file that works without cookies (an <img> in a cross-site frame) for
    ATTACHMENT_URL_MAX_AGE_SECONDS: signed over the attachment and its chat."""
    value = signing.TimestampSigner(salt=_FILE_SALT).sign_object(
        {"a": attachment.pk, "c": attachment.chat_id}
    )
    return reverse("chat:attachment", args=[value])


def attachment_for_signature(*, value: str) -> Attachment:
    """The visitor-visible attachment a signed link names. AttachmentLinkExpired for a link past
    its age; ChatNotFound for anything else (tampered, an internal note's file, erased)."""
    signer = signing.TimestampSigner(salt=_FILE_SALT)
    try:
        data: Any = signer.unsign_object(value, max_age=settings.ATTACHMENT_URL_MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise AttachmentLinkExpired() from None
    except (signing.BadSignature, ValueError, TypeError):
        raise ChatNotFound("There is no such file.") from None
    if not (isinstance(data, dict) and isinstance(data.get("a"), int)):
        raise ChatNotFound("There is no such file.")
    attachment = (
        Attachment.objects.filter(
            pk=data["a"], chat_id=data.get("c"), message__public_seq__isnull=False
        )
        .select_related("message")
        .first()
    )
    if attachment is None:
        raise ChatNotFound("There is no such file.")
    return attachment


def attachment_info(attachment: Attachment, *, for_visitor: bool) -> dict[str, Any]:
    """What clients show of a file: a visitor gets a signed link, agents and API users the API's
    download address (their session or token decides)."""
    if for_visitor:
        url = signed_attachment_url(attachment)
    else:
        url = reverse("api-attachment", args=[attachment.chat_id, attachment.pk])
    return {
        "id": attachment.pk,
        "name": attachment.name,
        "size": attachment.size_bytes,
        "type": attachment.content_type,
        "image": attachment.is_image,
        "url": url,
    }


def visitor_transcript_lines(*, chat_id: int) -> list[tuple[Message, dict[str, Any] | None]]:
    """The visitor's transcript, each message with its file (as `attachment_info`) or None."""
    return [(m, _info(m, for_visitor=True)) for m in transcript(chat_id=chat_id, for_visitor=True)]


def _info(message: Message, *, for_visitor: bool) -> dict[str, Any] | None:
    attachment = message_attachment(message)
    return attachment_info(attachment, for_visitor=for_visitor) if attachment else None
