"""A visitor and an agent in two real browsers (Playwright driving Debian's Chromium) against a
real daphne, a real Celery worker, PostgreSQL and Redis. Screenshots go to test-artifacts/."""

import pytest
from playwright.sync_api import expect

from tests.e2e.live import ARTIFACTS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

XSS = "My invoice <img src=x onerror=alert(1)> <script>alert(2)</script> is wrong"
LINK = '<a href="javascript:window.__pwned=1">click</a> javascript:alert(3) \u202eexe.gnp'
AGENT_XSS = '<svg onload="window.__pwned=2"></svg><img src=x onerror="window.__pwned=3">'


def test_visitor_and_agent_chat_in_two_browsers(
    demo, browser, daphne_process, celery_worker_process
):
    base = daphne_process.base_url
    dialogs: list[str] = []

    visitor = browser.new_context().new_page()
    visitor.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    visitor.goto(f"{base}/chat/")
    visitor.click("text=Start chat")  # empty form: errors next to the fields
    assert visitor.locator("#id_name_error").inner_text() == "Please tell us your name."
    assert visitor.locator("#id_topic_error").inner_text() == "Please choose a topic."
    visitor.fill("#id_name", "Carol")
    visitor.select_option("#id_topic", "Billing")
    visitor.fill("#id_message", XSS)
    visitor.click("text=Start chat")
    visitor.wait_for_selector("#conn[data-state=open]")
    queue_box = visitor.locator("#queue-box")
    queue_box.wait_for(state="visible")
    assert queue_box.inner_text() == "You are number 1 in line."
    visitor.screenshot(path=ARTIFACTS / "01-visitor-queued.png", full_page=True)

    agent = browser.new_context().new_page()
    agent.on("dialog", lambda d: d.accept())
    agent.goto(f"{base}/console/")
    agent.fill("#id_username", "alex")
    agent.fill("#id_password", "tierline-demo")
    agent.click("button[type=submit]")
    agent.wait_for_selector("#conn[data-state=open]")
    agent.locator("#queue-list .queue-item").wait_for()  # the live queue shows the waiting chat
    assert agent.locator("#queue-list .queue-item").count() == 1
    agent.select_option("#presence", "online")  # L1 General routes round robin: Alex gets it
    pane = agent.locator(".pane:visible")
    pane.locator("text=Alex from our support team joined the chat.").wait_for()
    assert pane.locator(".msg-visitor .text").first.inner_text() == XSS  # shown as text

    visitor.locator("text=Alex from our support team joined the chat.").wait_for()
    assert queue_box.is_hidden()
    pane.locator("form.composer textarea").fill("Hi Carol, let me look at that invoice.")
    pane.locator("form.composer button[type=submit]").click()
    visitor.locator("text=Hi Carol, let me look at that invoice.").wait_for()
    pane.locator(".internal").check()
    pane.locator("form.composer textarea").fill("Customer sounds annoyed")
    pane.locator("form.composer button[type=submit]").click()
    pane.locator("text=Customer sounds annoyed").wait_for()
    visitor.fill("#composer-text", "Thank you!")
    visitor.click("#send")
    pane.locator("text=Thank you!").wait_for()
    # Live over the socket too, both ways: markup, script links and bidi controls stay inert text.
    visitor.fill("#composer-text", LINK)
    visitor.click("#send")
    pane.locator(".msg-visitor .text").last.wait_for()
    expect(pane.locator(".msg-visitor .text").last).to_have_text(LINK)
    pane.locator(".internal").uncheck()
    pane.locator("form.composer textarea").fill(AGENT_XSS)
    pane.locator("form.composer button[type=submit]").click()
    expect(visitor.locator(".msg-agent .text").last).to_have_text(AGENT_XSS)
    for page in (visitor, agent):
        assert page.locator(".msg a, .msg img, .msg script, .msg svg").count() == 0
        assert page.evaluate("typeof window.__pwned") == "undefined"
    assert visitor.locator("text=Customer sounds annoyed").count() == 0  # internal stays inside
    visitor.screenshot(path=ARTIFACTS / "02-visitor-chatting.png", full_page=True)
    agent.screenshot(path=ARTIFACTS / "03-agent-console.png", full_page=True)

    pane.locator(".end-btn").click()
    visitor.locator("#room[data-status=ended]").wait_for()
    assert visitor.locator("text=The chat has ended. Thank you for contacting us.").count() == 1
    assert visitor.locator("#new-chat").is_visible()
    assert visitor.locator("#composer-text").is_disabled()
    # The demo's L1 General asks how it went: the survey appears as the chat ends.
    survey = visitor.locator("#survey-form")
    expect(survey).to_be_visible()
    visitor.locator("text=How did we do, Carol? Please rate this chat below.").wait_for()
    visitor.screenshot(path=ARTIFACTS / "04-visitor-ended.png", full_page=True)
    assert dialogs == [], "no script from a message ever ran"
    survey.locator("button[type=submit]").click()  # no rating chosen: told so, kept
    visitor.locator("text=Choose a rating from 1 (poor) to 5 (great).").wait_for()
    visitor.locator("#survey-form input[name=rating][value='4']").check()
    visitor.fill("#survey-comment", "Quick and kind")
    visitor.locator("#survey-form button[type=submit]").click()
    visitor.locator("text=Thank you for your feedback.").wait_for()
    expect(visitor.locator("#survey-form")).to_be_hidden()

    # Back in the same browser later: the same chat and its whole history.
    visitor.goto(f"{base}/chat/room/")
    assert visitor.locator(".msg").count() >= 6
    assert visitor.locator("text=Hi Carol, let me look at that invoice.").count() == 1


