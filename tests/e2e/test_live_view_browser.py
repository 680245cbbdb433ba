"""The managers' live view in Chromium against real daphne, Celery, PostgreSQL and Redis: a
visitor starts a chat on their own page and the manager's open page shows it waiting, without a
reload; an agent comes online and takes it, and the counts and the agent's load change; the
server goes away and comes back, and the page says it is reconnecting, then shows what changed
meanwhile; and all of it under the Content-Security-Policy. Screenshots go to
test-artifacts/live-*.png."""

import re

import pytest
from playwright.sync_api import expect

from escalation import services
from escalation.models import Agent
from reporting.models import LiveSettings
from tests.e2e.live import ARTIFACTS, off_thread
from tests.e2e.test_browser import log_in
from tests.e2e.test_csp_browser import COLLECT, refused

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# Generous: with both cores busy a page, a server and a worker share them with everything else.
WAIT_MS = 30_000


@pytest.fixture
def ten_minute_target(demo):
    """Before the browser starts (Playwright's loop forbids database calls on this thread): a
    target no test run misses, so that the answered chat counts as met however slow it is."""
    LiveSettings.objects.create(service_level_target_seconds=600)


def manager_page(browser, base: str):
    page = browser.new_context().new_page()
    page.add_init_script(COLLECT)  # the page's policy refusals, as the browser reports them
    page.goto(f"{base}/accounts/login/?next=/reports/live/")
    page.fill("#id_username", "morgan")
    page.fill("#id_password", "tierline-demo")
    page.click("button[type=submit]")
    page.wait_for_selector("#conn[data-state=open]")
    return page


def test_the_live_view_follows_a_chat_from_arrival_to_an_agent(
    ten_minute_target, browser, daphne_process, celery_worker_process
):
    base = daphne_process.base_url
    manager = manager_page(browser, base)
    general = manager.locator("#live-stages tr", has=manager.get_by_text("L1 General"))
    alex = manager.locator("#live-agents tr", has=manager.get_by_text("Alex"))
    expect(manager.locator("#live-waiting-total")).to_have_text("0")
    expect(manager.locator("#live-waiting li")).to_have_text(["No chats waiting."])
    expect(general.locator(".stage-oldest")).to_contain_text("No chats waiting")
    expect(alex).to_contain_text("Offline")
    expect(alex.locator(".agent-load")).to_have_text("0 0 of 3")
    expect(manager.locator("#live-sl")).to_have_text("–")
    manager.screenshot(path=ARTIFACTS / "live-01-quiet.png", full_page=True)

    visitor = browser.new_context().new_page()
    visitor.goto(f"{base}/chat/")
    visitor.fill("#id_name", "Nia <b>Shah</b>")
    visitor.select_option("#id_topic", "Billing")
    visitor.fill("#id_message", "My card was charged twice")
    visitor.click("text=Start chat")
    visitor.wait_for_selector("#conn[data-state=open]")

    # Nobody is online: the chat waits, and the manager's page shows it without a reload.
    expect(manager.locator("#live-waiting-total")).to_have_text("1", timeout=WAIT_MS)
    waiting = manager.locator("#live-waiting li")
    expect(waiting).to_have_count(1)
    expect(waiting.locator("a")).to_have_text("Nia <b>Shah</b>")  # the name as text, not markup
    expect(waiting.locator("a")).to_have_attribute("href", re.compile(r"^/reports/chats/\d+/"))
    expect(general.locator(".stage-waiting")).to_have_text("1")
    expect(general.locator(".stage-oldest")).to_contain_text("of 3 min 0 s")
    # The wait runs on in the page, with nothing sent: a later second than the one it showed.
    shown = waiting.locator(".age").inner_text()
    expect(waiting.locator(".age")).not_to_have_text(shown, timeout=WAIT_MS)
    manager.screenshot(path=ARTIFACTS / "live-02-waiting.png", full_page=True)

    agent = log_in(browser, base, "alex")
    agent.select_option("#presence", "online")  # L1 General routes round robin: Alex gets it
    agent.locator(".pane:visible").locator("text=My card was charged twice").wait_for()

    expect(manager.locator("#live-waiting-total")).to_have_text("0", timeout=WAIT_MS)
    expect(manager.locator("#live-waiting li")).to_have_text(["No chats waiting."])
    expect(alex).to_contain_text("Online")
    expect(alex.locator(".agent-load")).to_have_text("1 1 of 3")
    expect(alex.locator(".live-chats a")).to_have_text("Nia <b>Shah</b>")
    expect(manager.locator("#live-online")).to_have_text("1")
    expect(manager.locator("#live-sl")).to_have_text("100 %")
    expect(manager.locator("#live-sl-detail")).to_have_text(
        "1 of 1 chats answered within 10 min 0 s"
    )
    manager.screenshot(path=ARTIFACTS / "live-03-taken.png", full_page=True)

    # Each chat in the view opens read-only: its transcript, with nothing to type into.
    transcript = manager.context.new_page()
    transcript.goto(base + (alex.locator(".live-chats a").get_attribute("href") or ""))
    expect(transcript.locator(".chat-transcript")).to_contain_text("My card was charged twice")
    expect(transcript.locator("textarea, form.composer")).to_have_count(0)
    transcript.screenshot(path=ARTIFACTS / "live-04-transcript.png", full_page=True)
    transcript.close()

    # The server goes away: the page says so. Meanwhile Alex ends the chat (stored, published
    # to nobody). When the server is back, the page catches up with a fresh snapshot.
    daphne_process.stop()
    expect(manager.locator("#conn")).to_have_attribute(
        "data-state", "reconnecting", timeout=WAIT_MS
    )
    expect(manager.locator("#conn")).to_have_text(re.compile("Reconnecting…"))
    manager.screenshot(path=ARTIFACTS / "live-05-reconnecting.png", full_page=True)

    def end_alexs_chat() -> None:
        held = Agent.objects.get(user__username="alex")
        chat_id = held.assignments.get(ended_at__isnull=True).chat_id
        services.end_chat_by_agent(chat_id=chat_id, agent=held)

    off_thread(end_alexs_chat)
    daphne_process.start()
    expect(manager.locator("#conn")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
    expect(alex.locator(".agent-load")).to_have_text("0 0 of 3", timeout=WAIT_MS)
    expect(alex.locator(".live-chats li")).to_have_text(["No chats"])
    manager.screenshot(path=ARTIFACTS / "live-06-back.png", full_page=True)

    # Logged out in another tab: the socket's re-check closes it, and the page says why and
    # stops trying (its data dimmed as stale).
    other_tab = manager.context.new_page()
    other_tab.goto(f"{base}/reports/")
    other_tab.locator("form.logout button").click()
    other_tab.wait_for_url(re.compile("/accounts/login/"))
    expect(manager.locator("#conn")).to_have_attribute("data-state", "closed", timeout=WAIT_MS)
    expect(manager.locator("#conn")).to_have_text("Not allowed: please reload the page.")
    manager.screenshot(path=ARTIFACTS / "live-07-logged-out.png", full_page=True)
    assert refused(manager) == []  # no inline script or style anywhere in all that
