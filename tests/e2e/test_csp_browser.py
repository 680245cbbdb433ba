"""The Content-Security-Policy in a real browser (Chromium, Playwright) against a real daphne:
every page of the site still works under it, and nothing is refused, or, where something is,
it is listed here with its reason. A refusal is seen as the browser reports it to the page
(`securitypolicyviolation` events, collected from before the page's first script)."""

from typing import Any

import pytest

from tests.e2e.live import ARTIFACTS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

COLLECT = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push({
  directive: e.effectiveDirective, blocked: e.blockedURI, source: e.sourceFile,
  line: e.lineNumber, sample: e.sample, page: location.pathname,
}));
"""
# Violations known and accepted: none (the pages have no inline script or style).
KNOWN: list[dict[str, str]] = []


def new_page(browser: Any) -> Any:
    page = browser.new_context().new_page()
    page.add_init_script(COLLECT)
    return page


def refused(page: Any) -> list[dict[str, Any]]:
    seen = page.evaluate("window.__csp")
    return [
        v
        for v in seen
        if not any(all(v.get(k) == want for k, want in known.items()) for known in KNOWN)
    ]


def log_in(page: Any, base: str, username: str, next_url: str) -> None:
    page.goto(f"{base}/accounts/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", "tierline-demo")
    page.click("button[type=submit]")


def test_the_pages_work_under_the_policy(demo, browser, daphne_process, celery_worker_process):
    base = daphne_process.base_url
    found: dict[str, list[dict[str, Any]]] = {}

    # The visitor: start form, room, and its websocket ('self' in connect-src covers ws:).
    visitor = new_page(browser)
    visitor.goto(f"{base}/chat/")
    visitor.fill("#id_name", "Carol")
    visitor.select_option("#id_topic", "Billing")
    visitor.fill("#id_message", "Hello")
    visitor.click("text=Start chat")
    visitor.wait_for_selector("#conn[data-state=open]")
    found["visitor"] = refused(visitor)

    # An agent's console and its websocket; the history page.
    agent = new_page(browser)
    log_in(agent, base, "alex", "/console/")
    agent.wait_for_selector("#conn[data-state=open]")
    agent.locator("#queue-list .queue-item").wait_for()
    agent.goto(f"{base}/console/history/")
    found["console"] = refused(agent)

    # A manager's reports, with their SVG charts.
    manager = new_page(browser)
    log_in(manager, base, "morgan", "/reports/")
    for path in (
        "/reports/",
        "/reports/over-time/",
        "/reports/by-agent/",
        "/reports/escalated/",
        "/reports/friction/",
    ):
        manager.goto(base + path)
        assert manager.locator("main").is_visible(), path
    found["reports"] = refused(manager)

    # The admin: the index, a change list with its filters, and a change form with its widgets.
    admin = new_page(browser)
    admin.goto(f"{base}/admin/login/")
    admin.fill("#id_username", "admin")
    admin.fill("#id_password", "tierline-demo")
    admin.click("input[type=submit]")
    admin.wait_for_selector("#site-name")
    for path in ("/admin/escalation/stage/", "/admin/escalation/stage/1/change/"):
        admin.goto(base + path)
        assert admin.locator("#content").is_visible(), path
    admin.screenshot(path=ARTIFACTS / "csp-admin-change-form.png", full_page=True)
    found["admin"] = refused(admin)

    # The API docs (Swagger UI): the operations are listed, so its scripts ran.
    docs = new_page(browser)
    docs.goto(f"{base}/api/docs/")
    docs.locator(".opblock").first.wait_for(timeout=15_000)
    docs.screenshot(path=ARTIFACTS / "csp-api-docs.png", full_page=True)
    found["api docs"] = refused(docs)

    assert found == {name: [] for name in found}
