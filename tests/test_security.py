"""Security: CSRF on every form, login throttling (django-axes, and per address
across usernames), the API's JSON depth limit and error shape for the unexpected, unknown
websocket paths, the Content-Security-Policy, and the static security pass (ruff's bandit rules,
`S`) with every exception explained. Authorisation per endpoint is in test_authorization.py;
origin checks in tests/chat/test_bad_input.py and test_consumers.py; client addresses behind
proxies in tests/e2e/test_edge_live.py. docs/security.md maps each attack to its test."""

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client, RequestFactory
from django.urls import reverse
from rest_framework.authtoken.models import Token

from chat.selectors import make_visitor_token
from chat.views import VISITOR_COOKIE
from escalation import services
from escalation.models import CannedReply

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[1]


def start_chat():
    return services.start_chat(
        visitor_name="Carol",
        visitor_email="",
        topic_name="Billing",
        first_message="Help",
        visitor_context={},
    )


# --- CSRF ----------------------------------------------------------------------------------------
def test_every_form_refuses_a_post_without_the_csrf_token(admin_user, alice_agent):
    chat = start_chat()
    reply = CannedReply.objects.create(shortcut="hello", title="Hello", text="Hi")
    visitor = Client(enforce_csrf_checks=True)
    visitor.cookies[VISITOR_COOKIE] = f"{chat.pk}:{make_visitor_token(chat)}"
    staff = Client(enforce_csrf_checks=True)
    staff.force_login(admin_user)
    agent = Client(enforce_csrf_checks=True)
    agent.force_login(alice_agent.user)
    anonymous = Client(enforce_csrf_checks=True)
    posts = [
        (anonymous, reverse("login"), {"username": "alice", "password": "pw-for-tests"}),
        (agent, reverse("logout"), {}),
        (anonymous, reverse("chat:start"), {"name": "X", "topic": "Billing", "message": "hi"}),
        (visitor, reverse("chat:new"), {}),
        (visitor, reverse("chat:leave_message"), {"email": "a@example.com", "text": "hi"}),
        (visitor, reverse("chat:survey"), {"rating": "5"}),
        (agent, reverse("console:replies"), {"shortcut": "x", "title": "X", "text": "X"}),
        (agent, reverse("console:reply_used", args=[reply.pk]), {}),
        (anonymous, reverse("admin:login"), {"username": "ada_admin", "password": "x"}),
        (staff, reverse("admin:escalation_tier_add"), {"level": 9, "name": "Nine"}),
        (staff, reverse("admin:logout"), {}),
        # The API with the console's session (not a token) is a form too: CSRF applies.
        (agent, "/api/v1/me/presence/", {"presence": "away"}),
    ]
    for client, url, data in posts:
        response = client.post(url, data)
        assert response.status_code == 403, (url, response.status_code)
    from escalation.models import Tier

    assert not Tier.objects.filter(level=9).exists()
    reply.refresh_from_db()
    assert reply.uses == 0 and CannedReply.objects.count() == 1


def test_the_api_with_a_token_needs_no_csrf_token(alice_agent):
    token = Token.objects.create(user=alice_agent.user)
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.post(
        "/api/v1/me/presence/", json.dumps({"presence": "away"}), content_type="application/json"
    )
    assert response.status_code == 200


# --- login throttling ----------------------------------------------------------------------------
def login(client: Client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def test_failed_logins_lock_out_that_username_from_that_address(settings, alice_agent):
    from tests.factories import PASSWORD, UserFactory

    UserFactory(username="bob")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "alice", "guess").status_code == 200  # the form, with its error
    locked = login(client, "alice", "guess")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    # Locked: even the right password is refused, from that address ...
    assert login(client, "alice", PASSWORD).status_code == 429
    # ... while another person at that address, and alice elsewhere, log in as usual.
    assert login(Client(), "bob", PASSWORD).status_code == 302
    assert login(Client(), "alice", PASSWORD, address="10.0.0.2").status_code == 302


def test_the_admin_login_is_throttled_too(settings, admin_user):
    client = Client()
    url = reverse("admin:login")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post(
            url, {"username": "ada_admin", "password": "guess"}, REMOTE_ADDR="10.0.0.3"
        )
    assert response.status_code == 429


