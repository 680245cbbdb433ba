"""Files in chats: the rules a file must pass (chat/attachments.py), the visitor's upload (token
header, no cookie, no CSRF), the signed links visitors download with, the API's upload and
download for those who may read the chat, and the frames that carry a file."""

import datetime as dt

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from chat.attachments import (
    AttachmentLimits,
    check_upload,
    clean_file_name,
    format_bytes,
    site_limits,
)
from chat.events import chat_agents_group, chat_visitor_group
from chat.exceptions import AttachmentRefused, AttachmentTooLarge
from chat.models import Attachment
from chat.selectors import make_visitor_token, signed_attachment_url
from escalation import services
from tests.chat.test_events import Listener
from tests.factories import PDF_BYTES, png_bytes, start_chat, upload

PNG = png_bytes()
ALL = tuple(site_limits().types)


def check(name: str, content: bytes, declared: str = "", **limits):
    return check_upload(
        name=name,
        declared_type=declared,
        size=len(content),
        head=content[:8192],
        max_bytes=limits.get("max_bytes", 10 * 1024 * 1024),
        allowed_types=limits.get("allowed_types", ALL),
    )


# --- The rules -----------------------------------------------------------------------------------
def test_check_upload_accepts_an_image_a_pdf_and_text_and_takes_the_type_from_the_content():
    assert check("shot.PNG", PNG, "image/png").content_type == "image/png"
    assert check("shot.png", PNG).is_image
    assert check("invoice.pdf", PDF_BYTES, "application/pdf").content_type == "application/pdf"
    assert check("notes.txt", "Grüße\n".encode()).content_type == "text/plain"
    # Browsers name CSV files all sorts of things; a text type or an unknown one is no lie.
    assert check("rows.csv", b"a,b\n1,2\n", "text/plain").content_type == "text/csv"
    assert check("rows.csv", b"a,b\n", "application/vnd.ms-excel").content_type == "text/csv"


def test_check_upload_refuses_an_empty_file():
    with pytest.raises(AttachmentRefused, match="The file is empty"):
        check("empty.txt", b"")


def test_check_upload_refuses_a_file_over_the_limit_and_says_the_limit():
    with pytest.raises(AttachmentTooLarge, match=r"The file is 2 KB; the limit is 1 KB\."):
        check("big.txt", b"x" * 2048, max_bytes=1024)
    assert format_bytes(10 * 1024 * 1024) == "10 MB"
    assert format_bytes(1536) == "1.5 KB"


@pytest.mark.parametrize("name", ["setup.exe", "page.html", "logo.svg", "noextension", "a.png.js"])
def test_check_upload_refuses_a_type_not_allowed_and_lists_the_allowed_ones(name):
    with pytest.raises(AttachmentRefused) as refused:
        check(name, b"MZ\x90\x00 whatever")
    assert refused.value.message == (
        "Files of this type cannot be sent. You can send PNG, JPEG, GIF, WebP, PDF, text and "
        "CSV files."
    )


def test_the_limits_are_arguments_so_another_set_of_limits_plugs_in():
    with pytest.raises(AttachmentRefused, match="You can send PDF files"):
        check("shot.png", PNG, allowed_types=("application/pdf",))
    assert check("shot.png", PNG, allowed_types=("image/png",), max_bytes=len(PNG)).size == len(PNG)
    limits = AttachmentLimits(max_bytes=5, types=("text/plain",))
    with pytest.raises(AttachmentTooLarge, match="the limit is 5 bytes"):
        check("a.txt", b"123456", max_bytes=limits.max_bytes, allowed_types=limits.types)


def test_check_upload_refuses_content_that_contradicts_the_name():
    with pytest.raises(AttachmentRefused, match="content is not PNG"):
        check("photo.png", PDF_BYTES, "image/png")
    with pytest.raises(AttachmentRefused, match="content is not PDF"):
        check("invoice.pdf", b"<html><script>alert(1)</script></html>")
    with pytest.raises(AttachmentRefused, match="content is not text"):
        check("notes.txt", b"\x00\x01binary\xff\xfe")
    with pytest.raises(AttachmentRefused, match="content is not text"):
        check("latin1.txt", "café".encode("latin-1"))


