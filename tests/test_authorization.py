"""Authorisation at every boundary: every URL of the site, for every kind of caller —
anonymous, a visitor (chat cookie only), the agent who holds the chat, an agent of another group,
a manager and an admin. The table must name every route: a new URL without a row fails
`test_every_route_is_in_the_table`. Websocket boundaries are in tests/chat/test_consumers.py and
tests/chat/test_bad_input.py (docs/reliability.md lists them)."""

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token

from chat.attachments import site_limits
from chat.selectors import make_visitor_token, signed_attachment_url
from escalation import services
from escalation.models import Agent, CannedReply, Site
from tests.factories import png_bytes, upload, visitor_client

pytestmark = pytest.mark.django_db

PERSONAS = ["anonymous", "visitor", "holder", "other_group", "manager", "admin"]

# (method, path with {chat}, expected status per persona, in PERSONAS' order). 302 = to the login
# page (or, for the visitor pages, to the start form); 401 = API without credentials.
PAGES = [
    ("GET", "/", [302, 302, 302, 302, 302, 302]),
    ("GET", "/healthz", [200, 200, 200, 200, 200, 200]),
    ("GET", "/favicon.ico", [302, 302, 302, 302, 302, 302]),  # to the static icon
    ("GET", "/accounts/login/", [200, 200, 200, 200, 200, 200]),
    ("GET", "/accounts/logout/", [405, 405, 405, 405, 405, 405]),  # POST only (CSRF)
    ("GET", "/accounts/start/", [302, 302, 302, 302, 302, 302]),  # a login's landing, by role
    ("GET", "/chat/", [200, 302, 200, 200, 200, 200]),  # a visitor with an open chat: its room
    ("GET", "/chat/room/", [302, 200, 302, 302, 302, 302]),
    ("GET", "/chat/new/", [405, 405, 405, 405, 405, 405]),
    ("GET", "/chat/room/leave-message/", [405, 405, 405, 405, 405, 405]),
    ("POST", "/chat/room/leave-message/", [302, 200, 302, 302, 302, 302]),
    # E-mail is not set up here (no EMAIL_HOST): not offered to anyone. tests/escalation/
    # test_mail.py has the rest (an open chat's visitor, no chat, with e-mail set up).
    ("POST", "/chat/room/transcript/", [404, 404, 404, 404, 404, 404]),
    # The visitor's chat is still open: no survey to answer (400); no chat: the start form.
    ("POST", "/chat/room/survey/", [302, 400, 302, 302, 302, 302]),
    # Files: the credential is the X-Tierline-Visitor header, never the chat cookie (the visitor
    # here holds only the cookie); tests/chat/test_attachments.py sends the header.
    ("POST", "/chat/room/attachments/", [403, 403, 403, 403, 403, 403]),
    # A visitor's signed link is the credential itself: it works for whoever holds it (no
    # cookie, in a cross-site frame too), until it expires.
    ("GET", "/chat/files/{file}/", [200, 200, 200, 200, 200, 200]),
    ("GET", "/chat/files/tampered/", [404, 404, 404, 404, 404, 404]),
    # The widget's pages: the visitor is known by a token in the form, never a cookie or a
    # session, so every caller is alike. A GET is the frame's boot page; a POST without the
    # embedding page's origin (one of the site's) is refused; tests/chat/test_widget.py has more.
    ("GET", "/widget.js", [200, 200, 200, 200, 200, 200]),
    ("GET", "/chat/w/{site}/", [200, 200, 200, 200, 200, 200]),
    ("POST", "/chat/w/{site}/", [403, 403, 403, 403, 403, 403]),
    ("POST", "/chat/w/{site}/start/", [403, 403, 403, 403, 403, 403]),
    ("GET", "/chat/w/{site}/new/", [200, 200, 200, 200, 200, 200]),
    ("POST", "/chat/w/{site}/new/", [403, 403, 403, 403, 403, 403]),
    ("POST", "/chat/w/{site}/leave-message/", [403, 403, 403, 403, 403, 403]),
    ("POST", "/chat/w/{site}/transcript/", [403, 403, 403, 403, 403, 403]),
    ("POST", "/chat/w/{site}/survey/", [403, 403, 403, 403, 403, 403]),
    ("GET", "/chat/w/{site}/config", [403, 403, 403, 403, 403, 403]),  # no allowed Origin
    ("POST", "/chat/w/{site}/attributes", [404, 404, 404, 404, 404, 404]),  # no chat token
    ("GET", "/chat/w/no-such-site/", [404, 404, 404, 404, 404, 404]),
    ("GET", "/console/", [302, 302, 200, 200, 403, 403]),
    ("GET", "/console/messages/", [302, 302, 200, 200, 200, 200]),
    ("GET", "/console/history/", [302, 302, 200, 200, 403, 403]),  # an agent's own past chats
    ("GET", "/console/replies/", [302, 302, 200, 200, 403, 403]),  # saved replies: agents
    ("GET", "/console/replies.json", [302, 302, 200, 200, 403, 403]),
    # {reply}: a global reply (any agent may use it; only its owner edits a personal one).
    ("GET", "/console/replies/{reply}/edit/", [302, 302, 404, 404, 403, 403]),
    ("POST", "/console/replies/{reply}/delete/", [302, 302, 404, 404, 403, 403]),
    ("POST", "/console/replies/{reply}/used/", [302, 302, 204, 204, 403, 403]),
    ("GET", "/reports/", [302, 302, 403, 403, 200, 200]),
    # What is happening now; its socket (/ws/live/): tests/reporting/test_live_socket.py.
    ("GET", "/reports/live/", [302, 302, 403, 403, 200, 200]),
    ("GET", "/reports/escalated/", [302, 302, 403, 403, 200, 200]),
    ("GET", "/reports/over-time/", [302, 302, 403, 403, 200, 200]),
    ("GET", "/reports/by-agent/", [302, 302, 403, 403, 200, 200]),
    ("GET", "/reports/by-agent/?format=csv", [302, 302, 403, 403, 200, 200]),  # with CSAT
    ("GET", "/reports/reasons/", [302, 302, 403, 403, 200, 200]),
    ("GET", "/reports/waits/", [302, 302, 403, 403, 200, 200]),
    ("GET", "/reports/fallbacks/", [302, 302, 403, 403, 200, 200]),
    ("GET", "/reports/predicted-vs-actual/", [302, 302, 403, 403, 200, 200]),
    ("GET", "/reports/satisfaction/", [302, 302, 403, 403, 200, 200]),
    ("GET", "/reports/tags/", [302, 302, 403, 403, 200, 200]),
    ("GET", "/reports/friction/", [302, 302, 403, 403, 200, 200]),
    ("GET", "/reports/friction/?format=csv&by=agent", [302, 302, 403, 403, 200, 200]),
    # Agents search the chats they may see; managers every chat (tests/reporting/test_search.py).
    ("GET", "/reports/search/", [302, 302, 200, 200, 200, 200]),
    # Another group's agent: "not found", as for a missing chat (ids cannot be probed).
    ("GET", "/reports/chats/{chat}/", [302, 302, 200, 404, 200, 200]),
    ("GET", "/reports/chats/{chat}/?tab=transcript", [302, 302, 200, 404, 200, 200]),
    ("GET", "/reports/chats/{chat}/transcript.csv", [302, 302, 200, 404, 200, 200]),
    ("GET", "/reports/chats/{chat}/transcript.json", [302, 302, 200, 404, 200, 200]),
    ("GET", "/reports/chats/{chat}/transcript.xml", [404, 404, 404, 404, 404, 404]),
    ("GET", "/admin/", [302, 302, 302, 302, 302, 200]),
    ("GET", "/admin/chat/chatsession/", [302, 302, 302, 302, 302, 200]),
    ("GET", "/admin/chat/chatsession/{chat}/change/", [302, 302, 302, 302, 302, 200]),
    ("GET", "/admin/escalation/stage/", [302, 302, 302, 302, 302, 200]),
    ("GET", "/admin/reporting/livesettings/", [302, 302, 302, 302, 302, 200]),
    # A pipeline's pre-chat fields are edited inline on its page.
    ("GET", "/admin/escalation/pipeline/", [302, 302, 302, 302, 302, 200]),
    ("GET", "/admin/escalation/pipeline/add/", [302, 302, 302, 302, 302, 200]),
    ("GET", "/admin/axes/accessattempt/", [302, 302, 302, 302, 302, 200]),
    ("GET", "/api/schema/", [200, 200, 200, 200, 200, 200]),
    ("GET", "/api/docs/", [200, 200, 200, 200, 200, 200]),
]
API = [
    ("GET", "/api/v1/chats/", [401, 401, 200, 200, 200, 200]),
    # Another group's agent is told nothing of the chat (404), not even that it exists.
    ("GET", "/api/v1/chats/{chat}/", [401, 401, 200, 404, 200, 200]),
    ("GET", "/api/v1/chats/{chat}/messages/", [401, 401, 200, 404, 200, 200]),
    ("POST", "/api/v1/chats/{chat}/messages/", [401, 401, 201, 404, 403, 403]),
    # Sending a file: the holder gets 415 for this table's JSON body (multipart only).
    ("POST", "/api/v1/chats/{chat}/attachments/", [401, 401, 415, 404, 403, 403]),
    ("GET", "/api/v1/chats/{chat}/attachments/{attachment}/", [401, 401, 200, 404, 200, 200]),
    # Held already: 409 for its holder; another group's agent never saw it, so 404.
    ("POST", "/api/v1/chats/{chat}/take/", [401, 401, 409, 404, 403, 403]),
    ("POST", "/api/v1/chats/{chat}/escalate/", [401, 401, 400, 404, 403, 403]),
    ("POST", "/api/v1/chats/{chat}/return/", [401, 401, 200, 404, 403, 403]),
    ("POST", "/api/v1/chats/{chat}/end/", [401, 401, 200, 404, 403, 403]),
    ("GET", "/api/v1/tiers/", [401, 401, 200, 200, 200, 200]),
    ("GET", "/api/v1/groups/", [401, 401, 200, 200, 200, 200]),
    ("GET", "/api/v1/agents/", [401, 401, 200, 200, 200, 200]),
    ("GET", "/api/v1/pipelines/", [401, 401, 200, 200, 200, 200]),
    ("GET", "/api/v1/stages/", [401, 401, 200, 200, 200, 200]),
    ("GET", "/api/v1/queues/", [401, 401, 200, 200, 200, 200]),  # a non-agent's: empty
    ("GET", "/api/v1/me/presence/", [401, 401, 405, 405, 403, 403]),
    ("POST", "/api/v1/me/presence/", [401, 401, 200, 200, 403, 403]),
    ("GET", "/api/v1/me/offers/", [401, 401, 200, 200, 403, 403]),
    # Someone else's (here: no such) offer: not found for an agent, refused to a non-agent.
    ("POST", "/api/v1/offers/{offer}/accept/", [401, 401, 404, 404, 403, 403]),
    ("POST", "/api/v1/offers/{offer}/decline/", [401, 401, 404, 404, 403, 403]),
    ("GET", "/api/v1/reports/over-time/", [401, 401, 403, 403, 200, 200]),
    ("GET", "/api/v1/reports/friction/", [401, 401, 403, 403, 200, 200]),
    ("GET", "/api/v1/nothing-here/", [404, 404, 404, 404, 404, 404]),
]
NO_SUCH_OFFER = 987654321
# Routes covered by a row above through an example path, or by Django admin's own checks.
COVERED_ELSEWHERE = {"admin:"}


