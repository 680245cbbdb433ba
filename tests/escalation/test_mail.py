"""E-mail about chats against a real SMTP server (aiosmtpd): a visitor's transcript, a left
message for the stage's agents, retries with back-off, no second send, erasure, the sweep."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from chat.exceptions import ChatStillOpen
from chat.models import ChatSession, OutboundEmail
from escalation import services
from escalation.models import Agent, QueueEntry
from tests.factories import start_chat, visitor_client
from tests.smtp import SmtpServer, parts

pytestmark = pytest.mark.django_db


def use_smtp(settings, server: SmtpServer) -> None:
    settings.EMAIL_ENABLED = True
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": server.port, "timeout": 5},
        }
    }


@pytest.fixture
def smtp(settings):
    server = SmtpServer()
    server.start()
    use_smtp(settings, server)
    yield server
    server.stop()


@pytest.fixture
def smtp_down(settings):
    """The mail server's address, with nothing listening there yet."""
    server = SmtpServer()
    use_smtp(settings, server)
    yield server
    server.stop()


def agent(username: str) -> Agent:
    return Agent.objects.get(user__username=username)


def ended_chat() -> ChatSession:
    """Carol's chat with Alex: a reply with markup, an internal note, ended by Alex."""
    services.set_presence(agent=agent("alex"), presence=Agent.Presence.ONLINE)
    chat = start_chat(first_message="My invoice is wrong")
    services.post_agent_message(chat_id=chat.pk, agent=agent("alex"), text="Fixed: <b>0 €</b>")
    services.post_agent_message(
        chat_id=chat.pk, agent=agent("alex"), text="Secret: refund approved", internal=True
    )
    services.end_chat_by_agent(chat_id=chat.pk, agent=agent("alex"))
    return chat


def row(email_id: int) -> OutboundEmail:
    return OutboundEmail.objects.get(pk=email_id)


def test_the_transcript_goes_to_the_visitor_without_internal_notes(demo, smtp):
    chat = ended_chat()
    queued = services.email_transcript(chat_id=chat.pk, to="carol@example.com")
    assert services.send_email_now(email_id=queued.pk) == "sent"
    [message] = smtp.inbox.wait_for(1)
    assert message["To"] == "carol@example.com"
    assert message["Subject"] == "Your chat about Billing"
    text, html = parts(message)
    assert "Carol: My invoice is wrong" in text and "Alex: Fixed: <b>0 €</b>" in text
    assert "— Alex from our support team joined the chat." in text
    assert "Secret" not in text and "Secret" not in html
    assert "Fixed: &lt;b&gt;0 €&lt;/b&gt;" in html and "<b>0" not in html
    sent = row(queued.pk)
    assert (sent.status, sent.attempts, sent.sent_at is not None) == ("sent", 1, True)
    # A duplicate or redelivered task sends nothing twice.
    assert services.send_email_now(email_id=queued.pk) == "sent"
    assert len(smtp.inbox.messages) == 1


def test_an_open_chats_transcript_is_refused(demo, smtp):
    chat = start_chat(visitor_email="")
    with pytest.raises(ChatStillOpen, match="once the chat has ended"):
        services.email_transcript(chat_id=chat.pk, to="carol@example.com")
    assert not OutboundEmail.objects.exists()


def test_a_failed_send_is_tried_again_later_then_marked_failed(demo, smtp_down, settings):
    settings.EMAIL_MAX_TRIES = 3
    chat = ended_chat()
    queued = services.email_transcript(chat_id=chat.pk, to="carol@example.com")
    assert services.send_email_now(email_id=queued.pk) == "retry"
    first = row(queued.pk)
    assert first.attempts == 1 and first.status == "pending"
    assert "ConnectionRefusedError" in first.last_error
    assert timedelta(seconds=1) < first.due_at - timezone.now() <= timedelta(seconds=2)
    assert services.send_email_now(email_id=queued.pk) == "early"  # not due: nothing tried
    assert row(queued.pk).attempts == 1
    OutboundEmail.objects.filter(pk=queued.pk).update(due_at=timezone.now())
    assert services.send_email_now(email_id=queued.pk) == "retry"
    second = row(queued.pk)
    assert second.due_at - timezone.now() > timedelta(seconds=3)  # 4 s: backing off
    OutboundEmail.objects.filter(pk=queued.pk).update(due_at=timezone.now())
    assert services.send_email_now(email_id=queued.pk) == "failed"
    assert (row(queued.pk).status, row(queued.pk).attempts) == ("failed", 3)