def test_a_successful_login_resets_the_count(settings, alice_agent):
    from tests.factories import PASSWORD

    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(client, "alice", "guess")
    assert login(client, "alice", PASSWORD).status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(Client(), "alice", "guess").status_code == 200  # counting from zero again


def test_failed_logins_over_many_usernames_lock_the_address(settings, alice_agent):
    """Issue 13: 16 failures over 4 usernames from one address (4 each, under the per-username
    limit) were all let through. Now the address locks at LOGIN_FAILURES_PER_ADDRESS, for every
    username, while other addresses log in as usual."""
    from tests.factories import PASSWORD, UserFactory

    assert settings.LOGIN_FAILURES_PER_ADDRESS == 15 < 16
    UserFactory(username="eve")
    answers = [
        login(Client(), name, "guess", address="10.0.0.9").status_code
        for name in ("alice", "bob", "carol", "dave")
        for _ in range(4)
    ]
    assert answers == [200] * 14 + [429, 429]
    locked = login(Client(), "eve", PASSWORD, address="10.0.0.9")
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    assert login(Client(), "eve", PASSWORD, address="10.0.0.10").status_code == 302
    assert login(Client(), "alice", PASSWORD, address="10.0.0.10").status_code == 302


def test_the_address_count_is_not_reset_by_a_successful_login(settings, alice_agent):
    """An attacker who owns one account must not reset the address's count by logging in."""
    from tests.factories import PASSWORD

    settings.LOGIN_FAILURES_PER_ADDRESS = 6
    for name in ("x1", "x2", "x3"):
        login(Client(), name, "guess", address="10.0.0.11")
    assert login(Client(), "alice", PASSWORD, address="10.0.0.11").status_code == 302
    for name in ("x4", "x5"):
        assert login(Client(), name, "guess", address="10.0.0.11").status_code == 200
    assert login(Client(), "x6", "guess", address="10.0.0.11").status_code == 429
    assert login(Client(), "alice", PASSWORD, address="10.0.0.11").status_code == 429


# --- the API: JSON depth, and no HTML 500 --------------------------------------------------------
def agent_api(demo_agent: str = "alex") -> Client:
    from escalation.models import Agent

    user = Agent.objects.get(user__username=demo_agent).user
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")


@pytest.mark.parametrize(
    "endpoint", ["me/presence/", "chats/{chat}/messages/", "chats/{chat}/escalate/"]
)
def test_deeply_nested_json_is_a_400_in_the_error_shape(demo, endpoint):
    """Issue 13: 12,000 levels of nesting gave an HTML 500 (RecursionError in the json module)."""
    chat = start_chat()
    url = "/api/v1/" + endpoint.format(chat=chat.pk)
    body = "[" * 12_000 + "]" * 12_000
    response = agent_api().post(url, body, content_type="application/json")
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": {
            "code": "parse_error",
            "message": "JSON parse error - JSON nested deeper than 32 levels.",
        }
    }
    # An object inside strings and 32 levels deep is still fine.
    deep = {"presence": "away", "x": json.loads("[" * 31 + '"]]]{{{"' + "]" * 31)}
    ok = agent_api().post("/api/v1/me/presence/", json.dumps(deep), content_type="application/json")
    assert ok.status_code == 200 and ok.json() == {"presence": "away"}


def test_an_unexpected_error_in_the_api_is_a_json_500_and_is_logged(demo, monkeypatch, caplog):
    from escalation import api

    def broken(**kwargs):
        raise RuntimeError("Redis went away")

    monkeypatch.setattr(api.services, "set_presence", broken)
    with caplog.at_level(logging.ERROR, logger="helpdesk.api_errors"):
        response = agent_api().post(
            "/api/v1/me/presence/", {"presence": "away"}, content_type="application/json"
        )
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "server_error"
    assert "Redis went away" not in response.content.decode()  # the detail stays in the log
    (record,) = [r for r in caplog.records if r.name == "helpdesk.api_errors"]
    assert record.exc_info and "PresenceApi" in record.getMessage()


def test_a_500_outside_the_api_views_is_json_under_api_and_a_page_elsewhere():
    from helpdesk.api_errors import server_error

    api = server_error(RequestFactory().get("/api/v1/chats/"))
    assert api.status_code == 500 and json.loads(api.content)["error"]["code"] == "server_error"
    page = server_error(RequestFactory().get("/chat/"))
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")


