"""E-mail about chats: a visitor's transcript, and a left message for the agents who serve its
stage.

Each e-mail is a row first (chat.models.OutboundEmail), written in the caller's transaction, and
sent after commit by a Celery task (`escalation.tasks.send_email`) through Django's e-mail
backend. A failed send (the server refused, could not be reached, timed out) is tried again
later, backing off from 2 s to 10 minutes apart, up to EMAIL_MAX_TRIES tries in all (20: about
two hours); then the row is marked failed with the last error. A try claims the row first, so a
duplicate or redelivered task sends nothing while another is sending; beat's sweep sends the
rows whose task was lost. The content is rendered when it is sent: an erased chat's rows are
gone, and with them the e-mail.
"""

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
# A claimed e-mail is due again after this (its sender died if it is still pending by then):
# well past the mail server's timeout.
SEND_CLAIM = timedelta(minutes=5)


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


def send_email_now(*, email_id: int) -> str:
    """Send one pending e-mail that is due. Returns what happened: sent, retry, failed, early,
    gone (erased) or its status when it is no longer pending.

    Three steps, so that no transaction stays open while the mail server answers: claim the row
    (one more attempt, and due again only after SEND_CLAIM, so that a duplicate task or the
    sweep leaves it alone meanwhile), send, then record the outcome. A worker that dies while
    sending leaves the claim to run out, and the sweep tries again: at least once, so in that
    rare case the e-mail may arrive twice."""
    with transaction.atomic():
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
        if row.due_at > timezone.now():
            timers.arm(timers.SEND_EMAIL, row.pk, deadline=row.due_at)
            return "early"
        row.attempts += 1
        row.due_at = timezone.now() + SEND_CLAIM
        row.save(update_fields=["attempts", "due_at"])
    try:
        render(row).send()
    except Exception as exc:  # any failure is one failed try, never a row stuck pending
        return _failed(email_id=email_id, error=f"{type(exc).__name__}: {exc}")
    OutboundEmail.objects.filter(pk=email_id).update(
        status=OutboundEmail.Status.SENT, sent_at=timezone.now(), last_error=""
    )
    return "sent"


@transaction.atomic
def _failed(*, email_id: int, error: str) -> str:
    row = OutboundEmail.objects.select_for_update().filter(pk=email_id).first()
    if row is None:
        return "gone"
    row.last_error = error[:300]
    if row.attempts >= settings.EMAIL_MAX_TRIES:
        row.status = OutboundEmail.Status.FAILED
        row.save(update_fields=["last_error", "status"])
        return "failed"
    row.due_at = timezone.now() + retry_delay(row.attempts)
    row.save(update_fields=["last_error", "due_at"])
    timers.arm(timers.SEND_EMAIL, row.pk, deadline=row.due_at)
    return "retry"


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
