"""Pre-chat questions: the form field each kind builds (valid and invalid answers, required,
pattern, a choice not in the list), the start form that checks only the chosen topic's pipeline,
the start page (kept values, errors tied to their fields, one topic without a select) and the
answers kept by start_chat."""

import re
from datetime import date
from typing import Any

import pytest
from django.test import Client

from chat.forms import PreChatForm, StartChatForm, answer_value, prechat_form_field
from chat.models import ChatSession
from escalation.models import Pipeline, PreChatField
from escalation.selectors import start_form_pipelines
from tests.factories import PipelineFactory, StageFactory, TopicFactory, start_chat

pytestmark = pytest.mark.django_db

Kind = PreChatField.Kind


def question(**fields: Any) -> PreChatField:
    return PreChatField(**{"label": "Answer", "key": "answer", **fields})


def clean(q: PreChatField, value: Any) -> Any:
    return prechat_form_field(q).clean(value)


def refusal(q: PreChatField, value: Any) -> str:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the message is what is checked
        clean(q, value)
    return " ".join(caught.value.messages)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kind", "given", "kept"),
    [
        (Kind.TEXT, "  Acme Ltd ", "Acme Ltd"),
        (Kind.LONG_TEXT, "Line one\nLine two", "Line one\nLine two"),
        (Kind.EMAIL, "ops@example.com", "ops@example.com"),
        (Kind.NUMBER, "12", 12),
        (Kind.NUMBER, "3.5", 3.5),
        (Kind.CHECKBOX, "on", True),
        (Kind.DATE, "2026-03-31", "2026-03-31"),
        (Kind.ORDER_NUMBER, "AB-123456", "AB-123456"),
        (Kind.CHOICE, "Mobile app", "Mobile app"),
    ],
)
def test_each_kind_keeps_a_valid_answer_as_json(kind: str, given: str, kept: Any) -> None:
    q = question(kind=kind, pattern=r"[A-Z]{2}-\d{6}" if kind == Kind.ORDER_NUMBER else "")
    q.choices = "Tierline Cloud\nMobile app"
    assert answer_value(clean(q, given)) == kept


@pytest.mark.parametrize(
    ("kind", "given", "message"),
    [
        (Kind.EMAIL, "not-an-address", "Enter an e-mail address, e.g. name@example.com."),
        (Kind.NUMBER, "twelve", "Enter a number, e.g. 12 or 3.5."),
        (Kind.DATE, "31/31/2026", "Enter a date as YYYY-MM-DD, e.g. 2026-03-31."),
        (Kind.CHOICE, "Something else", "Choose one of the listed options."),
        (Kind.TEXT, "x" * 201, "At most 200 characters, please."),
        (Kind.LONG_TEXT, "x" * 2001, "At most 2000 characters, please."),
    ],
)
def test_each_kind_refuses_a_bad_answer_clearly(kind: str, given: str, message: str) -> None:
    q = question(kind=kind, choices="Tierline Cloud\nMobile app")
    assert refusal(q, given) == message


def test_a_required_question_asks_for_its_answer_by_name() -> None:
    for kind in (Kind.TEXT, Kind.EMAIL, Kind.NUMBER, Kind.CHOICE, Kind.DATE):
        q = question(kind=kind, label="Company", is_required=True, choices="A")
        assert refusal(q, "") == "Please fill in “Company”."
    ticked = question(kind=Kind.CHECKBOX, label="I agree", is_required=True)
    assert refusal(ticked, "") == "Please tick “I agree” to go on."


def test_an_optional_question_may_be_left_empty() -> None:
    assert clean(question(kind=Kind.NUMBER), "") is None
    assert clean(question(kind=Kind.CHECKBOX), "") is False
    assert clean(question(kind=Kind.TEXT, pattern=r"\d+"), "") == ""


def test_a_pattern_must_match_the_whole_answer_with_its_own_message() -> None:
    q = question(kind=Kind.ORDER_NUMBER, pattern=r"[A-Z]{2}-\d{6}", pattern_error="Like AB-123456")
    assert refusal(q, "xAB-123456") == "Like AB-123456"
    assert refusal(q, "AB-1234567") == "Like AB-123456"
    default = question(kind=Kind.TEXT, pattern=r"\d+")
    assert refusal(default, "12a") == "This is not in the expected format."


# --- The start form -----------------------------------------------------------------------------


