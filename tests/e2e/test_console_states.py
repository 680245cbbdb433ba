"""Every state of a chat in the agent's console (static/console/chatstate.js), and what the
visitor sees at the same time, in real browsers (Playwright driving Debian's Chromium) against one
daphne and one Celery worker per module, PostgreSQL and Redis. Alerts, typing indicators both
ways and the visitor-left notice too. Screenshots go to test-artifacts/states-*.png."""

import datetime as dt
import json

import pytest
import time_machine
from django.conf import settings
from playwright.sync_api import Page, WebSocket, expect

from tests.e2e.live import ARTIFACTS, CeleryWorker, Daphne, off_thread

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
TITLE = "Console · Tierline"
SOCKETS: dict[Page, list[WebSocket]] = {}  # each visitor page's websockets, for their close


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, _flushed_test_redis):
    """One daphne and one Celery worker for the module: each test brings its own data (the
    database is emptied after each) and its own browser."""
    with django_db_blocker.unblock():
        daphne, worker = Daphne(), CeleryWorker(name="console-states")
        daphne.start()
        try:
            worker.start()
        except BaseException:
            daphne.stop()
            raise
    yield daphne
    worker.stop()
    daphne.stop()


@pytest.fixture
def browser(browser):
    yield browser
    SOCKETS.clear()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=ARTIFACTS / f"states-{name}.png", full_page=True)


def log_in(browser, base: str, username: str = "alex", *, online: bool = True) -> Page:
    page = browser.new_context().new_page()
    page.on("dialog", lambda d: d.accept())
    page.goto(f"{base}/console/")
    page.fill("#id_username", username)
    page.fill("#id_password", "tierline-demo")
    page.click("button[type=submit]")
    page.wait_for_selector("#conn[data-state=open]")
    if online:
        page.select_option("#presence", "online")
        page.wait_for_selector("#console[data-presence=online]")
    return page


def start_chat(browser, base: str, *, name: str = "Carol", topic: str = "Billing") -> Page:
    page = browser.new_context().new_page()
    page.on("dialog", lambda d: d.accept())
    page.on("websocket", lambda ws: SOCKETS.setdefault(page, []).append(ws))
    page.goto(f"{base}/chat/")
    page.fill("#id_name", name)
    page.select_option("#id_topic", topic)
    page.fill("#id_message", f"Hello, this is {name}")
    page.click("text=Start chat")
    page.wait_for_selector("#conn[data-state=open]")
    return page


def chat_id(visitor: Page) -> int:
    return int(visitor.locator("#room").get_attribute("data-chat") or 0)


def held_chat(browser, base: str) -> tuple[Page, Page]:
    """Alex online, then Carol's chat: L1 General routes it to Alex, whose pane opens on it."""
    alex = log_in(browser, base)
    visitor = start_chat(browser, base)
    visitor.locator("text=Alex from our support team joined the chat.").wait_for()
    pane(alex).locator("text=Alex from our support team joined the chat.").wait_for()
    return alex, visitor


def pane(page: Page):
    return page.locator(".pane:visible")


def say(page: Page, text: str, *, internal: bool = False) -> None:
    box = pane(page)
    box.locator(".internal").set_checked(internal)
    box.locator("form.composer textarea").fill(text)
    box.locator("form.composer button[type=submit]").click()


def expect_writable(box) -> None:
    for control in ("form.composer", ".end-btn", ".esc-btn", ".internal"):
        expect(box.locator(control)).to_be_visible()
    expect(box.locator("form.composer textarea")).to_be_enabled()


def expect_read_only(box) -> None:
    """No way to write: the composer, Internal note, End and Escalate are gone (and disabled)."""
    for control in ("form.composer", ".end-btn", ".esc-btn", ".internal"):
        expect(box.locator(control)).to_be_hidden()
    expect(box.locator("form.composer textarea")).to_be_disabled()
    expect(box.locator(".transcript .msg").first).to_be_visible()  # still readable


