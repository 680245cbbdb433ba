"""The chat widget on a company's own website, in Chromium: a plain HTML site on another origin
(`localhost`, another port: another site than Tierline's `127.0.0.1`, so the frame is
cross-site) embeds the snippet; the visitor chats, moves to another page of the site, opens a
second tab, gets an unread badge, rates the chat; and never holds a Tierline cookie. A page of an
origin the site does not allow can neither frame the chat nor open its socket."""

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from chat.models import ChatSession
from chat.selectors import make_visitor_token
from escalation.models import Pipeline, Site, SurveyAnswer
from tests.e2e.live import ARTIFACTS, free_port, off_thread
from tests.factories import png_bytes, start_chat

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>{title}</title></head>
<body><h1>{title}</h1><p><a id="next" href="{next}">{next}</a></p>
<script src="{base}/widget.js" data-site="{key}" async></script></body></html>"""

FOREIGN = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Foreign</title></head><body>
<iframe id="direct" title="direct" src="{base}/chat/w/{key}/"></iframe>
<script src="{base}/widget.js" data-site="{key}" async></script></body></html>"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def company_site(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A static website of its own (another port), like a company's."""
    port = free_port()
    handler = lambda *a, **kw: QuietHandler(*a, directory=str(tmp_path), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield port, tmp_path
    server.shutdown()
    server.server_close()


def widget_frame(page: Page):
    return page.frame_locator("#tierline-widget iframe")


def test_the_widget_on_a_company_site(
    demo, browser, daphne_process, celery_worker_process, company_site
):
    base = daphne_process.base_url
    port, root = company_site
    shop = f"http://localhost:{port}"
    site = off_thread(
        lambda: Site.objects.create(
            name="Shop", allowed_origins=shop, pipeline=Pipeline.objects.get(name="Support")
        )
    )
    for name, title, following in [
        ("index", "Shop home", "pricing"),
        ("pricing", "Pricing", "index"),
    ]:
        (root / f"{name}.html").write_text(
            PAGE.format(title=title, next=f"{following}.html", base=base, key=site.key)
        )
    context = browser.new_context()
    visitor = context.new_page()
    errors: list[str] = []
    visitor.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    visitor.goto(f"{shop}/index.html")
    launcher = visitor.locator("#tierline-widget .launcher")
    expect(launcher).to_have_text("Chat with us")

    # A malformed identify() is refused with a clear error and stores nothing.
    refused = visitor.evaluate(
        """() => { try { Tierline.identify({name: 5}); return "stored"; }
                   catch (e) { return `${e.name}: ${e.message}`; } }"""
    )
    assert refused == "TypeError: Tierline.identify: name must be text of 1 to 100 characters."
    nested = visitor.evaluate(
        "() => { try { Tierline.set({order: {id: 1}}); } catch (e) { return e.message; } }"
    )
    assert nested == 'Tierline.set: "order" must be text, a number, true/false or null.'
    assert visitor.evaluate(f"() => localStorage.getItem('tierline:{site.key}')") is None
    visitor.evaluate(
        """() => {
            window.events = [];
            Tierline.on("chat:started", (d) => events.push(["started", d.chat]));
            Tierline.on("chat:ended", (d) => events.push(["ended", d.status]));
            Tierline.identify({name: "Dana", email: "dana@example.com", plan: "pro"});
            Tierline.set({order: "1234"});
        }"""
    )

    launcher.click()
    frame = widget_frame(visitor)
    expect(frame.locator("#id_name")).to_have_value("Dana")
    expect(frame.locator("#id_email")).to_have_value("dana@example.com")
    frame.locator("#id_topic").select_option("Billing")
    frame.locator("#id_message").fill("My invoice is wrong")
    frame.locator("#start-form button[type=submit]").click()
    expect(frame.locator("#conn")).to_have_attribute("data-state", "open")
    visitor.wait_for_function("() => window.events.length === 1")
    chat_id = visitor.evaluate("() => window.events[0][1]")
    chat = off_thread(lambda: ChatSession.objects.select_related("route").get(pk=chat_id))
    assert chat.route.site_id == site.pk
    assert chat.visitor_context["attributes"] == {"plan": "pro", "order": "1234"}
    assert chat.visitor_context["page"] == f"{shop}/index.html"
    assert chat.visitor_context["page_title"] == "Shop home"

    agent = context.browser.new_context().new_page()
    agent.on("dialog", lambda d: d.accept())  # "End this chat?"
    agent.goto(f"{base}/console/")
    agent.fill("#id_username", "alex")
    agent.fill("#id_password", "tierline-demo")
    agent.click("button[type=submit]")
    agent.wait_for_selector("#conn[data-state=open]")
    agent.select_option("#presence", "online")
    pane = agent.locator(".pane:visible")
    pane.locator("text=My invoice is wrong").wait_for()
    pane.locator("form.composer textarea").fill("Hi Dana, let me check.")
    pane.locator("form.composer button[type=submit]").click()
    frame.locator("text=Hi Dana, let me check.").wait_for()
    visitor.screenshot(path=ARTIFACTS / "20-widget-chatting.png")

    # Set after the start: straight onto the chat (the "attributes" event says it is stored).
    stored = visitor.evaluate(
        """() => new Promise((resolve) => {
            Tierline.on("attributes", resolve);
            Tierline.set({cart: 3});
        })"""
    )
    assert stored == {"attributes": {"plan": "pro", "order": "1234", "cart": 3}}
    context_now = off_thread(lambda: ChatSession.objects.get(pk=chat_id).visitor_context)
    assert context_now["attributes"] == stored["attributes"]

    # Another page of the site: the panel opens again on the same chat, history and all.
    visitor.click("#next")
    visitor.wait_for_url(f"{shop}/pricing.html")
    visitor.evaluate(
        """() => {
            window.events = [];
            Tierline.on("chat:ended", (d) => events.push(["ended", d.status]));
        }"""
    )
    frame = widget_frame(visitor)
    frame.locator("text=Hi Dana, let me check.").wait_for()
    expect(frame.locator("#conn")).to_have_attribute("data-state", "open")

    # Panel closed: a new answer shows as an unread badge; opening clears it.
    visitor.locator("#tierline-widget .close").click()
    pane.locator("form.composer textarea").fill("Found it: a double charge.")
    pane.locator("form.composer button[type=submit]").click()
    expect(visitor.locator("#tierline-widget .badge")).to_have_text("1")
    visitor.screenshot(path=ARTIFACTS / "21-widget-unread.png")
    launcher.click()
    expect(visitor.locator("#tierline-widget .badge")).to_be_hidden()
    frame.locator("text=Found it: a double charge.").wait_for()

    # A second tab of the site shows the same chat.
    second = context.new_page()
    second.goto(f"{shop}/index.html")
    second.locator("#tierline-widget .launcher").click()
    widget_frame(second).locator("text=Found it: a double charge.").wait_for()
    second.close()

    # A file from the panel (the chat token in a header, no cookie): the agent sees it.
    frame.locator("#attach-file").set_input_files(
        files=[{"name": "invoice.png", "mimeType": "image/png", "buffer": png_bytes()}]
    )
    frame.locator(".msg-visitor .attachment-preview[alt='invoice.png']").wait_for()
    pane.locator(".attachment-preview[alt='invoice.png']").wait_for()

    # The agent ends; the visitor rates the chat in the panel.
    pane.locator(".end-btn").click()
    survey = frame.locator("#survey-form")
    expect(survey).to_be_visible()
    visitor.wait_for_function("() => window.events.some((e) => e[0] === 'ended')")
    survey.locator("input[name=rating][value='5']").check()
    survey.locator("button[type=submit]").click()
    frame.locator("text=Thank you for your feedback.").wait_for()
    assert off_thread(lambda: SurveyAnswer.objects.get(chat_id=chat_id).rating) == 5
    visitor.screenshot(path=ARTIFACTS / "22-widget-rated.png")

    # Start afresh: the widget forgets the old chat.
    frame.locator("#new-chat button").click()
    frame.locator("#start-form").wait_for()
    visitor.wait_for_function(
        f"() => JSON.parse(localStorage.getItem('tierline:{site.key}')).token === ''"
    )
    # Tierline never needed a cookie in this browser (third-party cookies may be blocked).
    assert [c for c in context.cookies() if c["domain"] in ("127.0.0.1", "localhost")] == []
    assert errors == []


def test_an_origin_the_site_does_not_allow_gets_no_chat(
    demo, browser, daphne_process, company_site
):
    base = daphne_process.base_url
    port, root = company_site

    def shop_and_chat() -> tuple[Site, ChatSession, str]:
        site = Site.objects.create(name="Shop", allowed_origins="https://shop.example")
        chat = start_chat(topic_name="Billing", site=site)
        return site, chat, make_visitor_token(chat)

    site, chat, token = off_thread(shop_and_chat)
    (root / "foreign.html").write_text(FOREIGN.format(base=base, key=site.key))

    page = browser.new_context().new_page()
    # The launcher never shows; the page's console says why.
    said = f"Tierline widget: This site key is not set up for http://localhost:{port}."
    with page.expect_console_message(lambda m: m.text == said):
        page.goto(f"http://localhost:{port}/foreign.html")
    assert page.locator("#tierline-widget").count() == 0
    # Framed directly, the browser refuses to show the page (frame-ancestors).
    direct = page.locator("#direct").content_frame
    expect(direct.locator("body")).to_be_attached()
    assert direct.locator("#widget-boot, #start-form").count() == 0
    # Nor may it open the chat's socket, even with the chat's token.
    outcome = page.evaluate(
        """(url) => new Promise((resolve) => {
            const ws = new WebSocket(url);
            ws.onopen = () => resolve("open");
            ws.onclose = () => resolve("refused");
        })""",
        f"{base.replace('http', 'ws')}/ws/chat/{chat.pk}/?token={token}",
    )
    assert outcome == "refused"