@pytest.fixture
def two_pipelines(db: None) -> tuple[Pipeline, Pipeline]:
    """Sales (topic Buying; asks a company, optional) and Support (topics Billing and Technical;
    requires the e-mail; an order number with a pattern, a required product)."""
    pipelines = []
    for name, topics in (("Sales", ["Buying"]), ("Support", ["Billing", "Technical"])):
        pipeline = PipelineFactory(name=name)
        pipeline.entry_stage = StageFactory(pipeline=pipeline, name=f"{name} L1")
        pipeline.save()
        for position, topic in enumerate(topics):
            TopicFactory(name=topic, pipeline=pipeline, position=position)
        pipelines.append(pipeline)
    sales, support = pipelines
    PreChatField.objects.create(pipeline=sales, key="company", label="Company")
    support.requires_email = True
    support.save()
    PreChatField.objects.create(
        pipeline=support,
        key="order",
        label="Order number",
        kind=Kind.ORDER_NUMBER,
        pattern=r"[A-Z]{2}-\d{6}",
        pattern_error="An order number looks like AB-123456.",
        position=1,
    )
    PreChatField.objects.create(
        pipeline=support,
        key="product",
        label="Product",
        kind=Kind.CHOICE,
        choices="Cloud\nSelf-hosted",
        is_required=True,
        position=2,
    )
    return sales, support


def start_data(support: Pipeline, **overrides: str) -> dict[str, str]:
    data = {
        "name": "Carol",
        "email": "carol@example.com",
        "topic": "Billing",
        "message": "Help",
        f"p{support.pk}-order": "AB-123456",
        f"p{support.pk}-product": "Cloud",
    }
    data.update(overrides)
    return data


def test_only_the_chosen_pipelines_questions_are_checked_and_kept(two_pipelines) -> None:
    sales, support = two_pipelines
    form = StartChatForm(start_data(support, **{f"p{sales.pk}-company": "x" * 500}))
    assert form.is_valid(), form.errors
    assert form.answers() == {
        "order": {"label": "Order number", "value": "AB-123456", "position": 1},
        "product": {"label": "Product", "value": "Cloud", "position": 2},
    }
    buying = StartChatForm({**start_data(support, topic="Buying"), f"p{sales.pk}-company": "Acme"})
    assert buying.is_valid(), buying.errors
    assert buying.answers() == {"company": {"label": "Company", "value": "Acme", "position": 0}}


def test_the_chosen_pipelines_errors_are_on_its_own_fields(two_pipelines) -> None:
    _, support = two_pipelines
    form = StartChatForm(start_data(support, **{f"p{support.pk}-order": "123", "email": ""}))
    assert not form.is_valid()
    chosen = form.chosen_prechat()
    assert chosen is not None and chosen.pipeline == support
    assert chosen.errors == {"order": ["An order number looks like AB-123456."]}
    assert form.errors == {"email": ["Please give your e-mail address, so that we can reply."]}


def test_a_pipeline_that_does_not_ask_the_name_starts_as_visitor(two_pipelines) -> None:
    sales, support = two_pipelines
    Pipeline.objects.filter(pk=sales.pk).update(asks_name=False)
    form = StartChatForm(start_data(support, topic="Buying", name="", email=""))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["name"] == "Visitor"
    asked = StartChatForm(start_data(support, name=" "))
    assert not asked.is_valid() and asked.errors["name"] == ["Please tell us your name."]


def test_a_prechat_form_alone_serves_a_page_limited_to_one_pipeline(two_pipelines) -> None:
    _, support = two_pipelines
    [pipeline] = start_form_pipelines(pipeline_id=support.pk)
    form = PreChatForm({f"p{support.pk}-product": "Cloud"}, pipeline=pipeline)
    assert form.is_valid() and form.answers() == {
        "product": {"label": "Product", "value": "Cloud", "position": 2}
    }
    assert form.topic_names == ["Billing", "Technical"]


def test_start_page_shows_every_pipelines_questions_headed_by_topic(two_pipelines) -> None:
    _, support = two_pipelines
    page = Client().get("/chat/").content.decode()
    assert "For <bdi>Buying</bdi>" in page and "For <bdi>Billing, Technical</bdi>" in page
    assert f'id="id_p{support.pk}-order"' in page
    assert 'data-topics="[&quot;Billing&quot;, &quot;Technical&quot;]"' in page