@pytest.fixture
def world(demo):
    """Alex (L1 General) holds a chat; Sam (L2 Billing) is an agent of another group."""
    from django.contrib.auth import get_user_model

    services.set_presence(agent=Agent.objects.get(user__username="alex"), presence="online")
    chat = services.start_chat(
        visitor_name="Carol",
        visitor_email="carol@example.com",
        topic_name="Billing",
        first_message="Help",
        visitor_context={},
    )
    users = get_user_model().objects
    file = services.post_attachment(
        chat_id=chat.pk, upload=upload("shot.png", png_bytes(), "image/png"), limits=site_limits()
    ).attachment
    return {
        "chat": chat,
        "attachment": file,
        "file": signed_attachment_url(file).split("/")[-2],
        "reply": CannedReply.objects.create(shortcut="hello", title="Hello", text="Hi {visitor}"),
        "site": Site.objects.create(name="Shop", allowed_origins="https://shop.example"),
        "users": {
            "holder": users.get(username="alex"),
            "other_group": users.get(username="sam"),
            "manager": users.get(username="morgan"),
            "admin": users.get(username="admin"),
        },
    }


def page_client(world, persona: str) -> Client:
    if persona == "visitor":
        return visitor_client(world["chat"])
    client = Client()
    if persona != "anonymous":
        client.force_login(world["users"][persona])
    return client


