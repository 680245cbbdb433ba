"""Pre-chat questions and the agent's Visitor panel in real browsers (Playwright driving
Debian's Chromium) against a real daphne, a real Celery worker, PostgreSQL and Redis: a visitor
answers the Support pipeline's questions (one wrong first, told so, what was typed kept), and the
agent who takes the chat sees the answers, the page, the browser and system, the visitor's local
time and a link to their earlier chat. Screenshots go to test-artifacts/."""

import re
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from escalation import services
from escalation.models import Agent, Pipeline
from tests.e2e.live import ARTIFACTS
from tests.factories import start_chat

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

TITLE = "Pricing <b>plans</b>"


@pytest.fixture
def ids(demo) -> dict[str, int]:
    """Carol's earlier chat, which Alex took and resolved (so he may open it), and the demo's
    pipelines; read before the browser starts (Playwright runs an event loop in this thread,
    where Django refuses ORM calls)."""
    alex = Agent.objects.get(user__username="alex")
    services.set_presence(agent=alex, presence=Agent.Presence.ONLINE)
    chat = start_chat(topic_name="Technical problem", first_message="Earlier question")
    chat.refresh_from_db()
    assert chat.route.agent == alex
    services.end_chat_by_agent(chat_id=chat.pk, agent=alex)
    services.set_presence(agent=alex, presence=Agent.Presence.OFFLINE)
    return {
        "earlier": chat.pk,
        "support": Pipeline.objects.get(name="Support").pk,
        "sales": Pipeline.objects.get(name="Sales").pk,
    }


def test_visitor_answers_pre_chat_questions_and_the_agent_sees_them(
    ids, browser, daphne_process, celery_worker_process
):
    base = daphne_process.base_url
    earlier, support, sales = ids["earlier"], ids["support"], ids["sales"]

    visitor = browser.new_context(timezone_id="Asia/Tokyo").new_page()
    # A site's "chat with us" link (or the widget) may say which page the visitor was on.
    came_from = urlencode(
        {
            "title": TITLE,
            "referrer": "https://search.example/",
            "page": "https://shop.example/pricing",
        }
    )
    visitor.goto(f"{base}/chat/?{came_from}")
    # Before a topic is chosen no pipeline's questions show; choosing one shows its own.
    expect(visitor.locator(f"fieldset[data-pipeline='{support}']")).to_be_hidden()
    visitor.select_option("#id_topic", "Billing")
    expect(visitor.locator(f"fieldset[data-pipeline='{support}']")).to_be_visible()
    expect(visitor.locator(f"fieldset[data-pipeline='{sales}']")).to_be_hidden()
    visitor.select_option("#id_topic", "Buying")
    expect(visitor.locator(f"#id_p{sales}-company")).to_be_visible()
    expect(visitor.locator(f"fieldset[data-pipeline='{support}']")).to_be_hidden()
    visitor.select_option("#id_topic", "Billing")

    visitor.fill("#id_name", "Carol")
    visitor.fill("#id_email", "carol@example.com")
    visitor.fill(f"#id_p{support}-order-number", "12345")
    visitor.select_option(f"#id_p{support}-product", "Mobile app")
    visitor.fill("#id_message", "My app does not sync")
    visitor.click("text=Start chat")
    error = visitor.locator(f"#id_p{support}-order-number_error")
    expect(error).to_have_text("An order number looks like AB-123456.")
    order = visitor.locator(f"#id_p{support}-order-number")
    expect(order).to_have_attribute("aria-invalid", "true")
    expect(order).to_have_attribute("aria-describedby", re.compile("order-number_error"))
    expect(order).to_have_value("12345")  # what was typed is kept
    expect(visitor.locator(f"#id_p{support}-product")).to_have_value("Mobile app")
    expect(visitor.locator("#id_message")).to_have_value("My app does not sync")
    expect(visitor.locator(f"fieldset[data-pipeline='{sales}']")).to_be_hidden()
    visitor.screenshot(path=ARTIFACTS / "prechat-01-visitor-error.png", full_page=True)

    order.fill("AB-123456")
    visitor.click("text=Start chat")
    visitor.wait_for_selector("#conn[data-state=open]")
    visitor.locator("#queue-box").wait_for(state="visible")

    agent = browser.new_context().new_page()
    agent.goto(f"{base}/console/")
    agent.fill("#id_username", "alex")
    agent.fill("#id_password", "tierline-demo")
    agent.click("button[type=submit]")
    agent.wait_for_selector("#conn[data-state=open]")
    agent.select_option("#presence", "online")  # round robin: Alex gets the waiting chat
    pane = agent.locator(".pane:visible")
    panel = pane.locator(".visitor-panel")
    expect(panel).to_be_visible()
    facts = panel.locator(".visitor-facts")
    expect(facts).to_contain_text("Order number")
    text = facts.inner_text()
    for shown in (
        "Carol",
        "carol@example.com",
        "Billing",
        "AB-123456",
        "Mobile app",
        TITLE,  # markup in the page title stays text
        "https://search.example/",
        "https://shop.example/pricing",  # not the start page reloaded after its error
        "on Linux",
        "(Asia/Tokyo)",
    ):
        assert shown in text, (shown, text)
    assert panel.locator(".visitor-facts b").count() == 0
    link = panel.locator(".visitor-previous a")
    expect(link).to_have_count(1)
    expect(link).to_have_text(f"Chat {earlier}")
    expect(link).to_have_attribute("href", f"/reports/chats/{earlier}/")
    agent.screenshot(path=ARTIFACTS / "prechat-02-agent-visitor-panel.png", full_page=True)

    report = agent.context.new_page()
    report.goto(f"{base}/reports/chats/{earlier}/")
    expect(report.locator("h1")).to_contain_text(f"Chat {earlier} with Carol")
