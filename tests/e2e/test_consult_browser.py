"""Consulting a colleague, in real browsers (Playwright driving Debian's Chromium) against real
daphne, a Celery worker, PostgreSQL and Redis: Alex, who holds Carol's chat, asks Sam; Sam's
console alerts, he opens the chat read-only and answers; Alex sees the answer; Carol's page and
every frame her socket got show none of it; the consult closes when Alex ends the chat. Screenshots
go to test-artifacts/consult-*.png."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.live import ARTIFACTS
from tests.e2e.test_console_states import log_in

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

QUESTION = "Can we refund a 40-day-old invoice?"
ANSWER = "Yes, with a manager's OK: note it in the chat."
TITLE = "Console · Tierline"


def shot(page: Page, name: str) -> None:
    page.screenshot(path=ARTIFACTS / f"consult-{name}.png", full_page=True)


def test_a_colleague_is_consulted_reads_the_chat_and_answers(
    demo, browser, daphne_process, celery_worker_process
):
    base = daphne_process.base_url
    sam = log_in(browser, base, "sam")
    expect(sam.locator("#consult-list")).to_have_text("Nobody has asked for your advice.")
    alex = log_in(browser, base, "alex")

    visitor = browser.new_context().new_page()
    received: list[str] = []  # every frame Carol's socket is sent
    visitor.on("websocket", lambda ws: ws.on("framereceived", lambda f: received.append(str(f))))
    visitor.goto(f"{base}/chat/")
    visitor.fill("#id_name", "Carol")
    visitor.select_option("#id_topic", "Billing")
    visitor.fill("#id_message", "I want a refund for an old invoice")
    visitor.click("text=Start chat")
    visitor.wait_for_selector("#conn[data-state=open]")

    pane = alex.locator(".pane:visible")
    pane.locator("text=I want a refund for an old invoice").wait_for()
    expect(pane).to_have_attribute("data-state", "held")
    pane.locator(".consult-btn").click()
    dialog = pane.locator(".consult-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("button[type=submit]").click()  # nobody chosen: told so, nothing sent
    expect(dialog.locator(".consult-dialog-error")).to_have_text("Choose a colleague or a group.")
    dialog.get_by_label(re.compile(r"^Sam")).check()
    dialog.locator(".consult-question-text").fill(QUESTION)
    shot(alex, "01-holder-asks")
    dialog.locator("button[type=submit]").click()
    expect(dialog).to_be_hidden()
    box = pane.locator(".consult-box")
    expect(box.locator(".consult-title")).to_have_text("Consulting Sam")
    expect(box.locator(".consult-status")).to_have_text("Waiting for an answer.")
    expect(pane.locator(".consult-btn")).to_be_hidden()  # one consult at a time
    expect(pane.locator(".msg-consult .text")).to_have_text([QUESTION])

    # Sam is told at once: the title counts it, and the card lists it.
    expect(sam).to_have_title(f"(1) {TITLE}")
    item = sam.locator("#consult-list .consult-item")
    expect(item).to_contain_text("Alex")
    expect(item).to_contain_text(QUESTION)
    expect(sam.locator("#consult-count")).to_have_text("1")
    shot(sam, "02-colleague-alerted")
    item.click()
    sam_pane = sam.locator(".pane:visible")
    expect(sam_pane).to_have_attribute("data-state", "consulting")
    expect(sam_pane.locator(".pane-banner")).to_have_text(
        "Read-only: Alex asked your advice on this chat. Answer in the consult below."
    )
    expect(sam).to_have_title(TITLE)  # looked at: no longer an alert
    # Read-only: the transcript, no reply box to the visitor, no Take, End, Escalate or Consult.
    sam_pane.locator("text=I want a refund for an old invoice").wait_for()
    for control in ("form.composer", ".pane-take", ".end-btn", ".esc-btn", ".consult-btn"):
        expect(sam_pane.locator(control)).to_be_hidden()
    expect(sam_pane.locator(".consult-title")).to_have_text("Alex asks your advice")
    # Live: what Carol writes now reaches Sam too.
    visitor.fill("#composer-text", "Is anyone there?")
    visitor.click("#send")
    sam_pane.locator("text=Is anyone there?").wait_for()

    sam_pane.get_by_label("Answer Alex").fill(ANSWER)
    sam_pane.get_by_label("Answer Alex").press("Enter")
    expect(sam_pane.locator(".consult-status")).to_have_text("You answered.")
    shot(sam, "03-colleague-answers")
    expect(pane.locator(".msg-consult .text")).to_have_text([QUESTION, ANSWER])
    expect(pane.locator(".msg-consult .who").last).to_have_text("Sam (consult)")
    expect(box.locator(".consult-status")).to_have_text("Sam answered.")
    pane.get_by_label("Write to Sam").fill("Thanks, doing that.")
    pane.get_by_label("Write to Sam").press("Enter")
    sam_pane.locator("text=Thanks, doing that.").wait_for()

    # Alex replies to Carol: she gets that, and nothing of the thread, on the page or the wire.
    pane.locator("form.composer textarea").fill("Good news: we can refund it.")
    pane.locator("form.composer button[type=submit]").click()
    visitor.locator("text=Good news: we can refund it.").wait_for()
    shot(alex, "04-holder-sees-answer")
    shot(visitor, "05-visitor-sees-nothing")
    page_text = visitor.locator("body").inner_text()
    wire = "\n".join(received)
    for secret in (QUESTION, ANSWER, "Thanks, doing that.", "consult"):
        assert secret not in page_text
        assert secret not in wire
    assert "Good news: we can refund it." in wire  # the frames were seen: the check means it

    # Alex ends the chat: the consult closes, Sam's pane says so and lets go.
    pane.locator(".end-btn").click()  # confirmed by log_in's dialog handler
    expect(sam_pane).to_have_attribute("data-state", "consult_over")
    expect(sam_pane.locator(".pane-banner")).to_have_text(
        "The consult is over: you can no longer follow this chat."
    )
    expect(sam_pane.locator(".consult-status")).to_have_text(
        "The consult is closed: the chat ended."
    )
    expect(sam_pane.locator(".consult-form")).to_be_hidden()
    expect(sam_pane.locator(".pane-close")).to_be_visible()
    expect(sam.locator("#consult-list")).to_have_text("Nobody has asked for your advice.")
    expect(box.locator(".consult-status")).to_have_text("The consult is closed: the chat ended.")
    shot(sam, "06-colleague-consult-over")
    shot(alex, "07-holder-chat-ended")