def test_start_page_keeps_what_was_typed_and_ties_each_error_to_its_field(two_pipelines) -> None:
    sales, support = two_pipelines
    data = start_data(support, **{f"p{support.pk}-order": "ab-12<b>"})
    response = Client().post("/chat/", data)
    page = response.content.decode()
    assert response.status_code == 200 and not ChatSession.objects.exists()
    field_id = f"id_p{support.pk}-order"
    assert f'id="{field_id}_error">An order number looks like AB-123456.</span>' in page
    assert f'aria-describedby="{field_id}_error"' in page and 'aria-invalid="true"' in page
    assert 'value="ab-12&lt;b&gt;"' in page  # kept, escaped
    # Once a topic is chosen only its pipeline's questions are shown (the others hidden).
    shown = {
        int(pk): not hidden
        for pk, hidden in re.findall(
            r'<fieldset class="prechat" data-pipeline="(\d+)"[^>]*?( hidden)?>', page
        )
    }
    assert shown == {sales.pk: False, support.pk: True}


def test_start_page_stores_the_answers_and_the_browsers_context(two_pipelines) -> None:
    _, support = two_pipelines
    data = start_data(
        support,
        page="https://shop.example/cart",
        page_title="Your cart",
        referrer="https://search.example/",
        time_zone="Europe/Paris",
        utc_offset="60",
    )
    response = Client().post("/chat/", data, HTTP_USER_AGENT="Firefox/1.0")
    assert response.status_code == 302
    context = ChatSession.objects.get().visitor_context
    assert context == {
        "page": "https://shop.example/cart",
        "page_title": "Your cart",
        "referrer": "https://search.example/",
        "time_zone": "Europe/Paris",
        "utc_offset_minutes": 60,
        "user_agent": "Firefox/1.0",
        "language": "",
        "fields": {
            "order": {"label": "Order number", "value": "AB-123456", "position": 1},
            "product": {"label": "Product", "value": "Cloud", "position": 2},
        },
    }


def test_a_browsers_bad_clock_values_are_dropped_not_refused(two_pipelines) -> None:
    _, support = two_pipelines
    data = start_data(support, time_zone="Mars/Olympus", utc_offset="99999")
    assert Client().post("/chat/", data).status_code == 302
    context = ChatSession.objects.get().visitor_context
    assert "time_zone" not in context and "utc_offset_minutes" not in context


def test_one_topic_needs_no_select(db: None) -> None:
    pipeline = PipelineFactory(name="Only")
    pipeline.entry_stage = StageFactory(pipeline=pipeline)
    pipeline.save()
    TopicFactory(name="Anything", pipeline=pipeline)
    page = Client().get("/chat/").content.decode()
    assert '<select name="topic"' not in page
    assert '<input type="hidden" name="topic" value="Anything"' in page
    data = {"name": "Carol", "message": "Hi"}  # no topic sent: the only one
    assert Client().post("/chat/", data).status_code == 302
    assert ChatSession.objects.get().topic == "Anything"


def test_start_chat_keeps_the_answers_in_visitor_context(demo: None) -> None:
    answers = {"company": {"label": "Company", "value": "Acme"}}
    chat = start_chat(topic_name="Buying", visitor_context={"page": "/p"}, fields=answers)
    chat.refresh_from_db()
    assert chat.visitor_context == {"page": "/p", "fields": answers}
    assert "fields" not in start_chat(visitor_email="x@example.com").visitor_context


def test_answer_values_are_json(db: None) -> None:
    from decimal import Decimal

    assert answer_value(date(2026, 1, 2)) == "2026-01-02"
    assert answer_value(Decimal("4.000")) == 4
    assert answer_value(True) is True


def test_the_partial_renders_one_pipelines_questions_alone(two_pipelines) -> None:
    """What a start page limited to one pipeline (the widget's) includes."""
    from django.template.loader import render_to_string

    _, support = two_pipelines
    [pipeline] = start_form_pipelines(pipeline_id=support.pk)
    form = PreChatForm({f"p{support.pk}-order": "bad"}, pipeline=pipeline)
    assert not form.is_valid()
    html = render_to_string("chat/_prechat_fields.html", {"prechat": form, "shown": True})
    assert re.search(rf'<fieldset class="prechat" data-pipeline="{support.pk}"[^>]*>', html)
    assert " hidden>" not in html.split("\n", 1)[0]
    product = re.search(rf'<select name="p{support.pk}-product"[^>]*>', html)
    assert product is not None and "required" in product.group(0)  # marked for assistive tech
    assert 'Product <span class="req" aria-hidden="true">*</span>' in html
    assert 'Order number <span class="muted">(optional)</span>' in html
    assert f'id="id_p{support.pk}-product_error">Please fill in “Product”.</span>' in html