def test_a_send_that_failed_goes_out_once_the_server_is_back(demo, smtp_down):
    chat = ended_chat()
    queued = services.email_transcript(chat_id=chat.pk, to="carol@example.com")
    assert services.send_email_now(email_id=queued.pk) == "retry"
    smtp_down.start()
    OutboundEmail.objects.filter(pk=queued.pk).update(due_at=timezone.now())
    assert services.send_email_now(email_id=queued.pk) == "sent"
    assert len(smtp_down.inbox.wait_for(1)) == 1
    assert row(queued.pk).attempts == 2


def test_the_sweep_sends_an_email_whose_task_was_lost(demo, smtp):
    chat = ended_chat()
    queued = services.email_transcript(chat_id=chat.pk, to="carol@example.com")
    OutboundEmail.objects.filter(pk=queued.pk).update(due_at=timezone.now() - timedelta(minutes=2))
    assert services.sweep_due_emails() == 1
    assert row(queued.pk).status == "sent"
    assert services.sweep_due_emails() == 0


def test_a_left_message_is_mailed_to_the_agents_serving_its_stage(demo, smtp):
    users = get_user_model().objects
    users.filter(username="alex").update(email="alex@example.com")
    users.filter(username="blair").update(email="blair@example.com", is_active=False)
    users.filter(username="sam").update(email="sam@example.com")  # L2 Billing: not the stage's
    chat = start_chat(visitor_name="Carol\nBcc: victim@example.com", first_message="Hello?")
    entry = QueueEntry.objects.get(chat=chat, left_at__isnull=True)
    QueueEntry.objects.filter(pk=entry.pk).update(deadline=timezone.now())
    services.handle_wait_timeout(entry_id=entry.pk)  # L1: "leave a message"
    services.leave_offline_message(chat_id=chat.pk, text="Call me back, please.")
    [queued] = OutboundEmail.objects.filter(chat=chat, kind="left_message")
    assert queued.to == "alex@example.com"
    assert services.send_email_now(email_id=queued.pk) == "sent"
    [message] = smtp.inbox.wait_for(1)
    assert message["Subject"] == "Carol Bcc: victim@example.com left a message (Billing)"
    assert message["Bcc"] is None and message["To"] == "alex@example.com"
    text, _ = parts(message)
    assert "Call me back, please." in text and "Reply to: carol@example.com" in text


def test_erasing_the_visitor_takes_its_unsent_emails(demo, smtp):
    chat = ended_chat()
    queued = services.email_transcript(chat_id=chat.pk, to="carol@example.com")
    services.erase_visitor(email="carol@example.com")
    assert not OutboundEmail.objects.exists()
    assert services.send_email_now(email_id=queued.pk) == "gone"
    assert smtp.inbox.messages == []


def test_the_visitor_asks_for_the_transcript_from_the_page(demo, settings):
    settings.EMAIL_ENABLED = True
    settings.TRANSCRIPT_EMAIL_RATE_PER_VISITOR = "2/h"
    chat = ended_chat()
    client = visitor_client(chat)
    page = client.get("/chat/room/").content.decode()
    assert 'id="transcript-form"' in page and 'value="carol@example.com"' in page
    bad = client.post("/chat/room/transcript/", {"email": "not an address"})
    assert bad.status_code == 400 and "Enter a valid e-mail address." in bad.content.decode()
    assert 'value="not an address"' in bad.content.decode()  # kept to correct
    done = client.post("/chat/room/transcript/", {"email": "carol@example.org"}, follow=True)
    assert "We are e-mailing the transcript to carol@example.org." in done.content.decode()
    assert list(OutboundEmail.objects.values_list("to", "kind")) == [
        ("carol@example.org", "transcript")
    ]
    assert client.post("/chat/room/transcript/", {"email": "c@example.org"}).status_code == 302
    refused = client.post("/chat/room/transcript/", {"email": "c@example.org"})
    assert refused.status_code == 429 and "Too many transcripts" in refused.content.decode()
    assert OutboundEmail.objects.count() == 2
    assert Client().post("/chat/room/transcript/", {"email": "c@example.org"}).status_code == 302


def test_an_open_chat_does_not_offer_the_transcript_yet(demo, settings):
    settings.EMAIL_ENABLED = True
    chat = start_chat()
    client = visitor_client(chat)
    assert re.search(
        r'id="transcript-form"[^>]* hidden\b', client.get("/chat/room/").content.decode()
    )
    refused = client.post("/chat/room/transcript/", {"email": "carol@example.com"})
    assert refused.status_code == 400
    assert "once the chat has ended" in refused.content.decode()
    assert not OutboundEmail.objects.exists()