# --- websockets: unknown paths -------------------------------------------------------------------
@pytest.fixture
async def _close_thread_connections():
    """Channels' auth runs on a worker thread: close its connection so that the test database
    can be dropped at the end (as in tests/chat/test_bad_input.py)."""
    yield
    from asgiref.sync import sync_to_async
    from django.db import connections

    await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # as the other socket tests
@pytest.mark.usefixtures("_close_thread_connections")
async def test_an_unknown_websocket_path_is_closed_with_4404_without_a_traceback(caplog):
    """Through the whole ASGI application (proxy headers, cap, origin check, auth, router).
    tests/e2e/test_edge_live.py does the same against a real daphne."""
    from helpdesk.asgi import application

    for path in ("/ws/nope/", "/ws/console/extra/", "/"):
        socket = WebsocketCommunicator(
            application, path, headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")]
        )
        connected, _ = await socket.connect()
        assert connected, path
        assert await socket.receive_output() == {"type": "websocket.close", "code": 4404}
        await socket.wait()
    assert "No route found" not in caplog.text and "Traceback" not in caplog.text


# --- Content-Security-Policy ---------------------------------------------------------------------
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def test_every_page_sends_the_strict_content_security_policy(demo):
    """Tierline's own pages ask for no nonce: script-src and style-src are 'self' alone."""
    from django.contrib.auth import get_user_model

    alex, morgan = (get_user_model().objects.get(username=n) for n in ("alex", "morgan"))
    pages = [(None, "/chat/"), (None, "/accounts/login/")]
    pages += [(alex, "/console/"), (alex, "/console/history/")]
    pages += [(morgan, "/reports/"), (morgan, "/reports/escalated/")]
    for user, url in pages:
        visitor = Client()
        if user is not None:
            visitor.force_login(user)
        response = visitor.get(url)
        assert response.status_code == 200, url
        assert response["Content-Security-Policy"] == STRICT_CSP, url
    assert Client().get("/api/v1/chats/")["Content-Security-Policy"] == STRICT_CSP  # 401 too


def test_the_api_docs_run_from_this_site_with_one_nonced_style():
    """Swagger UI's script comes from /api/docs/?script (same origin, no inline script); the
    page's one inline <style> carries the response's nonce (templates/drf_spectacular/)."""
    response = Client().get("/api/docs/")
    policy = response["Content-Security-Policy"]
    nonce = re.search(r"style-src 'self' 'nonce-([^']+)';", policy)
    assert nonce and f'<style nonce="{nonce[1]}">' in response.content.decode()
    body = response.content.decode()
    assert "<script>" not in body and 'src="/api/docs/?script="' in body
    assert Client().get("/api/docs/?script")["Content-Type"].startswith("application/javascript")


def test_the_admin_gets_a_nonce_for_its_own_inline_style(admin_client_):
    """The admin's templates mark their tags with {% csp_nonce_attr %} (a change list without
    actions has an inline <style>); the policy names that response's nonce, and only the admin's
    responses have one. (tests/e2e/test_csp_browser.py loads the pages in Chromium.)"""
    response = admin_client_.get("/admin/escalation/stage/")
    policy = response["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce and f"style-src 'self' 'nonce-{nonce[1]}'" in policy
    assert f'nonce="{nonce[1]}"' in response.content.decode()
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    other = admin_client_.get("/admin/escalation/stage/")["Content-Security-Policy"]
    assert nonce[1] not in other  # one per response


# --- static security pass ------------------------------------------------------------------------
def test_ruff_security_rules_pass():
    """Ruff's `S` rules (bandit's checks) over the whole project, as CI's ruff step runs them."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "S", "--output-format", "json", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(result.stdout or "[]") == []


def test_every_security_exception_says_why():
    """A `# noqa: S...` must carry its reason (`# noqa: S105 - not a secret`)."""
    unexplained = []
    for path in ROOT.rglob("*.py"):
        if any(part in {".venv", "var", "migrations"} for part in path.parts):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = re.search(r"#\s*noqa:\s*(S\d+[^#]*)", line)
            if match and not re.search(r"S\d+(,\s*S\d+)*\s+-\s+\S", match.group(1)):
                unexplained.append(f"{path.relative_to(ROOT)}:{number}")
    assert unexplained == []
