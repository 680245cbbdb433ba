"""A warm hand-over with both agents and the visitor on their own pages, in Chromium against
real daphne, Celery, PostgreSQL and Redis: Alex asks Billing in, Sam is offered it with the
history and the note, joins, both agents see each other and write, Sam takes over, Alex's console
shows the chat handed over and the visitor goes on with Sam. And the timeout: nobody accepts,
Alex is told and keeps the chat. Screenshots go to test-artifacts/handover-*.png."""

import pytest
from playwright.sync_api import Page, expect

from escalation.models import EscalationOption, Stage
from tests.e2e.live import ARTIFACTS, off_thread
from tests.e2e.test_console_states import log_in, pane, say, server, start_chat

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
__all__ = ["server"]  # the module's daphne and Celery worker

# Waits for what a Celery timer does, on a machine whose cores may all be busy.
TIMER_WAIT_MS = 30_000


def shot(page: Page, name: str) -> None:
    page.screenshot(path=ARTIFACTS / f"handover-{name}.png", full_page=True)


def warm_billing(accept_seconds: int) -> None:
    def setup() -> None:
        EscalationOption.objects.filter(keyword="billing").update(
            is_warm=True, accept_timeout_seconds=accept_seconds
        )

    off_thread(setup)


def held_by_alex(browser, base: str) -> tuple[Page, Page, Page]:
    """Alex and Sam online on their consoles, then Carol's chat, which goes to Alex."""
    alex = log_in(browser, base, "alex")
    sam = log_in(browser, base, "sam")
    visitor = start_chat(browser, base)
    visitor.locator("text=Alex from our support team joined the chat.").wait_for()
    pane(alex).locator("text=Hello, this is Carol").wait_for()
    return alex, sam, visitor


def ask_billing_in(alex: Page) -> None:
    box = pane(alex)
    box.locator(".esc-btn").click()
    dialog = box.locator(".esc-dialog")
    expect(dialog.locator(".esc-target", has_text="warm")).to_have_count(1)
    dialog.locator("input[value=billing]").check()
    dialog.locator(".esc-note").fill("Disputed invoice, already checked the account")
    dialog.locator(".esc-submit").click()
    expect(dialog).to_be_hidden()


def test_warm_hand_over_with_both_agents_and_the_visitor(demo, browser, server):
    warm_billing(120)
    alex, sam, visitor = held_by_alex(browser, server.base_url)
    ask_billing_in(alex)

    alex_bar = pane(alex).locator(".handover-bar")
    expect(alex_bar).to_contain_text("Warm hand-over to L2 Billing: waiting for an answer")
    expect(pane(alex)).to_have_attribute("data-state", "held")  # Alex keeps the chat meanwhile
    visitor.locator(
        "text=Alex is bringing in someone from the billing team to help you. Stay with us."
    ).wait_for()

    offer = sam.locator("#handover-list .handover-item")
    expect(offer).to_contain_text("Warm hand-over from Alex to L2 Billing")
    expect(offer).to_contain_text("Note: Disputed invoice, already checked the account")
    expect(sam.locator("#handovers-count")).to_have_text("1")
    offer.locator(".handover-view").click()  # the history before accepting
    pane(sam).locator("text=Hello, this is Carol").wait_for()
    expect(pane(sam)).to_have_attribute("data-state", "handover_offered")
    expect(pane(sam).locator("form.composer")).to_be_hidden()
    shot(alex, "01-alex-waiting")
    shot(sam, "02-sam-offered")

    offer.locator(".handover-accept").click()
    visitor.locator("text=Sam from the billing team joined the chat.").wait_for()
    expect(pane(sam)).to_have_attribute("data-state", "joined")
    expect(pane(sam).locator(".handover-bar")).to_contain_text("You joined Alex's chat.")
    expect(pane(sam).locator(".end-btn")).to_be_hidden()  # Alex still holds it
    expect(alex_bar).to_contain_text("Sam joined the chat: both of you are in it")
    expect(sam.locator("#handover-list .empty")).to_have_text("No hand-overs.")

    say(sam, "Hi Carol, Sam from billing here.")
    visitor.locator("text=Hi Carol, Sam from billing here.").wait_for()
    pane(alex).locator("text=Hi Carol, Sam from billing here.").wait_for()
    say(alex, "Sam will take it from here.")
    visitor.locator("text=Sam will take it from here.").wait_for()
    pane(sam).locator("text=Sam will take it from here.").wait_for()
    shot(visitor, "03-visitor-both-agents")
    shot(alex, "04-alex-joint")
    shot(sam, "05-sam-joint")

    pane(sam).locator(".handover-take").click()
    expect(pane(alex)).to_have_attribute("data-state", "handed_over")
    expect(pane(alex).locator(".pane-banner")).to_have_text("Handed over to Sam.")
    expect(pane(alex).locator("form.composer")).to_be_hidden()
    visitor.locator("text=Alex left the chat.").wait_for()
    expect(pane(sam)).to_have_attribute("data-state", "held")
    expect(pane(sam).locator(".end-btn")).to_be_visible()

    visitor.fill("#composer-text", "Thanks, the invoice is 4711")
    visitor.keyboard.press("Enter")
    pane(sam).locator("text=Thanks, the invoice is 4711").wait_for()
    say(sam, "Got it, refunding now.")
    visitor.locator("text=Got it, refunding now.").wait_for()
    expect(pane(alex).locator("text=Got it, refunding now.")).to_have_count(0)
    shot(alex, "06-alex-handed-over")
    shot(sam, "07-sam-holds")
    shot(visitor, "08-visitor-with-sam")


