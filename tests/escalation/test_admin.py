"""Admin validation: every refusal comes with a message that says what is wrong."""

from typing import Any

import pytest
from django.urls import reverse

from escalation.models import EscalationOption, FallbackAction, MessageTemplate, Stage
from tests.factories import StageFactory

pytestmark = pytest.mark.django_db


def stage_form(stage: Stage, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "pipeline": stage.pipeline_id,
        "name": stage.name,
        "tier": stage.tier_id,
        "groups": [g.pk for g in stage.groups.all()],
        "position": stage.position,
        "wait_timeout_seconds": stage.wait_timeout_seconds,
        "fallback_action": stage.fallback_action,
        "fallback_stage": stage.fallback_stage_id or "",
        "fallback_group": stage.fallback_group_id or "",
        "no_agent_rule": stage.no_agent_rule,
        "escalated_order": stage.escalated_order,
        "accept_timeout_seconds": stage.accept_timeout_seconds,
        "still_searching_seconds": stage.still_searching_seconds,
        "drop_stage": stage.drop_stage_id or "",
        "after_agent": stage.after_agent,
        "colleague_handover": stage.colleague_handover,
        "escalation_options-TOTAL_FORMS": 0,
        "escalation_options-INITIAL_FORMS": 0,
        "templates-TOTAL_FORMS": 0,
        "templates-INITIAL_FORMS": 0,
    }
    data.update(overrides)
    return data


def option_forms(*options: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"escalation_options-TOTAL_FORMS": len(options)}
    for i, option in enumerate(options):
        for key, value in option.items():
            data[f"escalation_options-{i}-{key}"] = value
    return data


def change_url(stage: Stage) -> str:
    return reverse("admin:escalation_stage_change", args=[stage.pk])


def errors_of(response: Any) -> str:
    """The error messages the admin shows, one per line."""
    assert response.status_code == 200, "expected the form again, with errors"
    messages = []
    for form in [response.context["adminform"].form, *response.context["inline_admin_formsets"]]:
        formset = getattr(form, "formset", None)
        if formset is not None:
            messages += [str(e) for e in formset.non_form_errors()]
            messages += [str(m) for f in formset.forms for errs in f.errors.values() for m in errs]
        else:
            messages += [str(m) for errs in form.errors.values() for m in errs]
    return "\n".join(messages)


def test_valid_stage_change_is_saved(admin_client_, l1_setup):
    response = admin_client_.post(
        change_url(l1_setup.l1), stage_form(l1_setup.l1, wait_timeout_seconds=90)
    )
    assert response.status_code == 302
    l1_setup.l1.refresh_from_db()
    assert l1_setup.l1.wait_timeout_seconds == 90


def test_fallback_loop_is_refused_naming_the_loop(admin_client_, l1_setup):
    l2 = l1_setup.l2
    l2.fallback_action, l2.fallback_stage = FallbackAction.STAGE, l1_setup.l1
    l2.save()
    response = admin_client_.post(
        change_url(l1_setup.l1),
        stage_form(l1_setup.l1, fallback_action=FallbackAction.STAGE, fallback_stage=l2.pk),
    )
    assert "This fallback makes a loop: L1 → L2 Billing → L1." in errors_of(response)
    l1_setup.l1.refresh_from_db()
    assert l1_setup.l1.fallback_action == FallbackAction.LEAVE_MESSAGE


def test_fallback_to_itself_is_refused(admin_client_, l1_setup):
    response = admin_client_.post(
        change_url(l1_setup.l1),
        stage_form(
            l1_setup.l1, fallback_action=FallbackAction.STAGE, fallback_stage=l1_setup.l1.pk
        ),
    )
    assert "A stage cannot fall back to itself." in errors_of(response)


def test_a_longer_chain_without_loop_is_accepted(admin_client_, l1_setup):
    l3 = StageFactory(
        pipeline=l1_setup.pipeline, name="L3", tier=l1_setup.t2, served_by=[l1_setup.g2]
    )
    l1_setup.l2.fallback_action, l1_setup.l2.fallback_stage = FallbackAction.STAGE, l3
    l1_setup.l2.save()
    response = admin_client_.post(
        change_url(l1_setup.l1),
        stage_form(
            l1_setup.l1, fallback_action=FallbackAction.STAGE, fallback_stage=l1_setup.l2.pk
        ),
    )
    assert response.status_code == 302