def test_with_email_off_nothing_offers_or_pretends_to_send_it(demo, settings):
    """No EMAIL_HOST: the page offers no transcript, asking anyway is "not found", and a left
    message queues no e-mail (the agents read it on the console's Left messages page)."""
    assert settings.EMAIL_ENABLED is False  # the tests' own settings: no EMAIL_HOST
    get_user_model().objects.filter(username="alex").update(email="alex@example.com")
    chat = ended_chat()
    client = visitor_client(chat)
    assert "transcript-form" not in client.get("/chat/room/").content.decode()
    assert client.post("/chat/room/transcript/", {"email": "c@example.org"}).status_code == 404
    services.set_presence(agent=agent("alex"), presence=Agent.Presence.OFFLINE)
    waiting = start_chat(visitor_name="Dan", visitor_email="dan@example.com")
    entry = QueueEntry.objects.get(chat=waiting, left_at__isnull=True)
    QueueEntry.objects.filter(pk=entry.pk).update(deadline=timezone.now())
    services.handle_wait_timeout(entry_id=entry.pk)  # L1: the "leave a message" form
    left = services.leave_offline_message(chat_id=waiting.pk, text="Call me back.")
    assert left.text == "Call me back."
    assert not OutboundEmail.objects.exists()


def test_any_failure_while_sending_is_one_failed_try_never_a_stuck_row(demo, smtp, monkeypatch):
    """Not only the mail server's errors: a failure of rendering or of the backend itself also
    counts as a try, so the row goes on backing off (and in the end fails) instead of being
    picked by every sweep forever."""
    from escalation.services import mail

    chat = ended_chat()
    queued = services.email_transcript(chat_id=chat.pk, to="carol@example.com")

    def broken(row):
        raise ValueError("the template broke")

    monkeypatch.setattr(mail, "render", broken)
    assert services.send_email_now(email_id=queued.pk) == "retry"
    failed = row(queued.pk)
    assert (failed.attempts, failed.last_error) == (1, "ValueError: the template broke")
    assert failed.due_at > timezone.now()


def test_a_claimed_email_is_left_alone_until_its_claim_runs_out(demo, smtp):
    """While one try is sending (its claim: attempts counted, due a few minutes on), a duplicate
    task or the sweep sends nothing; if that try's worker died, the sweep sends it once the
    claim has run out."""
    chat = ended_chat()
    queued = services.email_transcript(chat_id=chat.pk, to="carol@example.com")
    claimed_until = timezone.now() + timedelta(minutes=5)
    OutboundEmail.objects.filter(pk=queued.pk).update(attempts=1, due_at=claimed_until)
    assert services.send_email_now(email_id=queued.pk) == "early"
    assert services.sweep_due_emails() == 0
    assert smtp.inbox.messages == []
    OutboundEmail.objects.filter(pk=queued.pk).update(due_at=timezone.now() - timedelta(minutes=2))
    assert services.sweep_due_emails() == 1
    assert (row(queued.pk).status, row(queued.pk).attempts) == ("sent", 2)


def test_erasing_by_address_takes_the_chats_whose_transcript_went_there(demo, settings):
    settings.EMAIL_ENABLED = True
    chat = ended_chat()  # started as carol@example.com
    services.email_transcript(chat_id=chat.pk, to="carol.private@example.org")
    assert services.erase_visitor(email="Carol.Private@example.org")[0] == 1
    chat.refresh_from_db()
    assert chat.visitor_email == "" and not OutboundEmail.objects.exists()


def test_the_site_wide_cap_refuses_transcripts_from_every_client(demo, settings):
    settings.EMAIL_ENABLED = True
    settings.TRANSCRIPT_EMAIL_RATE_PER_SITE = "1/h"
    first, second = visitor_client(ended_chat()), visitor_client(ended_chat())
    assert first.post("/chat/room/transcript/", {"email": "a@example.org"}).status_code == 302
    refused = second.post("/chat/room/transcript/", {"email": "b@example.org"})
    assert refused.status_code == 429 and "Too many transcripts" in refused.content.decode()
    assert list(OutboundEmail.objects.values_list("to", flat=True)) == ["a@example.org"]


def test_check_deploy_warns_of_a_localhost_sender_with_email_on(settings):
    from chat.checks import check_email_sender

    settings.EMAIL_ENABLED, settings.DEFAULT_FROM_EMAIL = True, "Tierline <support@localhost>"
    assert [m.id for m in check_email_sender(None)] == ["tierline.W001"]
    settings.DEFAULT_FROM_EMAIL = "Support <support@example.com>"
    assert check_email_sender(None) == []
    settings.EMAIL_ENABLED, settings.DEFAULT_FROM_EMAIL = False, "Tierline <support@localhost>"
    assert check_email_sender(None) == []