def log_in(browser, base: str, username: str):
    page = browser.new_context().new_page()
    page.on("dialog", lambda d: d.accept())
    page.goto(f"{base}/console/")
    page.fill("#id_username", username)
    page.fill("#id_password", "tierline-demo")
    page.click("button[type=submit]")
    page.wait_for_selector("#conn[data-state=open]")
    return page


def test_escalate_button_journey(demo, browser, daphne_process, celery_worker_process):
    base = daphne_process.base_url
    alex = log_in(browser, base, "alex")
    alex.select_option("#presence", "online")
    alex.wait_for_selector("#root, #console[data-presence=online]")

    visitor = browser.new_context().new_page()
    visitor.goto(f"{base}/chat/")
    visitor.fill("#id_name", "Carol")
    visitor.select_option("#id_topic", "Billing")
    visitor.fill("#id_message", "I was charged twice")
    visitor.click("text=Start chat")
    visitor.locator("text=Alex from our support team joined the chat.").wait_for()

    pane = alex.locator(".pane:visible")
    pane.locator("text=I was charged twice").wait_for()
    pane.locator(".esc-btn").click()
    dialog = pane.locator(".esc-dialog")
    dialog.locator("text=Billing specialists · Level 2 · 0 online and free").wait_for()
    dialog.locator(".esc-submit").click()  # nothing chosen: told so, nothing sent
    assert dialog.locator(".esc-error").inner_text() == "Choose a target."
    dialog.locator("input[value=billing]").check()
    dialog.locator(".esc-submit").click()  # billing needs a note: the server says so
    dialog.locator("text=A hand-over note is required").wait_for()
    dialog.locator(".esc-reason").select_option("Billing question")
    dialog.locator(".esc-note").fill("Charged twice on 3 March; refund needs L2.")
    dialog.locator(".esc-submit").click()
    pane.locator("text=Handed over to L2 Billing (Level 2).").wait_for()
    # Read-only once handed over: the `hidden` composer and buttons really are hidden.
    for control in ("form.composer", ".end-btn", ".esc-btn"):
        expect(pane.locator(control)).to_be_hidden()
    expect(alex.locator("#chat-list .chat-item")).to_have_count(0)  # the chat left Alex's list

    visitor.locator("text=You are being transferred to the billing team.").wait_for()
    visitor.locator("#queue-box:visible").wait_for()
    # The visitor is told the teams' public names; the desk's internal names stay inside.
    told = visitor.locator("#transcript").inner_text() + visitor.locator("#queue-box").inner_text()
    assert "L1 General" not in told and "L2 Billing" not in told and "Level" not in told, told
    visitor.screenshot(path=ARTIFACTS / "05-visitor-transfer-notice.png", full_page=True)

    sam = log_in(browser, base, "sam")
    sam.select_option("#presence", "online")
    item = sam.locator("#queue-list .queue-item")
    item.wait_for()
    assert "Charged twice on 3 March" in item.inner_text()
    assert "Level 1 → Level 2" in item.inner_text()
    item.locator(".take-btn").click()
    sam_pane = sam.locator(".pane:visible")
    handover = sam_pane.locator(".handover")
    handover.wait_for()
    assert "Handed over from Alex (L1 General, Level 1) to L2 Billing" in handover.inner_text()
    assert "Reason: Billing question" in handover.inner_text()
    sam_pane.locator("text=I was charged twice").wait_for()  # the whole transcript came along
    visitor.locator("text=Sam from the billing team joined the chat.").wait_for()
    sam.screenshot(path=ARTIFACTS / "06-receiving-agent.png", full_page=True)

    # The manager reads the whole conversation on the chat's Transcript tab.
    chat_id = visitor.locator("#room").get_attribute("data-chat")
    morgan = browser.new_context().new_page()
    morgan.goto(f"{base}/reports/chats/{chat_id}/?tab=transcript")
    morgan.fill("#id_username", "morgan")
    morgan.fill("#id_password", "tierline-demo")
    morgan.click("button[type=submit]")
    lines = morgan.locator(".chat-transcript .line")
    lines.last.wait_for()
    texts = lines.all_inner_texts()
    handover = next(i for i, t in enumerate(texts) if "Hand-over" in t)
    assert "Alex left the chat." in texts[handover - 1]
    assert "Charged twice on 3 March" in texts[handover]
    assert "not shown to the visitor" in texts[handover]
    assert "You are being transferred to the billing team." in texts[handover + 1]
    assert "Sam from the billing team joined the chat." in texts[-1]
    expect(morgan.locator(".tab.active")).to_have_text("Transcript")
    expect(morgan.locator("a", has_text="Download CSV")).to_be_visible()
    morgan.screenshot(path=ARTIFACTS / "10-manager-transcript.png", full_page=True)
    morgan.emulate_media(media="print")  # the printed page: no navigation, no buttons
    expect(morgan.locator(".topbar")).to_be_hidden()
    expect(morgan.locator("button[data-print]")).to_be_hidden()
    expect(morgan.locator(".print-only")).to_be_visible()


