"""Visitor pages: the start form, the room, the leave-a-message form."""

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import ChatSession
from escalation import services
from escalation.models import OfflineMessage, QueueEntry

pytestmark = pytest.mark.django_db


def start(client, **overrides):
    data = {
        "name": "Carol",
        "email": "carol@example.com",
        "topic": "Billing",
        "message": "Help please",
        "page": "/pricing",
    }
    data.update(overrides)
    return client.post("/chat/", data, HTTP_USER_AGENT="Firefox/1.0")


def test_start_form_errors_are_shown_next_to_the_fields(client, demo):
    response = start(client, name="  ", topic="Nope", message="", email="not-an-email")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_name-error"' in body and 'id="id_topic-error"' in body
    assert "Enter a valid email address." in body
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
