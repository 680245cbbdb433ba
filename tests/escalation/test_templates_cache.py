"""The message templates are read once and kept (a queue publication renders one per waiting
visitor); an admin's change is seen at once."""

import pytest

from escalation import templates
from escalation.models import MessageTemplate
from escalation.selectors import render_template


@pytest.fixture
def kept(settings):
    settings.TEMPLATE_CACHE_SECONDS = 60
    templates.forget()
    yield
    templates.forget()


def test_texts_are_read_once_and_kept(l1_setup, kept, django_assert_num_queries):
    with django_assert_num_queries(1):
        first = render_template(event="position", stage=l1_setup.l1, position="3", wait="soon")
    with django_assert_num_queries(0):
        for _ in range(50):
            assert (
                render_template(event="position", stage=l1_setup.l1, position="3", wait="soon")
                == first
            )


def test_a_change_is_seen_at_once_with_the_stages_override_first(l1_setup, kept):
    default = MessageTemplate.objects.get(event="position", pipeline=None, stage=None)
    assert render_template(event="position", stage=l1_setup.l1, position="2", wait="soon")
    default.text = "Place {position}."
    default.save()
    assert render_template(event="position", stage=l1_setup.l2, position="2") == "Place 2."
    MessageTemplate.objects.create(
        event="position", pipeline=l1_setup.pipeline, text="Pipeline {position}."
    )
    assert render_template(event="position", stage=l1_setup.l2, position="2") == "Pipeline 2."
    override = MessageTemplate.objects.create(
        event="position", stage=l1_setup.l1, text="Stage {position}."
    )
    assert render_template(event="position", stage=l1_setup.l1, position="2") == "Stage 2."
    assert render_template(event="position", stage=l1_setup.l2, position="2") == "Pipeline 2."
    override.delete()
    assert render_template(event="position", stage=l1_setup.l1, position="2") == "Pipeline 2."


def test_a_change_saved_while_the_texts_are_being_read_is_not_lost(l1_setup, kept, monkeypatch):
    """Another thread saves a text between this read's query and its keeping the rows: the rows
    read before the change are used once, not kept for TEMPLATE_CACHE_SECONDS."""
    default = MessageTemplate.objects.get(event="position", pipeline=None, stage=None)
    real_values_list = MessageTemplate.objects.values_list

    def read_then_change(*fields, **kwargs):
        rows = list(real_values_list(*fields, **kwargs))  # the read sees the old text
        default.text = "New {position}."
        default.save()  # ... and the change lands before the rows are kept
        return rows

    monkeypatch.setattr(MessageTemplate.objects, "values_list", read_then_change)
    old = render_template(event="position", stage=l1_setup.l1, position="2", wait="soon")
    monkeypatch.undo()
    assert old != "New 2."
    assert render_template(event="position", stage=l1_setup.l1, position="2") == "New 2."


def test_a_name_with_bidi_controls_cannot_reorder_the_notice_around_it():
    from escalation.messages import render_text

    text = render_text("Thanks, {visitor}. You are in the queue.", {"visitor": "Zed \u202eevil"})
    assert text == "Thanks, \u2068Zed \u202eevil\u2069. You are in the queue."
    arabic = render_text("{agent} joined.", {"agent": "\u0633\u0627\u0645"})
    assert arabic == "\u2068\u0633\u0627\u0645\u2069 joined."
    assert render_text("{agent} joined.", {"agent": "Alex"}) == "Alex joined."  # unchanged