def expect_visitor_closed(visitor: Page, banner: str) -> None:
    expect(visitor.locator("#room-banner")).to_have_text(banner)
    expect(visitor.locator("#composer-text")).to_be_hidden()
    expect(visitor.locator("#end-chat")).to_be_hidden()
    expect(visitor.locator("#new-chat")).to_be_visible()
    expect(visitor.locator("#conn")).to_have_text("Chat ended")


# --- The state machine itself, in the browser that runs it ----------------------------------
MACHINE = """async (cases) => {
  const { next, describe, initial } = await import("/static/console/chatstate.js");
  return cases.map((frames) => {
    const state = frames.reduce(next, initial);
    const { banner, canWrite } = describe(state);
    return [state.name, banner, canWrite];
  });
}"""
INFO = {"type": "chat.info", "status": "queued", "held": False}
HELD = {"type": "chat.info", "status": "active", "held": True}
ASSIGNED = {"type": "chat.assigned"}
OFFER = {"type": "offer", "offer": 7}


def status(by: str, status: str = "ended") -> dict[str, str]:
    return {"type": "chat.status", "status": status, "by": by}


def removed(reason: str, to: str = "") -> dict[str, str]:
    return {"type": "chat.removed", "reason": reason, "handed_over_to": to}


BANNERS = {
    "waiting": "Waiting in the queue: take it to reply.",
    "offered": "Offered to you: accept it in Offers to reply.",
    "held": "This chat is active.",
    "returned": "Returned to the queue: it waits for the next agent.",
    "ended_by_visitor": "The visitor ended the chat.",
    "ended_by_agent": "You ended this chat.",
    "visitor_gone": "The visitor left: their page stopped answering.",
    "no_longer_visible": "This chat left your queues: you can no longer follow it.",
    "ended": "This chat has ended.",
}
TIMED_OUT = "The wait timed out: the chat ended without an agent."
# (frames in order, the state they lead to, its banner if not the state's usual one)
CASES = [
    ([INFO], "waiting", None),
    ([INFO, OFFER], "offered", None),
    ([INFO, OFFER, {"type": "offer.closed", "offer": 7, "status": "lapsed"}], "waiting", None),
    ([INFO, OFFER, {"type": "offer.closed", "offer": 8, "status": "lapsed"}], "offered", None),
    ([INFO, {"type": "taken"}], "held", None),
    ([ASSIGNED], "held", None),
    ([HELD, status("", "active"), {"type": "message", "seq": 9}], "held", None),
    (
        [HELD, removed("escalated", "L2 Billing (Level 2)")],
        "handed_over",
        "Handed over to L2 Billing (Level 2).",
    ),
    ([HELD, removed("escalated")], "handed_over", "Handed over to another team."),
    ([HELD, removed("escalated", "X"), HELD], "handed_over", "Handed over to X."),
    ([HELD, removed("escalated", "X"), ASSIGNED], "held", None),  # it came back to us
    ([HELD, removed("returned")], "returned", None),
    ([HELD, removed("returned"), OFFER], "offered", None),
    ([HELD, status("visitor"), removed("visitor_left")], "ended_by_visitor", None),
    ([HELD, removed("visitor_left")], "ended_by_visitor", None),  # after a resync
    ([HELD, status("agent"), removed("resolved")], "ended_by_agent", None),
    ([HELD, removed("resolved")], "ended_by_agent", None),
    ([INFO, status("timeout", "missed")], "ended_by_timeout", TIMED_OUT),
    (
        [INFO, status("fallback", "missed")],
        "ended_by_timeout",
        "The chat ended: nobody was available to take it.",
    ),
    (
        [INFO, status("timeout"), removed("no_longer_visible"), ASSIGNED],
        "ended_by_timeout",
        TIMED_OUT,
    ),  # an end is final
    ([HELD, status("visitor_gone"), removed("visitor_left")], "visitor_gone", None),
    ([INFO, removed("no_longer_visible")], "no_longer_visible", None),
    ([{**INFO, "status": "ended"}], "ended", None),
]