def test_nobody_accepts_in_time_and_the_chat_stays(demo, browser, server):
    warm_billing(3)
    alex, sam, visitor = held_by_alex(browser, server.base_url)
    ask_billing_in(alex)
    sam.locator("#handover-list .handover-item").wait_for()

    # The Celery timer closes the request; nobody answers.
    visitor.locator("text=Alex will keep helping you.").wait_for(timeout=TIMER_WAIT_MS)
    expect(pane(alex).locator(".handover-bar")).to_have_text(
        "No one accepted the hand-over in time: the chat stays with you."
    )
    expect(alex.locator("#toast")).to_have_text(
        "No one accepted the hand-over in time: the chat stays with you."
    )
    expect(pane(alex)).to_have_attribute("data-state", "held")
    expect(sam.locator("#handover-list .empty")).to_have_text("No hand-overs.")
    say(alex, "Let me look into it myself.")
    visitor.locator("text=Let me look into it myself.").wait_for()
    shot(alex, "09-alex-timed-out")
    shot(visitor, "10-visitor-stays")


def test_a_colleague_declines_and_the_holder_is_told(demo, browser, server):
    def setup() -> None:
        Stage.objects.filter(name="L1 General").update(
            allows_hand_to_colleague=True, colleague_handover="either"
        )

    off_thread(setup)
    alex, sam, _visitor = held_by_alex(browser, server.base_url)
    box = pane(alex)
    box.locator(".esc-btn").click()
    dialog = box.locator(".esc-dialog")
    colleague = dialog.locator(".esc-colleague", has_text="Sam")
    expect(colleague).to_contain_text("Level 2 · 0 of")
    shot(alex, "11-alex-colleague-picker")
    colleague.locator("input").check()
    dialog.locator(".esc-mode").select_option("cold")
    dialog.locator(".esc-submit").click()
    offer = sam.locator("#handover-list .handover-item")
    expect(offer).to_contain_text("Hand-over from Alex to Sam")
    offer.locator(".handover-decline").click()
    expect(box.locator(".handover-bar")).to_have_text(
        "Sam declined the hand-over: the chat stays with you."
    )
    expect(box).to_have_attribute("data-state", "held")


def test_joining_from_the_card_reloading_and_the_holder_cancelling(demo, browser, server):
    warm_billing(120)
    alex, sam, visitor = held_by_alex(browser, server.base_url)
    ask_billing_in(alex)

    # Sam joins straight from the card, without viewing the chat first.
    sam.locator("#handover-list .handover-item .handover-accept").click()
    visitor.locator("text=Sam from the billing team joined the chat.").wait_for()
    expect(pane(sam)).to_have_attribute("data-state", "joined")
    expect(pane(sam).locator(".handover-take")).to_be_visible()
    pane(sam).locator("text=Hello, this is Carol").wait_for()
    listed = sam.locator("#chat-list .chat-item")
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("joined")
    say(alex, "Sam is with us now.")
    pane(sam).locator("text=Sam is with us now.").wait_for()
    shot(sam, "12-sam-joined-from-the-card")

    # A reload: the chat is still listed, its pane shows the Take over bar, messages arrive.
    sam.reload()
    sam.wait_for_selector("#conn[data-state=open]")
    expect(sam.locator("#chat-list .chat-item")).to_contain_text("joined")
    expect(pane(sam)).to_have_attribute("data-state", "joined")
    expect(pane(sam).locator(".handover-bar")).to_contain_text("You joined Alex's chat.")
    expect(pane(sam).locator(".handover-take")).to_be_visible()
    pane(sam).locator("text=Sam is with us now.").wait_for()
    visitor.fill("#composer-text", "Is anyone there?")
    visitor.keyboard.press("Enter")
    pane(sam).locator("text=Is anyone there?").wait_for()
    shot(sam, "13-sam-joined-after-reload")

    # Sam does not take over: Alex cancels; Sam leaves the chat, which stays with Alex.
    pane(alex).locator(".handover-cancel").click()
    expect(pane(alex).locator(".handover-bar")).to_have_text(
        "You cancelled the hand-over: Sam left the chat, which stays with you."
    )
    expect(pane(alex)).to_have_attribute("data-state", "held")
    visitor.locator("text=Sam left the chat.").wait_for()
    expect(pane(sam)).to_have_attribute("data-state", "handover_left")
    expect(pane(sam).locator(".pane-banner")).to_have_text(
        "The hand-over is over: you left this chat."
    )
    expect(pane(sam).locator(".handover-bar")).to_have_text(
        "Alex cancelled the hand-over: you left the chat."
    )
    expect(pane(sam).locator("form.composer")).to_be_hidden()
    expect(sam.locator("#chat-list .chat-item")).to_have_count(0)
    shot(alex, "14-alex-cancelled-joined")
    shot(sam, "15-sam-left")
