"""Tags at the end of a chat, in Chromium against real daphne and Celery: the stage asks for a
tag, End is refused with the reason until the agent picks one, and the tag stays on the ended
chat's pane."""

import pytest
from playwright.sync_api import expect

from escalation.models import Stage, Tag
from tests.e2e.live import ARTIFACTS, off_thread
from tests.e2e.test_browser import log_in
from tests.factories import start_chat

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_a_tag_is_required_at_the_end(demo, browser, daphne_process, celery_worker_process):
    def setup() -> None:
        Stage.objects.filter(name="L1 General").update(requires_tag_at_end=True)
        Tag.objects.exclude(name__in=["Refund", "Bug report"]).update(is_active=False)

    off_thread(setup)
    alex = log_in(browser, daphne_process.base_url, "alex")
    alex.select_option("#presence", "online")
    off_thread(lambda: start_chat(first_message="I was charged twice"))
    pane = alex.locator(".pane:visible")
    pane.locator("text=I was charged twice").wait_for()
    tags = pane.locator(".chat-tags")
    expect(tags.locator(".tag-hint")).to_have_text("Add a tag before you end this chat.")

    pane.locator(".end-btn").click()  # confirmed by log_in's dialog handler
    expect(pane.locator("p.reply-error")).to_have_text(
        "Add a tag (what the chat was about) before you end it."
    )
    expect(pane).to_have_attribute("data-state", "held")

    tags.locator(".tag-add").select_option(label="Refund")
    expect(tags.locator(".tag")).to_have_text(["Refund×"])
    expect(tags.locator(".tag-hint")).to_have_text("")
    expect(pane.locator("p.reply-error")).to_have_text("")
    alex.screenshot(path=ARTIFACTS / "tags-01-tagged.png", full_page=True)
    pane.locator(".end-btn").click()
    expect(pane.locator(".pane-banner")).to_contain_text("ended")
    # Ended: the tag stays readable, no longer editable.
    expect(tags.locator(".tag")).to_have_count(1)
    expect(tags.locator(".tag-remove")).to_be_hidden()
    expect(tags.locator(".tag-add")).to_be_hidden()
    alex.screenshot(path=ARTIFACTS / "tags-02-ended.png", full_page=True)
