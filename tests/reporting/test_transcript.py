"""A chat's Transcript tab and its CSV and JSON downloads (reports): every line with author and
time, internal notes marked and hand-overs in place, for managers and the agents who may see
the chat."""

import csv
import io
import json

import pytest
from django.test import Client

from chat.models import ChatSession
from escalation import services
from escalation.models import Agent
from tests.factories import start_chat

pytestmark = pytest.mark.django_db


def agent(username: str) -> Agent:
    return Agent.objects.get(user__username=username)


def client_for(username: str) -> Client:
    client = Client()
    client.force_login(agent(username).user if username != "morgan" else _user("morgan"))
    return client


def _user(username: str):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=username)


@pytest.fixture
def escalated_chat(demo) -> ChatSession:
    """Alex takes Carol's chat, answers, writes an internal note, hands it to L2 Billing with a
    reason and a note; Sam takes it and answers."""
    services.set_presence(agent=agent("alex"), presence=Agent.Presence.ONLINE)
    chat = start_chat(first_message="I was charged twice <script>alert(1)</script>")
    services.post_agent_message(chat_id=chat.pk, agent=agent("alex"), text="Let me look.")
    services.post_agent_message(
        chat_id=chat.pk, agent=agent("alex"), text='=HYPERLINK("x") refund?', internal=True
    )
    services.escalate_chat(
        chat_id=chat.pk,
        agent=agent("alex"),
        keyword="billing",
        reason="Billing question",
        note="Charged twice on 3 March",
    )
    services.set_presence(agent=agent("sam"), presence=Agent.Presence.ONLINE)
    services.take_chat(chat_id=chat.pk, agent=agent("sam"))
    services.post_agent_message(chat_id=chat.pk, agent=agent("sam"), text="Refund is on its way.")
    return chat


def test_the_transcript_tab_shows_every_line_in_order_with_notes_marked(escalated_chat):
    page = client_for("morgan").get(f"/reports/chats/{escalated_chat.pk}/?tab=transcript")
    assert page.status_code == 200
    html = page.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    order = [
        "I was charged twice",
        "Alex from our support team joined the chat.",
        "Let me look.",
        "refund?",
        "Alex left the chat.",
        "Handed over from Alex (Level 1) to L2 Billing (Level 2). Reason: Billing question. "
        "Note: Charged twice on 3 March",
        "You are being transferred to the billing team.",
        "Sam from the billing team joined the chat.",
        "Refund is on its way.",
    ]
    places = [html.index(text) for text in order]
    assert places == sorted(places), order
    lines = page.context["transcript"]
    note = next(line for line in lines if "refund?" in line.text)
    assert (note.label, note.visible_to_visitor) == ("Internal note", False)
    handover = next(line for line in lines if line.kind == "handover")
    assert (handover.author, handover.visible_to_visitor) == ("Alex", False)
    assert html.count("not shown to the visitor") == 2  # the note and the hand-over


def test_an_agent_who_held_the_chat_reads_it_and_another_agent_is_told_nothing(escalated_chat):
    url = f"/reports/chats/{escalated_chat.pk}/?tab=transcript"
    assert client_for("alex").get(url).status_code == 200  # held it before the hand-over
    assert client_for("sam").get(url).status_code == 200
    assert client_for("jordan").get(url).status_code == 404  # L3: never saw it
    assert (
        client_for("jordan").get(f"/reports/chats/{escalated_chat.pk}/transcript.csv").status_code
        == 404
    )


def test_the_csv_download_has_the_same_lines_and_no_formula(escalated_chat):
    response = client_for("morgan").get(f"/reports/chats/{escalated_chat.pk}/transcript.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert f"chat-{escalated_chat.pk}-transcript.csv" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "time",
        "seq",
        "kind",
        "author",
        "text",
        "shown_to_visitor",
        "file_type",
        "file_bytes",
        "file_url",
    ]
    kinds = [row[2] for row in rows[1:]]
    assert kinds[:2] == ["Visitor", "System notice"]
    assert "Hand-over" in kinds and "Internal note" in kinds
    note = next(row for row in rows if "refund?" in row[4])
    assert note[4].startswith("'=") and note[5] == "no"  # a spreadsheet reads it as text
    assert rows[-1][3:] == ["Sam", "Refund is on its way.", "yes", "", "", ""]


def test_the_json_download_has_the_same_lines(escalated_chat):
    response = client_for("alex").get(f"/reports/chats/{escalated_chat.pk}/transcript.json")
    assert response.status_code == 200
    data = json.loads(response.content)
    assert (data["chat"], data["visitor"], data["status"]) == (
        escalated_chat.pk,
        "Carol",
        "active",
    )
    assert [line["label"] for line in data["lines"]][:3] == [
        "Visitor",
        "System notice",
        "Agent",
    ]
    handover = next(line for line in data["lines"] if line["kind"] == "handover")
    assert handover["seq"] is None and "Charged twice on 3 March" in handover["text"]


def test_a_missing_chat_or_format_is_not_found(demo):
    client = client_for("morgan")
    assert client.get("/reports/chats/987654/transcript.csv").status_code == 404
    assert client.get("/reports/chats/987654/?tab=transcript").status_code == 404
    chat = start_chat(visitor_email="")
    assert client.get(f"/reports/chats/{chat.pk}/transcript.pdf").status_code == 404
    assert client.get(f"/reports/chats/{chat.pk}/?tab=nope").context["tab"] == "metadata"


def test_files_show_on_the_tab_and_in_the_downloads_with_the_apis_link(escalated_chat):
    from chat.attachments import site_limits
    from tests.factories import PDF_BYTES, png_bytes, upload

    services.post_attachment(
        chat_id=escalated_chat.pk,
        upload=upload("shot.png", png_bytes(), "image/png"),
        limits=site_limits(),
    )
    message = services.post_attachment(
        chat_id=escalated_chat.pk,
        upload=upload("refund.pdf", PDF_BYTES, "application/pdf"),
        limits=site_limits(),
        agent=agent("sam"),
    )
    url = f"/api/v1/chats/{escalated_chat.pk}/attachments/{message.attachment.pk}/"
    client = client_for("morgan")
    page = client.get(f"/reports/chats/{escalated_chat.pk}/?tab=transcript").content.decode()
    assert 'class="attachment-preview"' in page and 'alt="shot.png"' in page
    assert f'href="{url}"' in page and "refund.pdf" in page
    assert client.get(url).status_code == 200  # the manager's session opens the link
    csv_text = b"".join(
        client.get(f"/reports/chats/{escalated_chat.pk}/transcript.csv").streaming_content
    ).decode()
    last = list(csv.reader(io.StringIO(csv_text)))[-1]
    assert last[3:] == ["Sam", "refund.pdf", "yes", "application/pdf", str(len(PDF_BYTES)), url]
    lines = json.loads(client.get(f"/reports/chats/{escalated_chat.pk}/transcript.json").content)
    assert lines["lines"][-1]["attachment"]["url"] == url
    flow = client.get(f"/reports/chats/{escalated_chat.pk}/?tab=flow").content.decode()
    assert "File sent" in flow