def test_the_chat_state_machine(demo, browser, server):
    page = browser.new_context().new_page()
    page.goto(f"{server.base_url}/chat/")
    got = page.evaluate(MACHINE, [frames for frames, _, _ in CASES])
    expected = [[name, banner or BANNERS[name], name == "held"] for _, name, banner in CASES]
    assert got == expected, json.dumps(got, indent=1)


# --- Each state, on both sides ----------------------------------------------------------------
def test_active_chat_opens_in_the_empty_pane_writable_on_both_sides(demo, browser, server):
    alex, visitor = held_chat(browser, server.base_url)  # no pane was open: it opened by itself
    box = pane(alex)
    expect(box.locator(".pane-banner")).to_have_text("This chat is active.")
    expect(box.locator(".pane-banner")).to_have_attribute("role", "status")
    expect(box.locator(".transcript")).to_have_attribute("aria-live", "polite")
    expect_writable(box)
    expect(alex.locator("#chat-list .chat-item")).to_have_count(1)
    say(alex, "Hi Carol, I am looking at it.")
    visitor.locator("text=Hi Carol, I am looking at it.").wait_for()
    expect(visitor.locator("#room-banner")).to_be_hidden()
    expect(visitor.locator("#composer-text")).to_be_enabled()
    expect(visitor.locator("#transcript")).to_have_attribute("aria-live", "polite")
    expect(alex).to_have_title(TITLE)  # the chat on screen is no news
    shot(alex, "01-agent-active")
    shot(visitor, "01-visitor-active")


def test_ended_by_the_agent(demo, browser, server):
    alex, visitor = held_chat(browser, server.base_url)
    say(alex, "Glad I could help.")
    visitor.locator("text=Glad I could help.").wait_for()
    pane(alex).locator(".end-btn").click()
    box = pane(alex)
    expect(box.locator(".pane-banner")).to_have_text("You ended this chat.")
    expect_read_only(box)
    box.locator("text=The chat has ended. Thank you for contacting us.").wait_for()
    expect(alex.locator("#chat-list .chat-item")).to_have_count(0)
    expect_visitor_closed(visitor, "Alex ended the chat.")
    socket = SOCKETS.pop(visitor)[-1]
    if not socket.is_closed():
        socket.wait_for_event("close")  # the page has run its close handler by now
    expect(visitor.locator("#conn")).to_have_text("Chat ended")  # not overwritten by "Closed"
    shot(alex, "02-agent-ended-by-agent")
    shot(visitor, "02-visitor-ended-by-agent")
    box.locator(".pane-close").click()  # closing the pane is the agent's choice
    expect(alex.locator(".pane")).to_have_count(0)
    expect(alex.locator("#empty-pane")).to_be_visible()


def test_ended_by_the_visitor_with_the_visitor_left_notice(demo, browser, server):
    alex, visitor = held_chat(browser, server.base_url)
    visitor.click("#end-chat")
    expect_visitor_closed(visitor, "You ended the chat.")
    box = pane(alex)
    expect(box.locator(".pane-banner")).to_have_text("The visitor ended the chat.")
    notice = box.locator(".msg-notice .text")
    expect(notice).to_have_text("Carol left the chat.")  # a notice, not somebody's note
    expect(box.locator(".msg-internal")).to_have_count(0)
    expect(box.locator("text=(internal note)")).to_have_count(0)
    expect_read_only(box)
    expect(alex.locator("#chat-list .chat-item")).to_have_count(0)
    shot(alex, "03-agent-ended-by-visitor")
    shot(visitor, "03-visitor-ended-by-visitor")


def test_visitor_gone_found_by_the_sweep(demo, browser, server):
    alex, visitor = held_chat(browser, server.base_url)

    def sweep_later() -> int:
        from escalation.services import sweep_gone_visitors

        gone = dt.timedelta(seconds=settings.VISITOR_GONE_SECONDS + 5)
        with time_machine.travel(dt.datetime.now(tz=dt.UTC) + gone):
            return sweep_gone_visitors()

    assert off_thread(sweep_later) == 1
    box = pane(alex)
    expect(box.locator(".pane-banner")).to_have_text(
        "The visitor left: their page stopped answering."
    )
    expect(box.locator(".msg-notice .text")).to_have_text("Carol left the chat.")
    expect_read_only(box)
    # A page that was only asleep learns why when it wakes.
    expect_visitor_closed(visitor, "The chat ended: your page stopped answering for too long.")
    shot(alex, "04-agent-visitor-gone")
    shot(visitor, "04-visitor-gone")


