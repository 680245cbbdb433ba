"""An agent accepts an offer from the console, in a real browser (Playwright driving Debian's
Chromium) against real daphne, a Celery worker with beat, PostgreSQL and Redis."""

import pytest
from playwright.sync_api import expect

from escalation.models import Stage
from tests.e2e.live import ARTIFACTS, CeleryWorker
from tests.e2e.test_browser import log_in

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def worker_with_beat(_flushed_test_redis, _django_db_helper, django_db_blocker):
    with django_db_blocker.unblock():
        worker = CeleryWorker(beat=True, name="offers-browser", TIMER_SWEEP_SECONDS="0.5")
        worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def searching_every_second(demo):
    """Before the browser starts: Playwright's event loop forbids database calls in the test."""
    Stage.objects.filter(name="Orders").update(still_searching_seconds=1)


def test_an_agent_accepts_an_offer_from_the_console(
    searching_every_second, browser, daphne_process, worker_with_beat
):
    base = daphne_process.base_url
    visitor = browser.new_context().new_page()
    visitor.goto(f"{base}/chat/")
    visitor.fill("#id_name", "Carol")
    visitor.select_option("#id_topic", "Where is my order?")
    visitor.fill("#id_message", "Order 1234 has not arrived")
    visitor.click("text=Start chat")
    visitor.wait_for_selector("#conn[data-state=open]")

    # Nobody is online: the visitor is told every second that we are still searching, and the
    # notices collapse into the latest one on the page.
    searching = visitor.locator('#transcript li[data-event="still_searching"]')
    searching.first.wait_for()
    first_seq = int(searching.first.get_attribute("data-seq") or 0)
    visitor.wait_for_function(
        "seq => Number(document.querySelector('#transcript li[data-event=still_searching]')"
        ".dataset.seq) >= seq + 2",
        arg=first_seq,
    )
    expect(searching).to_have_count(1)
    assert searching.inner_text().endswith(
        "Still looking for an agent: you are number 1 in line, wait not known yet."
    )

    alex = log_in(browser, base, "alex")
    alex.select_option("#presence", "online")  # L1 Orders broadcasts: the offer appears
    offer = alex.locator("#offer-list .offer-item")
    offer.wait_for()
    assert "Carol" in offer.inner_text() and "Where is my order?" in offer.inner_text()
    assert "Orders · Level 1" in offer.inner_text()
    alex.screenshot(path=ARTIFACTS / "07-agent-offer.png", full_page=True)
    offer.locator(".accept-btn").click()

    pane = alex.locator(".pane:visible")
    pane.locator("text=Order 1234 has not arrived").wait_for()
    expect(alex.locator("#offer-list .offer-item")).to_have_count(0)
    expect(alex.locator("#chat-list .chat-item")).to_have_count(1)
    visitor.locator("text=Alex from the orders team joined the chat.").wait_for()
    pane.locator("form.composer textarea").fill("Hi Carol, let me check order 1234.")
    pane.locator("form.composer button[type=submit]").click()
    visitor.locator("text=Hi Carol, let me check order 1234.").wait_for()
    visitor.screenshot(path=ARTIFACTS / "08-visitor-offer-accepted.png", full_page=True)
