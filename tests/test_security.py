"""Security: CSRF on every form, login throttling (django-axes), and the static security
pass (ruff's bandit rules, `S`) with every exception explained. Authorisation per endpoint is in
test_authorization.py; origin checks in tests/chat/test_bad_input.py and test_consumers.py."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from chat.selectors import make_visitor_token
from chat.views import VISITOR_COOKIE
from escalation import services

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
