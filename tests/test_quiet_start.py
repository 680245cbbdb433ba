"""A newcomer's first start is quiet: a refused page is a page with the site's navigation and one
log line, browsers find an icon, logins log nothing at INFO, and the banner names every way in."""

import logging
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from chat.routing import websocket_urlpatterns
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.django_db


def test_a_manager_opening_the_console_gets_a_403_page_with_the_navigation(
    client, manager_user, caplog
):
    client.force_login(manager_user)
    with caplog.at_level(logging.INFO):
        response = client.get("/console/")

    assert response.status_code == 403
    templates = [t.name for t in response.templates]
    assert templates[:3] == ["403.html", "console_base.html", "base.html"]
    body = response.content.decode()
    assert "Only agents can use the console." in body
    assert f'href="{reverse("reporting:home")}">Reports</a>' in body
    assert f'href="{reverse("console:offline_messages")}">Left messages</a>' in body
    assert f'href="{reverse("console:home")}">Console</a>' not in body  # not for a manager
    assert manager_user.get_username() in body  # the log-out form of the top bar

    refused = [r for r in caplog.records if r.name == "django.request"]
    assert [(r.levelname, r.getMessage()) for r in refused] == [
        ("WARNING", "Forbidden (Permission denied): /console/")
    ]
    assert refused[0].exc_info is None
    assert "Traceback" not in caplog.text


def test_a_real_fault_keeps_its_traceback(caplog):
    """Only refusals lose the traceback: a logged exception of any other kind keeps it."""
    logger = logging.getLogger("django.request")
    with caplog.at_level(logging.ERROR):
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("Internal Server Error: %s", "/x/")
    assert "Traceback" in caplog.text and "ValueError: boom" in caplog.text


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"].endswith("favicon.ico")
    assert finders.find("favicon.ico") and finders.find("favicon.svg")
    page = client.get("/chat/").content.decode()
    assert 'rel="icon"' in page


def test_a_login_logs_no_info_lines_and_axes_prints_no_banner(client, caplog):
    UserFactory(username="quiet", password="a-long-test-password")
    assert settings.AXES_VERBOSE is False
    with caplog.at_level(logging.INFO):
        response = client.post(
            "/accounts/login/", {"username": "quiet", "password": "a-long-test-password"}
        )
    assert response.status_code == 302
    assert [r.getMessage() for r in caplog.records if r.name.startswith("axes")] == []


def test_a_failed_login_is_still_logged(client, caplog):
    UserFactory(username="quiet", password="a-long-test-password")
    with caplog.at_level(logging.INFO):
        client.post("/accounts/login/", {"username": "quiet", "password": "wrong"})
    failures = [r for r in caplog.records if r.name.startswith("axes")]
    assert failures and all(r.levelno >= logging.WARNING for r in failures)


def run_banner() -> str:
    """The echo lines of the Makefile's `run` recipe."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^run:.*?\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe
    return "\n".join(
        line for line in recipe.group(1).splitlines() if line.strip().startswith("@echo")
    )


def top_level_routes() -> list[str]:
    routes = []
    for pattern in get_resolver().url_patterns:
        if isinstance(pattern, URLPattern | URLResolver):
            routes.append(str(pattern.pattern))
    return routes


def test_the_start_banner_lists_every_entry_point():
    banner = run_banner()
    not_entry_points = {"", "favicon.ico", "accounts/logout/", "accounts/start/"}
    missing = [
        route
        for route in top_level_routes()
        if route not in not_entry_points and f"$(PORT)/{route}" not in banner
    ]
    assert missing == []
    for pattern in websocket_urlpatterns:
        fixed_part = str(pattern.pattern).split("<")[0]
        assert f"/{fixed_part}" in banner, fixed_part
