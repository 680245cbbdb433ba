"""The embeddable widget's server side: sites, the framed visitor pages without cookies, the
launcher's config, custom attributes, and which origins may frame or open a socket."""

import json
import re
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.core.exceptions import ValidationError
from django.test import Client

from chat.attachments import AttachmentLimits
from chat.models import ChatSession
from chat.selectors import make_visitor_token
from escalation.models import Pipeline, Site, parse_origins
from escalation.selectors import attachment_limits
from helpdesk.asgi import application
from tests.factories import PDF_BYTES, png_bytes, start_chat, upload

pytestmark = pytest.mark.django_db

SHOP = "http://shop.example:8080"
EVIL = "http://evil.example"


@pytest.fixture
def site(demo: None) -> Site:
    return Site.objects.create(
        name="Shop",
        allowed_origins=f"{SHOP}\nhttps://www.shop.example",
        pipeline=Pipeline.objects.get(name="Sales"),
    )


def held(chat: ChatSession) -> str:
    return f"{chat.pk}:{make_visitor_token(chat)}"


def frame_post(path: str, data: dict[str, Any], origin: str = "http://testserver") -> Any:
    """A form the frame posts (its own origin, no cookie), as a browser would send it."""
    client = Client()
    response = client.post(path, {"parent": SHOP, **data}, HTTP_ORIGIN=origin)
    assert not client.cookies, "a widget page sets no cookie"
    return response


def csp(response: Any) -> str:
    return str(response["Content-Security-Policy"])


def test_origins_are_checked_and_normalised_when_a_site_is_saved() -> None:
    assert parse_origins(" https://A.example/ \nhttp://b.example:8080\n\nhttps://a.example") == [
        "https://a.example",
        "http://b.example:8080",
    ]
    # As browsers send them: a default port is not written.
    assert parse_origins("http://b.example:80\nhttps://c.example:443\nhttp://[::1]:8080") == [
        "http://b.example",
        "https://c.example",
        "http://[::1]:8080",
    ]
    for bad in ("a.example", "https://a.example/shop", "ftp://a.example", "https://*.a.example"):
        with pytest.raises(ValueError, match="is not an origin"):
            parse_origins(bad)
    with pytest.raises(ValueError, match="invalid port"):
        parse_origins("https://a.example:99999")
    with pytest.raises(ValidationError) as refused:
        Site(name="x", allowed_origins="\n \n", colour="#123456").full_clean()
    assert refused.value.message_dict["allowed_origins"] == ["Give at least one origin."]
    with pytest.raises(ValidationError) as colour:
        Site(name="x", allowed_origins=SHOP, colour="red").full_clean()
    assert "six hex digits" in colour.value.message_dict["colour"][0]


def test_the_config_is_given_only_to_the_sites_own_origins(site: Site) -> None:
    ok = Client().get(f"/chat/w/{site.key}/config", HTTP_ORIGIN=SHOP)
    assert ok.status_code == 200 and ok["Access-Control-Allow-Origin"] == SHOP
    assert ok.json()["launcher_text"] == "Chat with us" and ok.json()["colour"] == "#1f5fbf"
    other = Client().get(f"/chat/w/{site.key}/config", HTTP_ORIGIN=EVIL)
    assert other.status_code == 403 and other["Access-Control-Allow-Origin"] == "*"
    assert "launcher_text" not in other.json()
    assert other.json()["error"]["message"] == f"This site key is not set up for {EVIL}."
    forged = Client().get("/chat/w/not-a-key/config", HTTP_ORIGIN=SHOP)
    assert forged.status_code == 404
    assert forged.json()["error"]["message"] == "No chat widget has this site key."
    site.is_active = False
    site.save()
    assert Client().get(f"/chat/w/{site.key}/config", HTTP_ORIGIN=SHOP).status_code == 404


def test_the_frame_may_be_framed_only_by_the_sites_origins(site: Site) -> None:
    boot = Client().get(f"/chat/w/{site.key}/")
    assert boot.status_code == 200 and "X-Frame-Options" not in boot
    assert f"frame-ancestors {SHOP} https://www.shop.example" in csp(boot)
    assert 'id="widget-boot"' in boot.content.decode()
    unknown = Client().get("/chat/w/nope/")
    assert unknown.status_code == 404 and "frame-ancestors 'none'" in csp(unknown)
    assert "not set up (unknown site)" in unknown.content.decode()
    # Tierline's own pages stay unframable.
    assert Client().get("/chat/")["X-Frame-Options"] == "DENY"


def test_a_page_of_another_origin_cannot_open_the_chat(site: Site) -> None:
    # The browser's Origin header is believed over the form's `parent`.
    forged = frame_post(f"/chat/w/{site.key}/", {}, origin=EVIL)
    assert forged.status_code == 403
    assert f"This chat is not set up for {EVIL}." in forged.content.decode()
    claimed = frame_post(f"/chat/w/{site.key}/", {"parent": EVIL})
    assert claimed.status_code == 403
    missing = Client().post(f"/chat/w/{site.key}/", {})
    assert missing.status_code == 403
    assert "only be opened from the website" in missing.content.decode()
    assert ChatSession.objects.count() == 0