def test_handed_over(demo, browser, server):
    alex, visitor = held_chat(browser, server.base_url)
    say(alex, "/escalate billing Charged twice, refund needs L2")
    box = pane(alex)
    expect(box.locator(".pane-banner")).to_have_text("Handed over to L2 Billing (Level 2).")
    expect_read_only(box)
    box.locator("text=You are being transferred to the billing team.").wait_for()
    expect(alex.locator("#chat-list .chat-item")).to_have_count(0)
    visitor.locator("text=You are being transferred to the billing team.").wait_for()
    expect(visitor.locator("#queue-box")).to_be_visible()
    expect(visitor.locator("#room-banner")).to_be_hidden()
    expect(visitor.locator("#composer-text")).to_be_enabled()  # the visitor may write meanwhile
    shot(alex, "05-agent-handed-over")
    shot(visitor, "05-visitor-handed-over")


def test_returned_to_the_queue_then_taken_again(demo, browser, server):
    alex, visitor = held_chat(browser, server.base_url)
    alex.select_option("#presence", "away")  # as the sweep of gone agents does first
    alex.wait_for_selector("#console[data-presence=away]")
    chat = chat_id(visitor)

    def give_back() -> None:
        from escalation.models import Agent
        from escalation.services import return_to_queue

        agent = Agent.objects.get(user__username="alex")
        return_to_queue(chat_id=chat, agent=agent, why="the agent's console closed")

    off_thread(give_back)
    box = pane(alex)
    expect(box.locator(".pane-banner")).to_have_text(
        "Returned to the queue: it waits for the next agent."
    )
    expect_read_only(box)
    expect(alex.locator("#queue-list .queue-item")).to_have_count(1)
    visitor.locator("text=Alex left the chat.").wait_for()
    expect(visitor.locator("#queue-box")).to_be_visible()
    expect(visitor.locator("#composer-text")).to_be_enabled()
    shot(alex, "06-agent-returned")
    shot(visitor, "06-visitor-returned")
    alex.select_option("#presence", "online")  # L1 General hands it out again: to Alex
    expect(box.locator(".pane-banner")).to_have_text("This chat is active.")
    expect_writable(box)


def test_ended_by_timeout_while_previewed(demo, browser, server):
    alex = log_in(browser, server.base_url, online=False)  # nobody online: the chat waits
    visitor = start_chat(browser, server.base_url)
    alex.locator("#queue-list .queue-info").click()  # preview it
    box = pane(alex)
    box.locator("text=Hello, this is Carol").wait_for()
    expect(box.locator(".pane-banner")).to_have_text("Waiting in the queue: take it to reply.")
    expect_read_only(box)
    expect(box.locator(".pane-take")).to_be_visible()
    shot(alex, "07-agent-waiting-preview")
    chat = chat_id(visitor)

    def time_out() -> str:
        from django.utils import timezone

        from escalation.models import QueueEntry
        from escalation.services import handle_wait_timeout

        entry = QueueEntry.objects.get(chat_id=chat, left_at__isnull=True)
        QueueEntry.objects.filter(pk=entry.pk).update(deadline=timezone.now())
        return handle_wait_timeout(entry_id=entry.pk)

    assert off_thread(time_out) == "fell back"
    expect_visitor_closed(visitor, "The chat ended: nobody could take it in time.")
    expect(visitor.locator("#offline-form")).to_be_visible()  # L1 General: leave a message
    expect(box.locator(".pane-banner")).to_have_text(
        "The wait timed out: the chat ended without an agent."
    )
    box.locator("text=Nobody from our support team could take your chat yet.").wait_for()
    expect_read_only(box)
    expect(box.locator(".pane-take")).to_be_hidden()
    shot(alex, "07-agent-ended-by-timeout")
    shot(visitor, "07-visitor-ended-by-timeout")