# A name that tries to reorder what follows it: a right-to-left override, never closed.
RLO_NAME = "Zed \u202eevil"
# Every text node holding the name must sit in an isolate: <bdi> or an element with dir=auto.
UNISOLATED = """marker => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const found = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.data.includes(marker)) continue;
    const isolated = node.parentElement.closest("bdi, [dir=auto]") !== null;
    found.push(isolated ? "isolated" : node.parentElement.outerHTML);
  }
  return found;
}"""


def test_bidi_controls_in_a_name_stay_inside_an_isolate(
    demo, browser, daphne_process, celery_worker_process
):
    base = daphne_process.base_url
    visitor = browser.new_context().new_page()
    visitor.goto(f"{base}/chat/")
    visitor.fill("#id_name", RLO_NAME)
    visitor.select_option("#id_topic", "Billing")
    visitor.fill("#id_message", "Is my name shown safely?")
    visitor.click("text=Start chat")
    visitor.wait_for_selector("#conn[data-state=open]")
    visitor.fill("#composer-text", "A second line, drawn by the page's script")
    visitor.click("#send")
    visitor.locator(".msg-visitor").nth(1).wait_for()
    # At least "Hello, <name>" and both lines' authors: one drawn by the server, one by the script.
    places = visitor.evaluate(UNISOLATED, "Zed")
    assert len(places) >= 3 and set(places) == {"isolated"}, places

    agent = log_in(browser, base, "alex")
    agent.locator("#queue-list .queue-info").click()  # preview: the pane, its tab, the transcript
    agent.locator(".pane:visible .msg-visitor").nth(1).wait_for()
    expect(agent.locator(".pane:visible .pane-title bdi").first).to_have_text(RLO_NAME)
    places = agent.evaluate(UNISOLATED, "Zed")
    # At least the queue, the pane's title and tab, and the two lines' authors.
    assert len(places) >= 5 and set(places) == {"isolated"}, places
    agent.screenshot(path=ARTIFACTS / "09-agent-bidi-name.png", full_page=True)


