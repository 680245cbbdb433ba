"""Transcript retention and per-visitor erasure.

Both delete what identifies a visitor or quotes them (messages, name, e-mail, browser context,
hand-over notes, consult questions, left messages, e-mails about the chat) and keep the anonymous
rows the reports count, so that a report over an old period gives the same numbers after its
transcripts are gone.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from chat import services as chat_services
from chat.models import ChatSession, OutboundEmail
from escalation.models import Consult, Escalation, OfflineMessage, SurveyAnswer
from escalation.services.lifecycle import end_chat_by_visitor


@transaction.atomic
def erase_chat(*, chat_id: int) -> int:
    """Erase one ended chat's transcript and personal data. Returns the messages deleted."""
    chat = chat_services.lock_chat(chat_id=chat_id)
    if chat.is_open:
        return 0  # the caller ends it first (erase_visitor) or it is not due (retention)
    Escalation.objects.filter(chat=chat).exclude(note="").update(note="")
    Consult.objects.filter(chat=chat).update(question="")  # may quote the visitor
    OfflineMessage.objects.filter(chat=chat).update(email="", text="")
    OutboundEmail.objects.filter(chat=chat).delete()  # addresses, and mail not yet sent
    SurveyAnswer.objects.filter(chat=chat).update(comment="")  # the rating stays for reports
    return chat_services.erase_chat_content(chat=chat)


def purge_expired_transcripts(*, batch: int = 500) -> int:
    """Erase the chats that ended more than TRANSCRIPT_RETENTION_DAYS ago (0: keep forever).
    Returns how many chats were erased; idempotent (an erased chat is not picked again)."""
    days = settings.TRANSCRIPT_RETENTION_DAYS
    if days == 0:
        return 0
    cutoff = timezone.now() - timedelta(days=days)
    due = (
        ChatSession.objects.filter(ended_at__lt=cutoff)
        .exclude(status__in=ChatSession.OPEN_STATUSES)
        .exclude(visitor_name=chat_services.ERASED_NAME)
        .values_list("pk", flat=True)
    )
    erased = 0
    while True:
        chat_ids = list(due[:batch])
        if not chat_ids:
            return erased
        for chat_id in chat_ids:
            erase_chat(chat_id=chat_id)
            erased += 1


def visitor_chat_ids(*, email: str = "", chat_id: int | None = None) -> list[int]:
    """The chats of one visitor: every chat with that e-mail, or the one chat (for a visitor who
    gave no e-mail and quotes the chat number)."""
    query = Q(pk__in=[])
    if email.strip():
        # The chats under that address, and those whose transcript was e-mailed to it.
        query |= Q(visitor_email__iexact=email.strip()) | Q(emails__to__iexact=email.strip())
    if chat_id is not None:
        query |= Q(pk=chat_id)
    return list(
        ChatSession.objects.filter(query).distinct().order_by("pk").values_list("pk", flat=True)
    )


def erase_visitor(*, email: str = "", chat_id: int | None = None) -> tuple[int, int]:
    """Erase every chat of one visitor, ending open ones first. Returns (chats, messages)."""
    chats = messages = 0
    for pk in visitor_chat_ids(email=email, chat_id=chat_id):
        if ChatSession.objects.filter(pk=pk, status__in=ChatSession.OPEN_STATUSES).exists():
            end_chat_by_visitor(chat_id=pk)
        messages += erase_chat(chat_id=pk)
        chats += 1
    return chats, messages
