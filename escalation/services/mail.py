"""E-mail about chats: a visitor's transcript, and a left message for the agents who serve its
stage.

Each e-mail is a row first (chat.models.OutboundEmail), written in the caller's transaction, and
sent after commit by a Celery task (`escalation.tasks.send_email`) through Django's e-mail
backend. A failed send (the server refused, could not be reached, timed out) is tried again
later, backing off from 2 s to 10 minutes, up to EMAIL_MAX_TRIES tries in all; then the row is
marked failed with the last error. The task locks the row and sends only a pending one that is
due, so a duplicate or redelivered task sends nothing twice; beat's sweep sends the rows whose
task was lost. The content is rendered when it is sent: an erased chat's rows are gone, and with
them the e-mail.
"""

import smtplib
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from chat import services as chat_services
from chat.exceptions import ChatStillOpen
from chat.models import ChatSession, Message, OutboundEmail
from escalation.models import ChatRoute, OfflineMessage
from escalation.services import timers

# How long past its due time a pending e-mail waits for its own task before the sweep sends it.
SWEEP_GRACE = timedelta(seconds=60)


@transaction.atomic
def email_transcript(*, chat_id: int, to: str) -> OutboundEmail:
    """The visitor asked for the transcript of its ended chat (offered only while e-mail is
    on: EMAIL_ENABLED)."""
    chat = chat_services.lock_chat(chat_id=chat_id)
    if chat.is_open:
        raise ChatStillOpen()
    return _queue(OutboundEmail(chat=chat, kind=OutboundEmail.Kind.TRANSCRIPT, to=to))


def email_left_message(*, message: OfflineMessage) -> list[OutboundEmail]:
    """Tell the agents of the groups that serve the chat's stage (those with an e-mail address
    and an active account) that a visitor left a message. Nothing while e-mail is off."""
    if not settings.EMAIL_ENABLED:
        return []
    route = ChatRoute.objects.select_related("stage").get(chat_id=message.chat_id)
    recipients = (
        get_user_model()
        .objects.filter(is_active=True, agent__groups__stages=route.stage)
        .exclude(email="")
        .values_list("email", flat=True)
        .distinct()
        .order_by("email")
    )
    return [
        _queue(OutboundEmail(chat_id=message.chat_id, kind=OutboundEmail.Kind.LEFT_MESSAGE, to=to))
        for to in recipients
    ]


def _queue(row: OutboundEmail) -> OutboundEmail:
    row.save()
    timers.arm(timers.SEND_EMAIL, row.pk, deadline=timezone.now())
    return row


def retry_delay(attempts: int) -> timedelta:
    """The wait before try number `attempts + 1`: 2 s, 4 s, 8 s, ... at most 10 minutes."""
    return timedelta(seconds=min(600, 2**attempts))


@transaction.atomic
def send_email_now(*, email_id: int) -> str:
    """Send one pending e-mail that is due. Returns what happened: sent, retry, failed, early,
    gone (erased) or its status when it is no longer pending."""
    row = (
        OutboundEmail.objects.select_for_update(of=("self",))
        .select_related("chat")
        .filter(pk=email_id)
        .first()
    )
    if row is None:
        return "gone"
    if row.status != OutboundEmail.Status.PENDING:
        return str(row.status)
    now = timezone.now()
    if row.due_at is not None and row.due_at > now:
        timers.arm(timers.SEND_EMAIL, row.pk, deadline=row.due_at)
        return "early"
    mail = render(row)
    row.attempts += 1
    try:
        mail.send()
    except (smtplib.SMTPException, OSError) as exc:
        row.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if row.attempts >= settings.EMAIL_MAX_TRIES:
            row.status = OutboundEmail.Status.FAILED
            row.save(update_fields=["attempts", "last_error", "status"])
            return "failed"
        row.due_at = now + retry_delay(row.attempts)
        row.save(update_fields=["attempts", "last_error", "due_at"])
        timers.arm(timers.SEND_EMAIL, row.pk, deadline=row.due_at)
        return "retry"
    row.status = OutboundEmail.Status.SENT
    row.sent_at = timezone.now()
    row.save(update_fields=["attempts", "status", "sent_at"])
    return "sent"


def sweep_due_emails(*, limit: int = 100) -> int:
    """Beat: send the pending e-mails whose task was lost (a killed worker, a flushed broker)."""
    overdue = OutboundEmail.objects.filter(
        status=OutboundEmail.Status.PENDING, due_at__lte=timezone.now() - SWEEP_GRACE
    )
    return timers.sweep(
        overdue.order_by("due_at").values_list("pk", flat=True)[:limit],
        lambda pk: send_email_now(email_id=pk),
        "sent",
    )


def render(row: OutboundEmail) -> EmailMultiAlternatives:
    """The e-mail as it is sent now: text and HTML."""
    chat = row.chat
    if row.kind == OutboundEmail.Kind.TRANSCRIPT:
        context = {"chat": chat, "messages": _public_transcript(chat)}
        subject = f"Your chat about {chat.topic}"
        name = "transcript"
    else:
        left = OfflineMessage.objects.filter(chat=chat).first()
        context = {"chat": chat, "left": left, "site_url": settings.SITE_URL}
        subject = f"{chat.visitor_name} left a message ({chat.topic})"
        name = "left_message"
    text = render_to_string(f"email/{name}.txt", context)
    html = render_to_string(f"email/{name}.html", context)
    # One line, whatever a visitor put in the name or topic (no header injection).
    subject = " ".join(subject.split())[:150]
    mail = EmailMultiAlternatives(subject=subject, body=text, to=[row.to])
    mail.attach_alternative(html, "text/html")
    return mail


def _public_transcript(chat: ChatSession) -> list[Message]:
    """What the visitor saw: no internal notes or agents-only notices."""
    return list(Message.objects.filter(chat=chat, public_seq__isnull=False).order_by("seq"))
