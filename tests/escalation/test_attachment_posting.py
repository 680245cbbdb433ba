"""Posting a file (escalation.services.posting.post_attachment): the posting rules of messages,
the flow event, internal notes, nothing left behind by a refusal, and erasure of files."""

import datetime as dt
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client

from chat import services as chat_services
from chat.attachments import site_limits
from chat.exceptions import AttachmentRefused, ChatClosed
from chat.models import Attachment, FlowEvent, Message
from chat.selectors import attachment_for_signature, signed_attachment_url
from escalation import services
from escalation.exceptions import NotYourChat
from escalation.frames import flow_summary
from tests.factories import PDF_BYTES, png_bytes, start_chat, upload

pytestmark = pytest.mark.django_db

PNG = png_bytes()


def files_on_disk(settings) -> list[Path]:
    return [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


def send(chat_id, name="shot.png", content=PNG, kind="image/png", **kwargs):
    return services.post_attachment(
        chat_id=chat_id, upload=upload(name, content, kind), limits=site_limits(), **kwargs
    )


@pytest.fixture
def held(l1_setup, alice_agent):
    services.set_presence(agent=alice_agent, presence="online")
    chat = start_chat()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    return chat


def test_a_file_is_a_numbered_message_and_a_flow_event(held, alice_agent):
    visitor_file = send(held.pk)
    agent_file = send(held.pk, "invoice.pdf", PDF_BYTES, "application/pdf", agent=alice_agent)
    assert [m.event for m in (visitor_file, agent_file)] == ["attachment", "attachment"]
    assert agent_file.seq == visitor_file.seq + 1
    assert agent_file.public_seq == visitor_file.public_seq + 1
    assert (agent_file.kind, agent_file.author_name) == (Message.Kind.AGENT, "Alice")
    events = list(FlowEvent.objects.filter(chat=held, kind="attachment").order_by("pk"))
    assert [e.data for e in events] == [
        {"by": "visitor", "type": "image/png", "size": f"{len(PNG)} bytes", "internal": False},
        {
            "by": "Alice",
            "type": "application/pdf",
            "size": f"{len(PDF_BYTES)} bytes",
            "internal": False,
        },
    ]
    assert events[1].actor == alice_agent.user
    texts = [row["text"] for row in flow_summary(chat_id=held.pk) if row["kind"] == "attachment"]
    assert texts[0].startswith("File sent by visitor (image/png, ")
    assert texts[1].startswith("File sent by Alice (application/pdf, ")
    # An agent's first reply may be a file: it counts as the first reply.
    assert FlowEvent.objects.filter(chat=held, kind="first_agent_message").count() == 1


def test_only_the_agent_holding_the_chat_may_send_a_file(l1_setup, alice_agent, settings):
    waiting = start_chat()  # in Alice's queue, not taken
    with pytest.raises(NotYourChat):
        send(waiting.pk, agent=alice_agent)
    assert Attachment.objects.count() == 0 and files_on_disk(settings) == []


def test_nobody_may_send_a_file_to_an_ended_chat(held, alice_agent, settings):
    services.end_chat_by_agent(chat_id=held.pk, agent=alice_agent)
    with pytest.raises(ChatClosed):
        send(held.pk)
    with pytest.raises(ChatClosed):
        send(held.pk, agent=alice_agent)
    assert Attachment.objects.count() == 0 and files_on_disk(settings) == []


def test_a_refused_file_stores_no_row_and_no_file(held, settings):
    with pytest.raises(AttachmentRefused):
        send(held.pk, "cat.png", PDF_BYTES, "image/png")
    assert Attachment.objects.count() == 0 and files_on_disk(settings) == []
    assert not Message.objects.filter(chat=held, event="attachment").exists()


def test_a_failure_after_the_file_was_stored_deletes_it(held, settings, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(chat_services, "add_flow_event", broken)
    with pytest.raises(RuntimeError):
        send(held.pk)
    assert Attachment.objects.count() == 0 and files_on_disk(settings) == []


def test_a_file_sent_in_note_mode_stays_internal(held, alice_agent):
    message = send(held.pk, agent=alice_agent, internal=True)
    assert message.kind == Message.Kind.INTERNAL and message.public_seq is None
    # Not in the visitor's transcript, and no signed link opens it even if one were made.
    from chat.selectors import visitor_transcript_lines

    assert all(m.event != "attachment" for m, _ in visitor_transcript_lines(chat_id=held.pk))
    url = signed_attachment_url(message.attachment)
    assert Client().get(url).status_code == 404
    with pytest.raises(Exception, match="There is no such file"):
        attachment_for_signature(value=url.split("/")[-2])


def test_erasing_a_visitor_deletes_the_rows_and_the_stored_files(
    held, alice_agent, settings, django_capture_on_commit_callbacks
):
    send(held.pk)
    send(held.pk, "invoice.pdf", PDF_BYTES, "application/pdf", agent=alice_agent)
    other = start_chat(visitor_email="dan@example.com")
    send(other.pk, "keep.png")
    assert len(files_on_disk(settings)) == 3
    with django_capture_on_commit_callbacks(execute=True):
        call_command("erase_visitor", email="carol@example.com", stdout=StringIO())
    assert list(Attachment.objects.values_list("name", flat=True)) == ["keep.png"]
    [kept] = files_on_disk(settings)
    assert kept.name == Path(Attachment.objects.get().file.name).name


def test_retention_deletes_old_files_too(
    l1_setup, alice_agent, settings, django_capture_on_commit_callbacks
):
    settings.TRANSCRIPT_RETENTION_DAYS = 30
    with time_machine.travel(dt.datetime.now(dt.UTC) - dt.timedelta(days=40), tick=False):
        chat = start_chat()
        send(chat.pk)
        services.end_chat_by_visitor(chat_id=chat.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.purge_expired_transcripts() == 1
    assert Attachment.objects.count() == 0 and files_on_disk(settings) == []


def test_erasure_that_rolls_back_keeps_the_files(held, settings):
    send(held.pk)
    services.end_chat_by_visitor(chat_id=held.pk)
    from django.db import transaction

    with transaction.atomic():
        services.erase_visitor(chat_id=held.pk)
        transaction.set_rollback(True)
    assert Attachment.objects.count() == 1 and len(files_on_disk(settings)) == 1
