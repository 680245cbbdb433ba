"""Files both ways in two real browsers against a real daphne and Celery worker: the visitor
sends an image with the picker (after its cookies are gone: the token header is the
credential), the agent drops a PDF on the chat pane; each side sees the other's file, images as
previews; a forbidden file is refused with a clear message. Screenshots go to test-artifacts/."""

import base64

import pytest
from playwright.sync_api import expect

from escalation.models import Pipeline, Site
from tests.e2e import test_widget_browser as widget_tests
from tests.e2e.live import ARTIFACTS, off_thread
from tests.e2e.test_browser import log_in
from tests.e2e.test_widget_browser import PAGE, widget_frame
from tests.factories import PDF_BYTES, png_bytes

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PNG = png_bytes(160, 90, (40, 160, 90))
company_site = widget_tests.company_site  # a static company website on another origin

DROP = """([selector, name, type, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  const target = document.querySelector(selector);
  for (const kind of ["dragenter", "dragover", "drop"]) {
    const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
    target.dispatchEvent(new DragEvent(kind, init));
  }
}"""


LOADED = "img => img.complete && img.naturalWidth > 0"


def test_files_both_ways_in_two_browsers(demo, browser, daphne_process, celery_worker_process):
    base = daphne_process.base_url
    alex = log_in(browser, base, "alex")
    alex.select_option("#presence", "online")

    context = browser.new_context()
    visitor = context.new_page()
    visitor.goto(f"{base}/chat/")
    visitor.fill("#id_name", "Carol")
    visitor.select_option("#id_topic", "Billing")
    visitor.fill("#id_message", "The app shows an error")
    visitor.click("text=Start chat")
    visitor.locator("text=Alex from our support team joined the chat.").wait_for()
    visitor.wait_for_selector("#conn[data-state=open]")  # the page's script is running
    # From here on the page has no cookie at all, as in a cross-site frame.
    cookies = context.cookies()
    context.clear_cookies()

    expect(visitor.get_by_role("button", name="Attach file")).to_be_visible()
    visitor.set_input_files(
        "#attach-file", files=[{"name": "screenshot.png", "mimeType": "image/png", "buffer": PNG}]
    )
    mine = visitor.locator(".msg-visitor .attachment-preview[alt='screenshot.png']")
    mine.wait_for()
    expect(visitor.locator("#composer-error")).to_have_text("")
    visitor.wait_for_function(LOADED, arg=mine.element_handle())

    pane = alex.locator(".pane:visible")
    theirs = pane.locator(".msg-visitor .attachment-preview[alt='screenshot.png']")
    theirs.wait_for()
    alex.wait_for_function(LOADED, arg=theirs.element_handle())
    expect(pane.locator(".msg-visitor .attachment-size")).to_have_text(f"{len(PNG)} bytes")

    # The agent drags a PDF onto the transcript of the chat's pane.
    alex.evaluate(
        DROP,
        [
            ".pane .transcript",
            "refund.pdf",
            "application/pdf",
            base64.b64encode(PDF_BYTES).decode(),
        ],
    )
    pdf = visitor.locator(".msg-agent .attachment-link", has_text="refund.pdf")
    pdf.wait_for()
    assert pdf.get_attribute("download") == ""
    assert visitor.locator(".msg-agent .attachment-preview").count() == 0  # not an image
    download = visitor.request.get(base + pdf.get_attribute("href"))
    assert download.status == 200 and download.body() == PDF_BYTES
    assert download.headers["content-disposition"].startswith("attachment")
    pane.locator(".msg-agent .attachment-link", has_text="refund.pdf").wait_for()

    # A forbidden file and a disguised one: refused, with the reason, and nothing is shown.
    visitor.set_input_files(
        "#attach-file",
        files=[{"name": "setup.exe", "mimeType": "application/octet-stream", "buffer": b"MZ\x90"}],
    )
    expect(visitor.locator("#composer-error")).to_have_text(
        "Files of this type cannot be sent. You can send PNG, JPEG, GIF, WebP, PDF, text and "
        "CSV files."
    )
    visitor.set_input_files(
        "#attach-file", files=[{"name": "cat.png", "mimeType": "image/png", "buffer": PDF_BYTES}]
    )
    expect(visitor.locator("#composer-error")).to_have_text(
        "The file's content is not PNG, as its name says."
    )
    visitor.screenshot(path=ARTIFACTS / "attach-01-visitor.png", full_page=True)
    alex.screenshot(path=ARTIFACTS / "attach-02-agent.png", full_page=True)
    assert visitor.locator(".attachment").count() == 2
    assert pane.locator(".attachment").count() == 2

    # After a reload both sides show both files again: the room page renders them with fresh
    # signed links (its cookie is back for the page itself), the console replays them.
    context.add_cookies(cookies)
    visitor.reload()
    again = visitor.locator(".msg-visitor .attachment-preview[alt='screenshot.png']")
    again.wait_for()
    visitor.wait_for_function(LOADED, arg=again.element_handle())
    expect(visitor.locator(".msg-agent .attachment-link", has_text="refund.pdf")).to_be_visible()
    alex.reload()
    alex.wait_for_selector("#conn[data-state=open]")
    alex.locator("#chat-list .chat-item").first.click()
    replayed = alex.locator(".pane:visible .attachment-preview[alt='screenshot.png']")
    replayed.wait_for()
    alex.wait_for_function(LOADED, arg=replayed.element_handle())
    alex.screenshot(path=ARTIFACTS / "attach-03-agent-replayed.png", full_page=True)


def test_a_file_from_the_widget_in_a_cross_site_frame(
    demo, browser, daphne_process, celery_worker_process, company_site
):
    """The widget's frame has no cookie at all: the token header sends the file and the signed
    link shows it."""
    base = daphne_process.base_url
    port, root = company_site
    shop = f"http://localhost:{port}"
    site = off_thread(
        lambda: Site.objects.create(
            name="Shop", allowed_origins=shop, pipeline=Pipeline.objects.get(name="Support")
        )
    )
    (root / "index.html").write_text(
        PAGE.format(title="Shop home", next="index.html", base=base, key=site.key)
    )
    alex = log_in(browser, base, "alex")
    alex.select_option("#presence", "online")
    context = browser.new_context()
    visitor = context.new_page()
    visitor.goto(f"{shop}/index.html")
    visitor.locator("#tierline-widget .launcher").click()
    frame = widget_frame(visitor)
    frame.locator("#id_name").fill("Dana")
    frame.locator("#id_topic").select_option("Billing")
    frame.locator("#id_message").fill("Here is the error")
    frame.locator("#start-form button[type=submit]").click()
    expect(frame.locator("#conn")).to_have_attribute("data-state", "open")

    frame.locator("#attach-file").set_input_files(
        files=[{"name": "error.png", "mimeType": "image/png", "buffer": PNG}]
    )
    preview = frame.locator(".msg-visitor .attachment-preview[alt='error.png']")
    preview.wait_for()
    expect(preview).to_have_js_property("complete", True)
    assert preview.evaluate("img => img.naturalWidth") == 160
    # The preview made its line taller after it came in: the transcript still shows its end.
    below = frame.locator("#transcript").evaluate(
        """list => new Promise((done) => requestAnimationFrame(
            () => done(list.scrollHeight - list.scrollTop - list.clientHeight)))"""
    )
    assert below < 2
    alex.locator(".pane:visible .attachment-preview[alt='error.png']").wait_for()
    visitor.screenshot(path=ARTIFACTS / "attach-04-widget.png", full_page=True)
    assert [c for c in context.cookies() if c["domain"] == "127.0.0.1"] == []