def test_fallback_stage_kind_needs_a_stage(admin_client_, l1_setup):
    response = admin_client_.post(
        change_url(l1_setup.l1), stage_form(l1_setup.l1, fallback_action=FallbackAction.STAGE)
    )
    assert "Choose the stage to move to." in errors_of(response)


@pytest.mark.parametrize("timeout", [0, -5])
def test_wait_timeout_must_be_positive(admin_client_, l1_setup, timeout):
    response = admin_client_.post(
        change_url(l1_setup.l1), stage_form(l1_setup.l1, wait_timeout_seconds=timeout)
    )
    assert "The wait-timeout must be at least 1 second." in errors_of(response)


def test_stage_needs_at_least_one_group(admin_client_, l1_setup):
    response = admin_client_.post(change_url(l1_setup.l1), stage_form(l1_setup.l1, groups=[]))
    assert "A stage must be served by at least one agent group." in errors_of(response)
    assert l1_setup.l1.groups.count() == 1


def test_keywords_are_unique_within_a_stage(admin_client_, l1_setup):
    option = {
        "label": "Billing",
        "keyword": "billing",
        "target_kind": "stage",
        "target_stage": l1_setup.l2.pk,
        "no_agent_rule": "queue",
        "accept_timeout_seconds": 60,
        "position": 0,
        "note_required": "on",
    }
    response = admin_client_.post(
        change_url(l1_setup.l1),
        stage_form(l1_setup.l1, **option_forms(option, {**option, "label": "Billing again"})),
    )
    assert "Please correct the duplicate data for keyword." in errors_of(response)
    assert not EscalationOption.objects.exists()


def test_the_same_keyword_in_another_stage_is_fine(admin_client_, l1_setup):
    EscalationOption.objects.create(
        stage=l1_setup.l2,
        label="X",
        keyword="billing",
        target_kind="stage",
        target_stage=l1_setup.l1,
    )
    option = {
        "label": "Billing",
        "keyword": "billing",
        "target_kind": "stage",
        "target_stage": l1_setup.l2.pk,
        "no_agent_rule": "queue",
        "accept_timeout_seconds": 60,
        "position": 0,
    }
    response = admin_client_.post(
        change_url(l1_setup.l1), stage_form(l1_setup.l1, **option_forms(option))
    )
    assert response.status_code == 302
    assert EscalationOption.objects.filter(keyword="billing").count() == 2


def test_option_needs_a_target_of_its_kind(admin_client_, l1_setup):
    option = {
        "label": "Group",
        "keyword": "grp",
        "target_kind": "group",
        "no_agent_rule": "queue",
        "accept_timeout_seconds": 60,
        "position": 0,
    }
    response = admin_client_.post(
        change_url(l1_setup.l1), stage_form(l1_setup.l1, **option_forms(option))
    )
    assert "Choose the target for this kind of option." in errors_of(response)


def test_template_with_unknown_placeholder_is_refused(admin_client_):
    response = admin_client_.post(
        reverse("admin:escalation_messagetemplate_add"),
        {
            "event": "agent_joined",
            "text": "{agent} joined, you are {position}",
            "pipeline": "",
            "stage": "",
        },
    )
    body = errors_of(response)
    assert (
        "Unknown placeholder {position}. This message can use: {agent}, {team}, {tier}, {visitor}."
        in body
    )


def test_template_with_a_broken_brace_is_refused(admin_client_):
    default = MessageTemplate.objects.get(event="ended", pipeline=None, stage=None)
    response = admin_client_.post(
        reverse("admin:escalation_messagetemplate_change", args=[default.pk]),
        {"event": "ended", "text": "Bye {visitor", "pipeline": "", "stage": ""},
    )
    assert "The text has an unmatched" in errors_of(response)


def test_stage_override_of_a_template_is_saved(admin_client_, l1_setup):
    response = admin_client_.post(
        reverse("admin:escalation_messagetemplate_add"),
        {
            "event": "queued",
            "text": "Hi {visitor}, the L1 team is on it.",
            "pipeline": "",
            "stage": l1_setup.l1.pk,
        },
    )
    assert response.status_code == 302
    assert MessageTemplate.objects.get(stage=l1_setup.l1).text.startswith("Hi {visitor}")