@pytest.fixture
def saved_replies(demo):
    """Made before the browser starts: Playwright's event loop forbids database calls in the
    test."""
    from escalation.models import AgentGroup, CannedReply

    CannedReply.objects.create(
        shortcut="refund",
        title="Refund on its way",
        text="Hi {visitor}, {agent} here: your refund is on its way.",
    )
    CannedReply.objects.create(
        shortcut="refresh",
        title="Refresh the page",
        text="Please refresh the page.",
        group=AgentGroup.objects.get(name="L1 General"),
    )


def test_a_saved_reply_is_completed_from_its_shortcut(
    saved_replies, browser, daphne_process, celery_worker_process
):
    base = daphne_process.base_url
    alex = log_in(browser, base, "alex")
    alex.select_option("#presence", "online")
    visitor = browser.new_context().new_page()
    visitor.goto(f"{base}/chat/")
    visitor.fill("#id_name", "Carol")
    visitor.select_option("#id_topic", "Billing")
    visitor.fill("#id_message", "Where is my refund?")
    visitor.click("text=Start chat")
    visitor.locator("text=Alex from our support team joined the chat.").wait_for()

    pane = alex.locator(".pane:visible")
    box = pane.locator("form.composer textarea")
    picker = pane.locator(".reply-picker")
    options = picker.locator("li[role=option]")
    box.press_sequentially("Sure. #re")
    expect(options).to_have_count(2)  # #refresh (Alex's group's) and #refund (everyone's)
    expect(box).to_have_attribute("aria-expanded", "true")
    expect(options.nth(0)).to_have_attribute("aria-selected", "true")
    box.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    alex.screenshot(path=ARTIFACTS / "11-saved-reply-picker.png", full_page=True)
    with alex.expect_response(lambda r: r.url.endswith("/used/") and r.status == 204):
        box.press("Enter")  # picks the reply; it does not send
    expect(picker).to_be_hidden()
    expect(box).to_have_value("Sure. Hi Carol, Alex here: your refund is on its way.")
    box.press("Enter")  # now it sends
    visitor.locator("text=Sure. Hi Carol, Alex here: your refund is on its way.").wait_for()

    box.press_sequentially("#re")
    expect(options).to_have_count(2)
    box.press("Home")  # the caret left the shortcut: the list closes...
    expect(picker).to_be_hidden()
    box.press("End")  # ...and comes back with it
    expect(options).to_have_count(2)
    box.press("Escape")  # closes the list, keeps what was typed
    expect(picker).to_be_hidden()
    expect(box).to_have_value("#re")
    box.press_sequentially("fr")
    expect(options).to_have_count(1)
    with alex.expect_response(lambda r: r.url.endswith("/used/") and r.status == 204):
        options.first.click()
    expect(box).to_have_value("Please refresh the page.")
    box.fill("")
    box.press_sequentially("#nothing")
    expect(picker).to_be_hidden()  # no reply matches: no list

    alex.goto(f"{base}/console/replies/")
    shared = alex.locator("table.replies").last
    expect(shared.locator("tr", has_text="#refund")).to_contain_text("1 time")
    expect(shared.locator("tr", has_text="#refresh")).to_contain_text("1 time")