def test_a_visitor_starts_and_keeps_a_chat_in_the_widget_without_cookies(site: Site) -> None:
    opened = frame_post(
        f"/chat/w/{site.key}/",
        {
            "name": "Ada",
            "email": "ada@example.com",
            "page": f"{SHOP}/pricing",
            "page_title": "Pricing",
            "referrer": "https://search.example/",
            "attributes": json.dumps({"plan": "pro", "seats": 12}),
        },
    )
    page = opened.content.decode()
    assert opened.status_code == 200 and 'id="start-form"' in page
    assert 'value="Ada"' in page and 'value="ada@example.com"' in page
    assert "csrfmiddlewaretoken" not in page  # nothing that needs a cookie
    assert 'name="topic" value="Buying"' in page  # the site's one topic, not asked
    assert "Billing" not in page
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
    form.update(name="Ada", email="ada@example.com", message="Do you ship to Norway?")
    form = {k: v.replace("&quot;", '"') for k, v in form.items()}
    started = frame_post(f"/chat/w/{site.key}/start/", form)
    assert started.status_code == 200 and 'id="room"' in started.content.decode()
    chat = ChatSession.objects.get()
    assert chat.route.site == site and chat.topic == "Buying"
    assert chat.visitor_context["attributes"] == {"plan": "pro", "seats": 12}
    assert chat.visitor_context["page_title"] == "Pricing"
    assert chat.visitor_context["page"] == f"{SHOP}/pricing"
    state = json.loads(
        re.search(
            r'id="widget-state" type="application/json">(.*?)</script>', started.content.decode()
        )[1]  # type: ignore[index]
    )
    assert state["parent"] == SHOP and state["token"].startswith(f"{chat.pk}:")
    # The next page of the site opens the frame with that token: the same chat.
    again = frame_post(f"/chat/w/{site.key}/", {"visitor": state["token"]})
    assert f'data-chat="{chat.pk}"' in again.content.decode()
    # A topic of another pipeline cannot be started through this site.
    form.update(topic="Billing")
    other = frame_post(f"/chat/w/{site.key}/start/", {**form, "visitor": ""})
    assert "Select a valid choice." in other.content.decode()
    assert ChatSession.objects.count() == 1


def test_a_token_of_tierlines_own_page_or_another_site_does_not_open_here(site: Site) -> None:
    own = start_chat()
    elsewhere = Site.objects.create(name="Other", allowed_origins=EVIL)
    theirs = start_chat(topic_name="Buying", site=elsewhere)
    for chat in (own, theirs):
        response = frame_post(f"/chat/w/{site.key}/", {"visitor": held(chat)})
        assert 'id="start-form"' in response.content.decode()


def test_the_room_forms_work_with_the_token_in_the_form(site: Site) -> None:
    chat = start_chat(topic_name="Buying", site=site)
    room = frame_post(f"/chat/w/{site.key}/", {"visitor": held(chat)}).content.decode()
    assert f'action="/chat/w/{site.key}/new/"' in room
    assert f'name="visitor" value="{held(chat)}"' in room
    survey = frame_post(f"/chat/w/{site.key}/survey/", {"visitor": held(chat), "rating": "9"})
    assert survey.status_code == 400  # not offered and not valid: told, nothing stored
    new = frame_post(f"/chat/w/{site.key}/new/", {"visitor": held(chat)})
    state = re.search(
        r'id="widget-state" type="application/json">(.*?)</script>', new.content.decode()
    )
    assert state is not None and json.loads(state[1])["token"] == ""  # the widget forgets it
    # A reload of the frame on its own (a GET) asks the widget again instead.
    assert 'id="widget-boot"' in Client().get(f"/chat/w/{site.key}/survey/").content.decode()


def test_malformed_attributes_in_the_open_post_are_refused_clearly(site: Site) -> None:
    for attributes, message in [
        ("{not json", "Expecting property name"),
        (json.dumps({"a": {"b": 1}}), "must be text, a number"),
        (json.dumps({"1bad": 1}), "is not an attribute name"),
        (json.dumps(["x"]), "an object of names and values"),
        ("[" * 5000 + "]" * 5000, "refused"),
    ]:
        response = frame_post(f"/chat/w/{site.key}/", {"attributes": attributes})
        assert response.status_code == 400, attributes[:20]
        assert message in response.content.decode()


def attributes_post(site: Site, token: str, body: Any, raw: bytes | None = None) -> Any:
    return Client().post(
        f"/chat/w/{site.key}/attributes",
        raw if raw is not None else json.dumps(body),
        content_type="application/json",
        HTTP_X_TIERLINE_VISITOR=token,
    )