def api_client(world, persona: str) -> Client:
    if persona in ("anonymous", "visitor"):
        headers = {}
        if persona == "visitor":  # a visitor's chat token is no API credential
            headers["HTTP_AUTHORIZATION"] = f"Token {make_visitor_token(world['chat'])}"
        return Client(**headers)
    token = Token.objects.get_or_create(user=world["users"][persona])[0].key
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


BODIES = {
    "/messages/": {"text": "hello"},
    "/escalate/": {"target": "nowhere"},
    "/presence/": {"presence": "online"},
}


@pytest.mark.parametrize("persona", PERSONAS)
def test_boundary(world, persona):
    """Every row for one caller; each request runs in a savepoint that is rolled back, so that
    one row's change (ending the chat) does not decide the next row's answer."""
    index = PERSONAS.index(persona)
    wrong = []
    for method, path, codes in PAGES + API:
        url = path.format(
            chat=world["chat"].pk,
            offer=NO_SUCH_OFFER,
            reply=world["reply"].pk,
            attachment=world["attachment"].pk,
            file=world["file"],
            site=world["site"].key,
        )
        make = api_client if url.startswith("/api/v1/") else page_client
        client = make(world, persona)
        body = next((b for suffix, b in BODIES.items() if url.endswith(suffix)), {})
        with transaction.atomic():
            if method == "GET":
                response = client.get(url)
            elif url.startswith("/api/"):
                response = client.post(url, body, content_type="application/json")
            else:
                response = client.post(url, {"email": "carol@example.com", "text": "hi"})
            transaction.set_rollback(True)
        if response.status_code != codes[index]:
            wrong.append((method, url, response.status_code, codes[index]))
        elif codes[index] == 302 and url.startswith(("/console", "/reports")):
            assert response["Location"].startswith("/accounts/login/"), url
    assert wrong == [], "(method, url, got, expected)"


