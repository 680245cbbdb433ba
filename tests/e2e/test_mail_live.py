"""E-mail end to end: the visitor asks for the transcript on the page, a real Celery worker
sends it to a real SMTP server (aiosmtpd); with the server down the worker tries again later
and the e-mail goes out once it is back."""

import pytest
from django.test import Client
from playwright.sync_api import expect

from chat.models import OutboundEmail
from escalation import services
from escalation.models import Agent
from tests.e2e.live import ARTIFACTS, CeleryWorker, Daphne
from tests.factories import start_chat, visitor_client
from tests.smtp import SmtpServer, parts

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def smtp_and_worker(_flushed_test_redis, _django_db_helper, django_db_blocker):
    """An SMTP server's address (not listening yet) and a worker that sends mail to it."""
    server = SmtpServer()
    with django_db_blocker.unblock():
        worker = CeleryWorker(EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(server.port))
        worker.start()
    yield server, worker
    worker.stop()
    server.stop()


def ended_chat_client() -> tuple[int, Client]:
    alex = Agent.objects.get(user__username="alex")
    services.set_presence(agent=alex, presence=Agent.Presence.ONLINE)
    chat = start_chat(first_message="My invoice is wrong")
    services.post_agent_message(chat_id=chat.pk, agent=alex, text="Fixed it for you.")
    services.end_chat_by_agent(chat_id=chat.pk, agent=alex)
    return chat.pk, visitor_client(chat)


def test_the_worker_sends_the_transcript_and_tries_again_while_the_server_is_down(
    demo, smtp_and_worker, settings
):
    settings.EMAIL_ENABLED = True  # as EMAIL_HOST sets it (the view runs in this process)
    server, worker = smtp_and_worker
    chat_id, client = ended_chat_client()
    mark = len(worker.lines)
    assert client.post("/chat/room/transcript/", {"email": "carol@example.com"}).status_code == 302
    # Nothing listens yet: the worker's first try fails and it schedules another.
    worker.wait_for_line(lambda line: "send_email" in line and "'retry'" in line, start=mark)
    [queued] = OutboundEmail.objects.filter(chat_id=chat_id)
    assert (queued.status, queued.attempts) == ("pending", 1)
    assert "ConnectionRefusedError" in queued.last_error
    server.start()
    [message] = server.inbox.wait_for(1)
    text, _ = parts(message)
    assert message["To"] == "carol@example.com"
    assert "Alex: Fixed it for you." in text
    worker.wait_for_line(lambda line: "send_email" in line and "'sent'" in line, start=mark)
    queued.refresh_from_db()
    assert (queued.status, queued.attempts) == ("sent", 2)
    assert len(server.inbox.messages) == 1


@pytest.fixture
def mail_site(_flushed_test_redis, _django_db_helper, django_db_blocker):
    """daphne and a worker with e-mail set up, and the SMTP server they send to."""
    server = SmtpServer()
    server.start()
    env = {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(server.port)}
    with django_db_blocker.unblock():
        daphne, worker = Daphne(**env), CeleryWorker(**env)
        daphne.start()
        worker.start()
    yield daphne, server
    worker.stop()
    daphne.stop()
    server.stop()


@pytest.mark.browser
def test_the_visitor_gets_the_transcript_by_email_once_the_chat_is_over(demo, browser, mail_site):
    daphne, server = mail_site
    visitor = browser.new_context().new_page()
    visitor.on("dialog", lambda dialog: dialog.accept())
    visitor.goto(f"{daphne.base_url}/chat/")
    visitor.fill("#id_name", "Carol")
    visitor.fill("#id_email", "carol@example.com")
    visitor.select_option("#id_topic", "Billing")
    visitor.fill("#id_message", "I was charged twice")
    visitor.click("text=Start chat")
    visitor.wait_for_selector("#conn[data-state=open]")
    form = visitor.locator("#transcript-form")
    expect(form).to_be_hidden()  # not while the chat is open
    visitor.click("#end-chat")
    expect(form).to_be_visible()
    expect(visitor.locator("#transcript-email")).to_have_value("carol@example.com")
    form.locator("button[type=submit]").click()
    visitor.locator("text=We are e-mailing the transcript to carol@example.com.").wait_for()
    visitor.screenshot(path=ARTIFACTS / "12-visitor-transcript-by-email.png", full_page=True)
    [message] = server.inbox.wait_for(1)
    text, html = parts(message)
    assert message["To"] == "carol@example.com"
    assert "Carol: I was charged twice" in text and "I was charged twice" in html