def test_a_preview_taken_by_someone_else_is_no_longer_visible(demo, browser, server):
    blair = log_in(browser, server.base_url, "blair", online=False)
    visitor = start_chat(browser, server.base_url)
    blair.locator("#queue-list .queue-info").click()
    box = pane(blair)
    box.locator("text=Hello, this is Carol").wait_for()
    alex = log_in(browser, server.base_url)  # online: L1 General routes the chat to Alex
    visitor.locator("text=Alex from our support team joined the chat.").wait_for()
    expect(box.locator(".pane-banner")).to_have_text(
        "This chat left your queues: you can no longer follow it."
    )
    expect_read_only(box)
    expect(blair.locator("#queue-list .queue-item")).to_have_count(0)
    expect(pane(alex).locator(".pane-banner")).to_have_text("This chat is active.")
    shot(blair, "08-agent-no-longer-visible")


# --- Alerts and typing -------------------------------------------------------------------------
def test_a_second_chat_counts_in_the_title_until_looked_at(demo, browser, server):
    alex, first = held_chat(browser, server.base_url)
    expect(alex).to_have_title(TITLE)
    second = start_chat(browser, server.base_url, name="Dave")
    second.locator("text=Alex from our support team joined the chat.").wait_for()
    expect(alex).to_have_title(f"(1) {TITLE}")  # a pane is open: the new chat waits its turn
    expect(pane(alex).locator(".pane-title")).to_contain_text("Carol")  # Carol stays on screen
    marked = alex.locator("#chat-list .chat-item.attention")
    expect(marked).to_have_count(1)
    expect(marked).to_contain_text("Dave")
    first.fill("#composer-text", "Are you still there?")
    first.click("#send")
    pane(alex).locator("text=Are you still there?").wait_for()
    second.fill("#composer-text", "Hello?")
    second.click("#send")
    expect(alex.locator("#chat-list .chat-item.attention .badge")).to_have_text("2")
    expect(alex).to_have_title(f"(1) {TITLE}")  # one chat needs the agent, however many lines
    shot(alex, "09-agent-title-count")
    marked.focus()
    alex.keyboard.press("Enter")  # the list works from the keyboard
    expect(pane(alex).locator(".pane-title")).to_contain_text("Dave")
    pane(alex).locator("text=Hello?").wait_for()
    expect(alex).to_have_title(TITLE)
    expect(alex.locator("#chat-list .chat-item.attention")).to_have_count(0)
    expect(alex.locator("#chat-list .badge:visible")).to_have_count(0)


# The tab hidden on demand (headless pages are always visible), and the desktop notifications it
# shows, as the agent would see them pop up.
HIDDEN_TAB = """
let hidden = false;
Object.defineProperty(Document.prototype, "hidden", { get: () => hidden });
Object.defineProperty(Document.prototype, "visibilityState", {
  get: () => (hidden ? "hidden" : "visible"),
});
window.setTabHidden = (value) => {
  hidden = value;
  document.dispatchEvent(new Event("visibilitychange"));
};
window.shownNotifications = [];
const Shown = class extends window.Notification {
  constructor(title, options) {
    super(title, options);
    window.shownNotifications.push({ title, body: options.body });
  }
};
window.Notification = Shown;
"""