def test_attributes_set_after_the_start_are_merged_and_bad_ones_refused(site: Site) -> None:
    chat = start_chat(topic_name="Buying", site=site, visitor_context={"attributes": {"a": 1}})
    ok = attributes_post(site, held(chat), {"attributes": {"plan": "pro", "a": None}})
    assert ok.status_code == 200 and ok.json() == {"attributes": {"plan": "pro"}}
    for body, raw, status, message in [
        ({"attributes": {"x": [1]}}, None, 400, "must be text, a number"),
        ({"attributes": {f"k{i}": i for i in range(31)}}, None, 400, "At most 30 attributes."),
        ({"plan": "x"}, None, 400, 'Send JSON: {"attributes"'),
        (None, b"{" * 3000, 400, "Send JSON"),
        (None, b'{"attributes": "' + b"x" * 20_000 + b'"}', 413, "at most 16 kB"),
    ]:
        refused = attributes_post(site, held(chat), body, raw)
        assert refused.status_code == status and message in refused.json()["error"]["message"]
    chat.refresh_from_db()
    assert chat.visitor_context["attributes"] == {"plan": "pro"}  # nothing else stored
    own = start_chat()
    for token in (held(own), f"{chat.pk}:forged", "x", ""):
        assert attributes_post(site, token, {"attributes": {"a": 1}}).status_code == 404


def test_the_widget_script_is_small_and_served_at_a_fixed_address() -> None:
    response = Client().get("/widget.js")
    assert response.status_code == 200 and response["Content-Type"] == "text/javascript"
    assert len(response.content) < 30_000
    assert response["Cross-Origin-Resource-Policy"] == "cross-origin"


async def socket_from(chat: ChatSession, origin: str) -> bool:
    communicator = WebsocketCommunicator(
        application,
        f"/ws/chat/{chat.pk}/?token={make_visitor_token(chat)}",
        headers=[(b"origin", origin.encode()), (b"host", b"testserver")],
    )
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return bool(connected)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # as the other socket tests
async def test_a_visitor_socket_accepts_the_sites_origins_for_its_chats_only(demo: None) -> None:
    from asgiref.sync import sync_to_async

    site = await Site.objects.acreate(name="Shop", allowed_origins=SHOP)
    ours = await sync_to_async(start_chat)(topic_name="Buying", site=site)
    own_page = await sync_to_async(start_chat)(visitor_name="Dan")
    assert await socket_from(ours, SHOP)
    await Site.objects.filter(pk=site.pk).aupdate(allowed_origins="http://shop.example:80")
    assert await socket_from(ours, "http://shop.example")  # the browser writes no default port
    await Site.objects.filter(pk=site.pk).aupdate(allowed_origins=SHOP)
    assert await socket_from(ours, "http://testserver")
    assert not await socket_from(ours, EVIL)
    assert not await socket_from(own_page, SHOP)


def send_file(chat: ChatSession, name: str, content: bytes, kind: str) -> Any:
    return Client().post(
        "/chat/room/attachments/",
        {"file": upload(name, content, kind)},
        HTTP_X_TIERLINE_VISITOR=held(chat),
    )


def test_a_site_narrows_the_files_its_chats_may_carry(site: Site, settings: Any) -> None:
    site.attachment_max_bytes = 1000
    site.attachment_types = "image/png"
    site.full_clean()
    site.save()
    ours = start_chat(topic_name="Buying", site=site)
    assert attachment_limits(chat_id=ours.pk) == AttachmentLimits(1000, ("image/png",))
    pdf = send_file(ours, "invoice.pdf", PDF_BYTES, "application/pdf")
    assert (
        pdf.json()["error"]["message"]
        == "Files of this type cannot be sent. You can send PNG files."
    )
    big = send_file(ours, "big.png", png_bytes(400, 400, (1, 2, 3)) + b"\0" * 2000, "image/png")
    assert big.status_code == 413 and "the limit is 1000 bytes" in big.json()["error"]["message"]
    assert send_file(ours, "shot.png", png_bytes(), "image/png").status_code == 201
    page = frame_post(f"/chat/w/{site.key}/", {"visitor": held(ours)}).content.decode()
    assert 'accept="image/png"' in page  # the picker offers what may be sent
    # Tierline's own page keeps the server's limits.
    own = start_chat()
    assert send_file(own, "invoice.pdf", PDF_BYTES, "application/pdf").status_code == 201
    # A site may only narrow the server's limits.
    site.attachment_types = "application/x-msdownload"
    site.attachment_max_bytes = settings.ATTACHMENT_MAX_BYTES + 1
    with pytest.raises(ValidationError) as refused:
        site.full_clean()
    assert set(refused.value.message_dict) == {"attachment_types", "attachment_max_bytes"}
