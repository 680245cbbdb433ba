"""Visitor pages: the start form, the room, the leave-a-message form; and what anonymous
visitors may not do too often: start chats, leave messages, join a full queue."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from chat.models import ChatSession, FlowEvent
from chat.views import VISITOR_COOKIE
from escalation import services
from escalation.models import OfflineMessage, QueueEntry

pytestmark = pytest.mark.django_db


def start(client, address: str = "127.0.0.1", **overrides):
    data = {
        "name": "Carol",
        "email": "carol@example.com",
        "topic": "Billing",
        "message": "Help please",
        "page": "/pricing",
    }
    data.update(overrides)
    return client.post("/chat/", data, HTTP_USER_AGENT="Firefox/1.0", REMOTE_ADDR=address)


def test_start_form_errors_are_shown_next_to_the_fields(client, demo):
    response = start(client, name="  ", topic="Nope", message="", email="not-an-email")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_name_error"' in body and 'id="id_topic_error"' in body
    assert "Enter an e-mail address, e.g. name@example.com." in body
    assert not ChatSession.objects.exists()


def test_start_creates_the_chat_and_the_room_shows_it(client, demo):
    response = start(client)
    assert response.status_code == 302 and response["Location"] == "/chat/room/"
    chat = ChatSession.objects.get()
    assert chat.visitor_context == {"page": "/pricing", "user_agent": "Firefox/1.0", "language": ""}
    room = client.get("/chat/room/").content.decode()
    assert "Help please" in room and "Chat about <bdi>Billing</bdi>" in room
    assert client.get("/chat/").status_code == 302  # an open chat: back to the room


def test_the_room_escapes_what_visitors_typed(client, demo):
    start(client, message="<script>alert(1)</script>")
    room = client.get("/chat/room/").content.decode()
    assert "<script>alert(1)</script>" not in room
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in room


def test_no_room_without_a_chat_cookie(client):
    assert client.get("/chat/room/")["Location"] == "/chat/"


def test_leave_a_message_after_the_fallback_offers_it(client, demo):
    start(client)
    chat = ChatSession.objects.get()
    entry = QueueEntry.objects.get(chat=chat)
    QueueEntry.objects.filter(pk=entry.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    services.handle_wait_timeout(entry_id=entry.pk)
    room = client.get("/chat/room/").content.decode()
    assert 'id="offline-form"' in room and 'id="offline-form" hidden' not in room
    bad = client.post("/chat/room/leave-message/", {"email": "x", "text": ""})
    assert "Enter a valid email address." in bad.content.decode()
    ok = client.post("/chat/room/leave-message/", {"email": "c@example.com", "text": "Call me"})
    assert ok.status_code == 302
    assert OfflineMessage.objects.get().text == "Call me"
    again = client.post("/chat/room/leave-message/", {"email": "c@example.com", "text": "Again"})
    assert "This chat does not take a message." in again.content.decode()
    assert OfflineMessage.objects.count() == 1


def test_the_form_is_refused_while_the_chat_is_live(client, demo):
    start(client)
    response = client.post("/chat/room/leave-message/", {"email": "c@example.com", "text": "hi"})
    assert "This chat does not take a message." in response.content.decode()


def test_new_chat_forgets_the_old_one(client, demo):
    start(client)
    client.post("/chat/new/")
    assert client.get("/chat/").status_code == 200


def test_a_cookie_with_odd_digits_is_ignored_not_a_crash(client, demo):
    client.cookies["tierline_chat"] = "²:x"
    assert client.get("/chat/room/").status_code == 302
    client.cookies["tierline_chat"] = "9" * 40 + ":x"
    assert client.get("/chat/").status_code == 200


def test_a_long_page_field_is_cut_not_refused(client, demo):
    """Issue 13: a `page` over 500 characters (a long document.referrer) re-showed the start form
    with an error on a hidden field, and that visitor could never start a chat."""
    referrer = "https://example.com/search?q=" + "x" * 3000
    response = start(client, page=referrer)
    assert response.status_code == 302 and response["Location"] == "/chat/room/"
    assert ChatSession.objects.get().visitor_context["page"] == referrer[:500]


# --- Rate limits: one client could start 300 chats in a row -----------------------------------
def test_chat_starts_are_limited_per_address_and_the_page_keeps_what_was_typed(demo, settings):
    assert settings.CHAT_START_RATE_PER_ADDRESS == "5/10m"
    for _ in range(5):
        assert start(Client(), address="198.51.100.20").status_code == 302
    refused = start(Client(), address="198.51.100.20", name="Dora", message="My card was charged")
    body = refused.content.decode()
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 600
    assert "<h1>Too many chats</h1>" in body and 'class="topbar"' in body  # the site's layout
    assert 'value="Dora"' in body and "My card was charged</textarea>" in body
    assert ChatSession.objects.count() == 5
    assert start(Client(), address="198.51.100.21").status_code == 302  # someone else: fine
    # An IPv6 client is counted by its /64: another address of the same host is the same client.
    for n in range(5):
        assert start(Client(), address=f"2001:db8:1:2::{n + 1}").status_code == 302
    assert start(Client(), address="2001:db8:1:2:ffff::9").status_code == 429


def test_a_form_with_errors_does_not_use_up_a_start(demo, settings):
    settings.CHAT_START_RATE_PER_ADDRESS = "1/10m"
    for _ in range(3):
        assert start(Client(), name="  ").status_code == 200  # typos: the form, with its errors
    assert start(Client()).status_code == 302


def test_chat_starts_are_limited_per_visitor_token(demo, settings):
    """A browser that keeps its chat cookie while its address changes (a phone between networks)
    is counted by the token in that cookie."""
    settings.CHAT_START_RATE_PER_VISITOR = "2/10m"
    answers = []
    for n in range(3):
        browser = Client()
        browser.cookies[VISITOR_COOKIE] = "999999:the-same-old-token"
        answers.append(start(browser, address=f"198.51.100.{30 + n}").status_code)
    assert answers == [302, 302, 429]


def test_left_messages_are_limited_and_the_refusal_keeps_the_message(demo, settings):
    """Three visitors from one address each get the "leave a message" form (the queue is full)
    and send it; past LEFT_MESSAGE_RATE_PER_ADDRESS the third is refused with a 429 that keeps
    what was typed."""
    settings.MAX_WAITING_CHATS_PER_PIPELINE = 1
    settings.LEFT_MESSAGE_RATE_PER_ADDRESS = "2/10m"
    start(Client(), address="198.51.100.40")  # waits in line: the queue is now full
    answers = []
    for n in range(3):
        browser = Client(REMOTE_ADDR="198.51.100.40")
        start(browser, address="198.51.100.40", name=f"V{n}")
        sent = browser.post(
            "/chat/room/leave-message/", {"email": f"v{n}@example.com", "text": f"Call me {n}"}
        )
        answers.append(sent.status_code)
    assert answers == [302, 302, 429]
    body = sent.content.decode()
    assert "Too many messages from your connection" in body
    assert 'value="v2@example.com"' in body and "Call me 2</textarea>" in body
    assert sorted(OfflineMessage.objects.values_list("text", flat=True)) == [
        "Call me 0",
        "Call me 1",
    ]


# --- A cap on the waiting line: a flood of starts made every queue change slower ----------------
def test_past_the_cap_a_new_visitor_gets_the_leave_a_message_form(demo, settings):
    settings.MAX_WAITING_CHATS_PER_PIPELINE = 2
    for n in range(2):
        start(Client(), address=f"198.51.100.{50 + n}")
    assert QueueEntry.objects.filter(left_at__isnull=True).count() == 2
    visitor = Client()
    response = start(visitor, address="198.51.100.60", name="Erin", message="Where is my refund?")
    assert response.status_code == 302 and response["Location"] == "/chat/room/"
    chat = ChatSession.objects.get(visitor_name="Erin")
    assert chat.status == ChatSession.Status.MISSED and not chat.queue_entries.exists()
    assert chat.flow.filter(
        kind=FlowEvent.Kind.FELL_BACK, data__action="leave_message", data__why="queue full"
    ).exists()
    room = visitor.get("/chat/room/").content.decode()
    assert "Where is my refund?" in room  # what the visitor wrote is kept
    assert 'id="offline-form"' in room and 'id="offline-form" hidden' not in room
    sent = visitor.post(
        "/chat/room/leave-message/", {"email": "erin@example.com", "text": "Refund"}
    )
    assert sent.status_code == 302 and OfflineMessage.objects.get().chat == chat
    # The queue did not grow; another pipeline (topic "Buying") still queues.
    assert QueueEntry.objects.filter(left_at__isnull=True).count() == 2
    start(Client(), address="198.51.100.61", topic="Buying")
    assert QueueEntry.objects.filter(left_at__isnull=True).count() == 3