def test_default_templates_are_shipped_for_every_event():
    events = set(
        MessageTemplate.objects.filter(stage=None, pipeline=None).values_list("event", flat=True)
    )
    assert events == set(MessageTemplate.Event.values)


def test_every_admin_page_opens(admin_client_, demo):
    for name in [
        "tier",
        "agentgroup",
        "agent",
        "pipeline",
        "stage",
        "escalationreason",
        "messagetemplate",
        "escalation",
        "assignment",
        "queueentry",
        "offlinemessage",
    ]:
        assert admin_client_.get(reverse(f"admin:escalation_{name}_changelist")).status_code == 200
    stage = Stage.objects.get(name="L1 General")
    assert admin_client_.get(change_url(stage)).status_code == 200


# --- Offers, still-searching notices and the drop stage --------------------------------------


def test_offer_and_waiting_settings_are_saved(admin_client_, l1_setup):
    response = admin_client_.post(
        change_url(l1_setup.l1),
        stage_form(
            l1_setup.l1,
            accept_timeout_seconds=15,
            still_searching_seconds=45,
            drop_stage=l1_setup.l2.pk,
        ),
    )
    assert response.status_code == 302
    l1_setup.l1.refresh_from_db()
    assert (
        l1_setup.l1.accept_timeout_seconds,
        l1_setup.l1.still_searching_seconds,
        l1_setup.l1.drop_stage,
    ) == (15, 45, l1_setup.l2)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("accept_timeout_seconds", 0, "The agent accept timeout must be at least 1 second."),
        (
            "still_searching_seconds",
            -5,
            "The still-searching interval is a number of seconds; 0 turns it off.",
        ),
        ("accept_timeout_seconds", "soon", "Enter a whole number."),
    ],
)
def test_offer_and_waiting_settings_refuse_bad_values(
    admin_client_, l1_setup, field, value, message
):
    response = admin_client_.post(
        change_url(l1_setup.l1), stage_form(l1_setup.l1, **{field: value})
    )
    assert message in errors_of(response)


def test_a_stage_cannot_be_its_own_drop_stage(admin_client_, l1_setup):
    response = admin_client_.post(
        change_url(l1_setup.l1), stage_form(l1_setup.l1, drop_stage=l1_setup.l1.pk)
    )
    assert "A stage cannot be its own drop stage" in errors_of(response)
    l1_setup.l1.refresh_from_db()
    assert l1_setup.l1.drop_stage is None


def group_form(group: Any, **overrides: Any) -> dict[str, Any]:
    data = {
        "name": group.name,
        "tier": group.tier_id,
        "routing_policy": group.routing_policy,
        "default_capacity": group.default_capacity,
        "auto_away_after_lapses": group.auto_away_after_lapses,
    }
    data.update(overrides)
    return data


def test_auto_away_needs_the_round_robin_hunt_policy(admin_client_, l1_setup):
    url = reverse("admin:escalation_agentgroup_change", args=[l1_setup.g1.pk])
    response = admin_client_.post(url, group_form(l1_setup.g1, auto_away_after_lapses=3))
    assert response.status_code == 200
    assert "Only round-robin hunt offers lapse" in str(response.context["adminform"].form.errors)
    response = admin_client_.post(
        url, group_form(l1_setup.g1, routing_policy="hunt", auto_away_after_lapses=3)
    )
    assert response.status_code == 302
    l1_setup.g1.refresh_from_db()
    assert (l1_setup.g1.routing_policy, l1_setup.g1.auto_away_after_lapses) == ("hunt", 3)