def test_a_message_while_the_tab_is_hidden_notifies_and_counts(demo, browser, server):
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=server.base_url)
    context.add_init_script(HIDDEN_TAB)
    alex = context.new_page()
    alex.goto(f"{server.base_url}/console/")
    alex.fill("#id_username", "alex")
    alex.fill("#id_password", "tierline-demo")
    alex.click("button[type=submit]")
    alex.wait_for_selector("#conn[data-state=open]")
    expect(alex.locator("#desktop-alerts")).to_be_hidden()  # allowed already: nothing to ask
    expect(alex.locator("#desktop-alerts-state")).to_have_text(
        "Desktop alerts are on while this tab is hidden."
    )
    alex.select_option("#presence", "online")
    visitor = start_chat(browser, server.base_url)
    pane(alex).locator("text=Alex from our support team joined the chat.").wait_for()
    expect(alex).to_have_title(TITLE)
    alex.evaluate("setTabHidden(true)")  # the agent switched to another tab
    visitor.fill("#composer-text", "Anyone there?")
    visitor.click("#send")
    expect(alex).to_have_title(f"(1) {TITLE}")
    shown = alex.evaluate("shownNotifications")
    assert shown == [{"title": "Carol wrote", "body": "Anyone there?"}]
    alex.evaluate("setTabHidden(false)")  # back: the chat on screen is seen
    expect(alex).to_have_title(TITLE)
    expect(alex.locator("#chat-list .badge:visible")).to_have_count(0)


def test_sound_switch_is_remembered(demo, browser, server):
    alex = log_in(browser, server.base_url, online=False)
    sound = alex.locator("#sound-alerts")
    expect(sound).to_be_checked()  # on by default
    sound.uncheck()
    alex.reload()
    alex.wait_for_selector("#conn[data-state=open]")
    expect(alex.locator("#sound-alerts")).not_to_be_checked()
    expect(alex.locator("#desktop-alerts")).to_be_visible()  # asks only when clicked


def test_typing_shows_both_ways_but_never_for_an_internal_note(demo, browser, server):
    alex, visitor = held_chat(browser, server.base_url)
    box = pane(alex)
    visitor.locator("#composer-text").press_sequentially("My order", delay=20)
    expect(box.locator(".typing")).to_have_text("Carol is typing…")
    shot(alex, "10-agent-sees-typing")
    visitor.locator("#composer-text").press("Enter")  # sent: the line goes
    box.locator("text=My order").wait_for()
    expect(box.locator(".typing")).to_have_text("")

    reply = box.locator("form.composer textarea")
    reply.press_sequentially("Let me", delay=20)
    expect(visitor.locator("#typing")).to_have_text("Alex is typing…")
    shot(visitor, "10-visitor-sees-typing")
    box.locator(".internal").check()  # a note is no business of the visitor's
    expect(visitor.locator("#typing")).to_have_text("")
    reply.fill("")
    reply.press_sequentially("Sounds annoyed", delay=20)
    reply.press("Enter")
    box.locator(".msg-internal").wait_for()
    box.locator(".internal").uncheck()
    reply.press_sequentially("Found it", delay=20)  # a reply again: told at once
    expect(visitor.locator("#typing")).to_have_text("Alex is typing…")
    reply.press("Enter")
    visitor.locator("text=Found it").wait_for()
    expect(visitor.locator("#typing")).to_have_text("")
    expect(visitor.locator("text=Sounds annoyed")).to_have_count(0)


@pytest.fixture
def quick_lapses(demo):
    """Returns: round-robin hunt with a 3 s accept timeout, away after one lapse."""
    from escalation.models import AgentGroup, Stage

    Stage.objects.filter(name="Returns").update(accept_timeout_seconds=3)
    AgentGroup.objects.filter(name="L1 Returns").update(auto_away_after_lapses=1)


def test_an_offer_alerts_and_auto_away_says_why(quick_lapses, browser, server):
    alex = log_in(browser, server.base_url)
    start_chat(browser, server.base_url, topic="Return an item")
    offer = alex.locator("#offer-list .offer-item")
    offer.wait_for()
    expect(alex).to_have_title(f"(1) {TITLE}")
    notice = alex.locator("#presence-notice")
    # The 3 s accept timeout runs out (Celery's countdown task), then the agent is set away.
    lapsed = "You were set away: an offer lapsed unanswered."
    expect(notice).to_have_text(lapsed, timeout=20_000)
    expect(alex.locator("#presence")).to_have_value("away")
    expect(offer).to_have_count(0)
    expect(alex).to_have_title(TITLE)  # the offer is gone, the notice is on screen
    shot(alex, "11-agent-auto-away")
    alex.select_option("#presence", "online")
    expect(notice).to_be_hidden()