def test_check_upload_refuses_a_declared_type_that_contradicts_the_name():
    with pytest.raises(AttachmentRefused, match="not a PDF file"):
        check("invoice.pdf", PDF_BYTES, "image/png")


def test_a_text_file_cut_in_the_middle_of_a_character_is_still_text():
    text = ("é" * 5000).encode()  # 10000 bytes; the first 8192 end inside no character, but
    head = text[:8191]  # this cut does
    checked = check_upload(
        name="a.txt",
        declared_type="text/plain",
        size=len(text),
        head=head,
        max_bytes=10**6,
        allowed_types=ALL,
    )
    assert checked.content_type == "text/plain"


@pytest.mark.parametrize(
    ("given", "cleaned"),
    [
        ("C:\\Users\\carol\\Desktop\\shot.png", "shot.png"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("invoice\u202egnp.exe.pdf", "invoicegnp.exe.pdf"),  # no right-to-left override
        ("tab\tand\nnewline\x00.txt", "tabandnewline.txt"),
        (".hidden.txt", "hidden.txt"),
        ("   ", "file"),
        ("x" * 300 + ".pdf", "x" * 96 + ".pdf"),
        ("Rechnung März.pdf", "Rechnung März.pdf"),
    ],
)
def test_file_names_are_cleaned(given, cleaned):
    assert clean_file_name(given) == cleaned


# --- The visitor's upload ------------------------------------------------------------------------
def visitor_header(chat) -> dict[str, str]:
    return {"HTTP_X_TIERLINE_VISITOR": f"{chat.pk}:{make_visitor_token(chat)}"}


def post_file(chat, name="shot.png", content=PNG, content_type="image/png", **headers):
    return Client(enforce_csrf_checks=True).post(
        "/chat/room/attachments/",
        {"file": upload(name, content, content_type)},
        **(visitor_header(chat) if chat is not None else {}),
        **headers,
    )


def stored_files(settings) -> list[str]:
    from pathlib import Path

    return [str(p) for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


def test_a_visitor_sends_a_file_with_the_token_header_and_no_cookie_or_csrf(
    l1_setup, settings, django_capture_on_commit_callbacks
):
    chat = start_chat()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_file(chat, name="my photo.png")
    assert response.status_code == 201
    attachment = Attachment.objects.get(chat=chat)
    assert response.json() == {"seq": attachment.message.public_seq}
    assert (attachment.name, attachment.content_type, attachment.size_bytes) == (
        "my photo.png",
        "image/png",
        len(PNG),
    )
    assert attachment.uploader == "visitor"
    assert attachment.message.text == "my photo.png"
    assert attachment.message.event == "attachment"
    # The name on disk is random, never the visitor's.
    [path] = stored_files(settings)
    assert "photo" not in path and path.endswith(".png")
    assert attachment.file.name.startswith("attachments/")


def test_the_visitor_upload_refuses_anyone_without_a_good_token_header(l1_setup, settings):
    chat, other = start_chat(), start_chat(visitor_email="dan@example.com")
    bad = [
        post_file(None),  # no header
        post_file(None, HTTP_X_TIERLINE_VISITOR=f"{chat.pk}:{make_visitor_token(other)}"),
        post_file(None, HTTP_X_TIERLINE_VISITOR=f"{chat.pk}:tampered"),
        post_file(None, HTTP_X_TIERLINE_VISITOR="not-a-credential"),
    ]
    assert [r.status_code for r in bad] == [403, 403, 403, 403]
    assert bad[0].json()["error"]["message"] == "Your chat could not be found. Reload the page."
    # The chat cookie alone is not enough either: the credential is the header.
    from tests.factories import visitor_client

    cookie_only = visitor_client(chat).post(
        "/chat/room/attachments/", {"file": upload("a.png", PNG, "image/png")}
    )
    assert cookie_only.status_code == 403
    assert Attachment.objects.count() == 0 and stored_files(settings) == []


def test_a_refused_visitor_file_gets_a_clear_message_and_stores_nothing(l1_setup, settings):
    chat = start_chat()
    settings.ATTACHMENT_MAX_BYTES = 1024
    too_big = post_file(chat, name="big.txt", content=b"x" * 2000, content_type="text/plain")
    assert too_big.status_code == 413
    assert too_big.json()["error"] == {
        "code": "attachment_too_large",
        "message": "The file is 2 KB; the limit is 1 KB.",
    }
    wrong_type = post_file(chat, name="run.exe", content=b"MZ\x90", content_type="")
    assert wrong_type.status_code == 400
    assert "You can send PNG, JPEG" in wrong_type.json()["error"]["message"]
    fake = post_file(chat, name="cat.png", content=PDF_BYTES, content_type="image/png")
    assert fake.status_code == 400
    assert fake.json()["error"]["message"] == "The file's content is not PNG, as its name says."
    no_file = Client().post("/chat/room/attachments/", {}, **visitor_header(chat))
    assert no_file.json()["error"]["message"] == "Choose a file to send."
    assert Attachment.objects.count() == 0 and stored_files(settings) == []


def test_a_body_too_large_for_any_file_is_refused_before_it_is_read(l1_setup, settings):
    chat = start_chat()
    settings.ATTACHMENT_MAX_BYTES = 100
    response = post_file(chat, content=PNG + b"\x00" * 70000)
    assert response.status_code == 413
    assert response.json()["error"]["message"] == "The file is too large; the limit is 100 bytes."


def test_a_visitor_may_not_send_files_to_an_ended_chat(l1_setup, settings):
    chat = start_chat()
    services.end_chat_by_visitor(chat_id=chat.pk)
    response = post_file(chat)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "chat_closed"
    assert Attachment.objects.count() == 0 and stored_files(settings) == []


def test_visitor_uploads_are_rate_limited(l1_setup, settings):
    settings.ATTACHMENT_RATE_PER_VISITOR = "2/10m"
    chat = start_chat()
    codes = [post_file(chat).status_code for _ in range(3)]
    assert codes == [201, 201, 429]
    refused = post_file(chat)
    assert refused["Retry-After"]
    assert refused.json()["error"]["message"].startswith("Too many files sent. Please wait about")


# --- The visitor's signed links ------------------------------------------------------------------
@pytest.fixture
def visitor_png(l1_setup):
    chat = start_chat()
    services.post_attachment(
        chat_id=chat.pk, upload=upload("shot.png", PNG, "image/png"), limits=site_limits()
    )
    return Attachment.objects.get(chat=chat)


def test_a_signed_link_serves_an_image_inline_without_cookies(visitor_png):
    response = Client().get(signed_attachment_url(visitor_png))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PNG
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("inline")


def test_a_pdf_or_text_is_served_as_a_download_with_its_stored_type(l1_setup):
    chat = start_chat()
    for name, content, kind in (
        ("invoice.pdf", PDF_BYTES, "application/pdf"),
        ("notes.txt", b"<script>alert(1)</script>", "text/plain"),
    ):
        services.post_attachment(
            chat_id=chat.pk, upload=upload(name, content, kind), limits=site_limits()
        )
        response = Client().get(signed_attachment_url(Attachment.objects.get(name=name)))
        assert response["Content-Type"].startswith(kind)
        assert response["Content-Disposition"] == f'attachment; filename="{name}"'
        assert response["X-Content-Type-Options"] == "nosniff"


def test_an_expired_or_tampered_link_is_refused_with_a_clear_message(visitor_png, settings):
    url = signed_attachment_url(visitor_png)
    later = timezone.now() + dt.timedelta(seconds=settings.ATTACHMENT_URL_MAX_AGE_SECONDS + 5)
    with time_machine.travel(later, tick=False):
        expired = Client().get(url)
    assert expired.status_code == 403
    assert expired.content.decode() == (
        "This link to the file has expired. Reload the chat page for a fresh one."
    )
    tampered = Client().get(url.replace(url.split("/")[-2][:4], "AAAA", 1))
    assert tampered.status_code == 404
    assert tampered.content.decode() == "There is no such file."
    assert Client().get("/chat/files/nonsense/").status_code == 404


def test_a_link_to_a_file_gone_from_the_storage_is_not_found(visitor_png):
    visitor_png.file.storage.delete(visitor_png.file.name)
    response = Client().get(signed_attachment_url(visitor_png))
    assert response.status_code == 404
    assert response.content.decode() == "The file is no longer stored."


def test_the_room_page_shows_files_with_fresh_signed_links(visitor_png):
    from tests.factories import visitor_client

    page = visitor_client(visitor_png.chat).get("/chat/room/").content.decode()
    assert 'class="attachment-preview"' in page and 'alt="shot.png"' in page
    assert "/chat/files/" in page
    assert 'id="attach-file"' in page and "Attach file" in page


# --- Frames --------------------------------------------------------------------------------------
def test_a_file_reaches_both_streams_with_a_link_for_each(
    l1_setup, alice_agent, django_capture_on_commit_callbacks
):
    chat = start_chat()
    services.set_presence(agent=alice_agent, presence="online")
    visitor, agents = Listener(chat_visitor_group(chat.pk)), Listener(chat_agents_group(chat.pk))
    with django_capture_on_commit_callbacks(execute=True):
        message = services.post_attachment(
            chat_id=chat.pk, upload=upload("shot.png", PNG, "image/png"), limits=site_limits()
        )
    attachment = message.attachment
    file = {"id": attachment.pk, "name": "shot.png", "size": len(PNG), "type": "image/png"}
    common = {
        "type": "message",
        "v": 3,
        "chat": chat.pk,
        "kind": "visitor",
        "event": "attachment",
        "author": "Carol",
        "text": "shot.png",
        "at": message.created_at.isoformat(),
        "client_id": None,
    }
    [to_visitor] = visitor.receive_all()
    url = to_visitor["attachment"].pop("url")
    assert url.startswith("/chat/files/") and Client().get(url).status_code == 200
    assert to_visitor == {
        **common,
        "seq": message.public_seq,
        "attachment": {**file, "image": True},
    }
    [to_agents] = agents.receive_all()
    assert to_agents == {
        **common,
        "seq": message.seq,
        "attachment": {
            **file,
            "image": True,
            "url": f"/api/v1/chats/{chat.pk}/attachments/{attachment.pk}/",
        },
    }


def test_a_text_message_frame_has_no_attachment_field(l1_setup, django_capture_on_commit_callbacks):
    chat = start_chat()
    agents = Listener(chat_agents_group(chat.pk))
    with django_capture_on_commit_callbacks(execute=True):
        services.post_visitor_message(chat_id=chat.pk, text="plain")
    [frame] = agents.receive_all()
    assert "attachment" not in frame


# --- The API -------------------------------------------------------------------------------------
def api(user) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")


@pytest.fixture
def held_chat(l1_setup, alice_agent):
    services.set_presence(agent=alice_agent, presence="online")
    chat = start_chat()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    chat.refresh_from_db()
    return chat


def test_the_holder_sends_a_file_through_the_api_and_reads_it_in_the_messages(
    held_chat, alice_agent
):
    client = api(alice_agent.user)
    response = client.post(
        f"/api/v1/chats/{held_chat.pk}/attachments/",
        {"file": upload("invoice.pdf", PDF_BYTES, "application/pdf")},
    )
    assert response.status_code == 201, response.content
    attachment = Attachment.objects.get(chat=held_chat)
    assert attachment.uploader == "agent" and attachment.agent_user == alice_agent.user
    download = f"/api/v1/chats/{held_chat.pk}/attachments/{attachment.pk}/"
    assert response.json()["attachment"] == {
        "id": attachment.pk,
        "name": "invoice.pdf",
        "size": len(PDF_BYTES),
        "type": "application/pdf",
        "image": False,
        "download_url": download,
    }
    messages = client.get(f"/api/v1/chats/{held_chat.pk}/messages/").json()["messages"]
    assert messages[0]["attachment"] is None
    assert messages[-1]["attachment"]["download_url"] == download
    got = client.get(download)
    assert got.status_code == 200 and b"".join(got.streaming_content) == PDF_BYTES
    assert got["Content-Disposition"] == 'attachment; filename="invoice.pdf"'


def test_an_agent_who_does_not_hold_the_chat_cannot_send_a_file(
    held_chat, bob_agent_other_queue, settings
):
    from tests.factories import AgentFactory, UserFactory

    response = api(bob_agent_other_queue.user).post(
        f"/api/v1/chats/{held_chat.pk}/attachments/", {"file": upload("a.png", PNG, "image/png")}
    )
    assert response.status_code == 404  # another group's agent is told nothing of the chat
    colleague = AgentFactory(user=UserFactory(username="cleo", roles=["Agents"]))
    colleague.groups.add(held_chat.route.stage.groups.first())
    response = api(colleague.user).post(
        f"/api/v1/chats/{held_chat.pk}/attachments/", {"file": upload("a.png", PNG, "image/png")}
    )
    assert response.status_code == 404, response.content
    assert Attachment.objects.count() == 0 and stored_files(settings) == []


def test_downloads_follow_who_may_read_the_chat(held_chat, bob_agent_other_queue, manager_user):
    services.post_attachment(
        chat_id=held_chat.pk, upload=upload("shot.png", PNG, "image/png"), limits=site_limits()
    )
    attachment = Attachment.objects.get()
    url = f"/api/v1/chats/{held_chat.pk}/attachments/{attachment.pk}/"
    assert api(held_chat.route.agent.user).get(url).status_code == 200
    assert api(bob_agent_other_queue.user).get(url).status_code == 404
    assert api(manager_user).get(url).status_code == 200
    assert Client().get(url).status_code == 401
    # The session the console has works too, and an id of another chat is not found.
    console = Client()
    console.force_login(held_chat.route.agent.user)
    assert console.get(url).status_code == 200
    other = start_chat(visitor_email="dan@example.com")
    assert console.get(f"/api/v1/chats/{other.pk}/attachments/{attachment.pk}/").status_code == 404


def test_a_type_tierline_cannot_check_is_a_configuration_error(settings):
    from chat.checks import check_attachment_types

    assert check_attachment_types(None) == []
    settings.ATTACHMENT_TYPES = ["image/png", "image/svg+xml"]
    [error] = check_attachment_types(None)
    assert error.id == "tierline.E001" and "image/svg+xml" in error.msg


def test_the_console_sends_files_with_its_session_and_csrf_token(held_chat, alice_agent):
    console = Client(enforce_csrf_checks=True)
    console.force_login(alice_agent.user)
    url = f"/api/v1/chats/{held_chat.pk}/attachments/"
    refused = console.post(url, {"file": upload("a.png", PNG, "image/png")})
    assert refused.status_code == 403  # a session without the CSRF token: a forged request
    page = console.get("/console/")
    token = page.context["csrf_token"]
    assert 'data-attach-url="/api/v1/chats/0/attachments/"' in page.content.decode()
    sent = console.post(
        url,
        {"file": upload("note.png", PNG, "image/png"), "internal": "true"},
        HTTP_X_CSRFTOKEN=str(token),
    )
    assert sent.status_code == 201, sent.content
    assert sent.json()["kind"] == "internal"
    assert Attachment.objects.get().message.public_seq is None