def test_a_site_is_added_with_checked_origins_and_shows_its_snippet(admin_client_):
    from escalation.models import Site

    form = {
        "name": "Shop",
        "is_active": "on",
        "allowed_origins": "https://shop.example/cart",
        "launcher_text": "Chat with us",
        "panel_title": "Chat with us",
        "colour": "#1f5fbf",
        "key": "shopkey123",
    }
    refused = admin_client_.post("/admin/escalation/site/add/", form)
    assert refused.status_code == 200 and Site.objects.count() == 0
    assert "is not an origin" in refused.content.decode()
    form["allowed_origins"] = "https://shop.example/\nhttp://localhost:8080"
    saved = admin_client_.post("/admin/escalation/site/add/", form)
    assert saved.status_code == 302
    site = Site.objects.get()
    assert site.allowed_origins == "https://shop.example\nhttp://localhost:8080"
    page = admin_client_.get(f"/admin/escalation/site/{site.pk}/change/").content.decode()
    assert '&lt;script src="http://testserver/widget.js" data-site="shopkey123" async' in page


# --- Pre-chat fields (inline on the pipeline) ----------------------------------------------------


def pipeline_form(pipeline: Any, *questions: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": pipeline.name,
        "is_active": "on",
        "entry_stage": pipeline.entry_stage_id,
        "asks_name": "on",
        "requires_email": "on",
        "topics-TOTAL_FORMS": 0,
        "topics-INITIAL_FORMS": 0,
        "prechat_fields-TOTAL_FORMS": len(questions),
        "prechat_fields-INITIAL_FORMS": 0,
    }
    for i, q in enumerate(questions):
        fields = {"kind": "text", "position": i, **q}
        data.update({f"prechat_fields-{i}-{key}": value for key, value in fields.items()})
    return data


def pipeline_url(pipeline: Any) -> str:
    return reverse("admin:escalation_pipeline_change", args=[pipeline.pk])


def test_pre_chat_fields_are_added_inline_on_the_pipeline(admin_client_, l1_setup):
    from escalation.models import PreChatField

    pipeline = l1_setup.l1.pipeline
    response = admin_client_.post(
        pipeline_url(pipeline),
        pipeline_form(
            pipeline,
            {"label": "Company", "key": "company"},
            {"label": "Product", "key": "product", "kind": "choice", "choices": "A\nB"},
            {
                "label": "Order",
                "key": "order",
                "kind": "order_number",
                "pattern": r"\d{6}",
                "pattern_error": "Six digits",
                "is_required": "on",
            },
        ),
    )
    assert response.status_code == 302
    rows = PreChatField.objects.filter(pipeline=pipeline).order_by("position")
    assert [(q.key, q.kind, q.is_required) for q in rows] == [
        ("company", "text", False),
        ("product", "choice", False),
        ("order", "order_number", True),
    ]
    pipeline.refresh_from_db()
    assert pipeline.requires_email and pipeline.asks_name


def test_a_key_is_unique_per_pipeline_only(admin_client_, l1_setup):
    from escalation.models import PreChatField
    from tests.factories import PipelineFactory

    pipeline = l1_setup.l1.pipeline
    twice = pipeline_form(
        pipeline, {"label": "Company", "key": "company"}, {"label": "Firm", "key": "company"}
    )
    assert "Please correct the duplicate data for key" in errors_of(
        admin_client_.post(pipeline_url(pipeline), twice)
    )
    PreChatField.objects.create(pipeline=pipeline, key="company", label="Company")
    other = PipelineFactory(name="Sales")
    PreChatField.objects.create(pipeline=other, key="company", label="Company")  # allowed
    again = pipeline_form(pipeline, {"label": "Firm", "key": "company"})
    assert "This pipeline already has a field with this key." in errors_of(
        admin_client_.post(pipeline_url(pipeline), again)
    )


def test_a_pre_chat_field_is_refused_with_a_reason(admin_client_, l1_setup):
    pipeline = l1_setup.l1.pipeline
    cases = [
        ({"kind": "choice"}, "A choice field needs at least one option (one per line)."),
        ({"pattern": "[a-"}, "This is not a valid regular expression"),
        ({"kind": "order_number"}, "An order number field needs the pattern its numbers follow."),
        ({"kind": "number", "pattern": r"\d"}, "Only text, e-mail and order number fields"),
        ({"key": "not a slug"}, "Enter a valid “slug”"),
    ]
    for fields, message in cases:
        data = pipeline_form(pipeline, {"label": "Q", "key": "q", **fields})
        assert message in errors_of(admin_client_.post(pipeline_url(pipeline), data))