def _routes(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def test_every_route_is_in_the_table():
    """A new URL must get its row (and so a decision about who may use it)."""
    listed = [
        p.replace("{chat}", "<id:chat_id>")
        .replace("{offer}", "<id:offer_id>")
        .replace("{reply}", "<id:reply_id>")
        .replace("{attachment}", "<id:attachment_id>")
        .replace("{file}", "<str:value>")
        .replace("{site}", "<str:key>")
        for _, p, _ in PAGES + API
    ]
    listed = [p.lstrip("/") for p in listed]
    missing = []
    for route in _routes(get_resolver().url_patterns):
        if route.startswith("admin/"):
            continue  # Django admin: staff only, checked by its own views (rows above sample it)
        if route in listed or route.replace("<slug:name>", "over-time") in listed:
            continue
        if route.startswith("api/v1/^"):
            continue  # the API's catch-all 404 (row "nothing-here")
        missing.append(route)
    assert missing == []


@pytest.mark.parametrize(
    ("persona", "lands_on"),
    [("holder", "/console/"), ("manager", "/reports/"), ("admin", "/admin/")],
)
def test_a_login_lands_where_that_person_works(world, persona, lands_on):
    """Through the login form with no page asked for: an agent's console, a manager's reports
    (not the console's 403), an administrator's admin; a page that was asked for still wins."""
    user = world["users"][persona]
    user.set_password("a-long-test-password")
    user.save()
    client = Client()
    response = client.post(
        "/accounts/login/", {"username": user.username, "password": "a-long-test-password"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/start/"
    landing = client.get(response["Location"])
    assert landing.status_code == 302
    assert landing["Location"] == lands_on
    assert client.get(lands_on).status_code == 200

    asked = Client().post(
        "/accounts/login/?next=/healthz",
        {"username": user.username, "password": "a-long-test-password"},
    )
    assert asked["Location"] == "/healthz"
