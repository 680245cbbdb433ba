import pytest
from django.apps import apps
from django.core.management import call_command

pytestmark = pytest.mark.django_db

CONFIG_MODELS = [
    "Tier",
    "AgentGroup",
    "Agent",
    "Pipeline",
    "Topic",
    "Stage",
    "EscalationOption",
    "EscalationReason",
    "MessageTemplate",
]


def snapshot() -> dict[str, list[tuple[object, ...]]]:
    rows = {}
    for name in CONFIG_MODELS:
        model = apps.get_model("escalation", name)
        rows[name] = sorted(tuple(r.values()) for r in model.objects.values())
    user_model = apps.get_model("auth", "User")
    rows["User"] = sorted(user_model.objects.values_list("username", "is_staff", "is_superuser"))
    return rows


def test_load_demo_twice_leaves_the_same_rows(capsys):
    call_command("load_demo")
    first = snapshot()
    call_command("load_demo")
    assert snapshot() == first
    assert "admin    admin" in capsys.readouterr().out


def test_demo_has_every_routing_policy_and_exit(demo):
    from escalation.models import AgentGroup, FallbackAction, Pipeline, Stage, Tier

    assert list(Tier.objects.values_list("level", flat=True)) == [1, 2, 3]
    assert set(AgentGroup.objects.values_list("name", flat=True)) >= {
        "L1 General",
        "L2 Billing",
        "L2 Technical",
        "L3 Engineering",
    }
    support = Pipeline.objects.get(name="Support")
    assert support.entry_stage.name == "L1 General"
    keywords = set(support.entry_stage.escalation_options.values_list("keyword", flat=True))
    assert {"billing", "technical", "engineering"} <= keywords
    used = set(Stage.objects.values_list("fallback_action", flat=True))
    assert used == set(FallbackAction.values), "every fallback kind is exercised"
    assert apps.get_model("escalation", "Agent").objects.count() == 6


def test_load_demo_puts_an_edited_demo_stage_back(demo):
    from escalation.models import Stage

    Stage.objects.filter(name="L1 General").update(
        no_agent_rule="fallback", wait_timeout_seconds=5, escalated_order="priority"
    )
    call_command("load_demo")
    stage = Stage.objects.get(name="L1 General")
    assert (stage.no_agent_rule, stage.wait_timeout_seconds, stage.escalated_order) == (
        "queue",
        180,
        "original_wait",
    )


def test_demo_routes_one_group_by_broadcast_and_one_by_round_robin_hunt(demo):
    from escalation.models import AgentGroup, Stage

    policies = dict(AgentGroup.objects.values_list("name", "routing_policy"))
    assert policies["L1 Orders"] == "broadcast"
    assert policies["L1 Returns"] == "hunt"
    assert AgentGroup.objects.get(name="L1 Returns").auto_away_after_lapses == 3
    orders = Stage.objects.get(name="Orders")
    assert orders.drop_stage is not None and orders.drop_stage.name == "Order follow-up"
    assert orders.still_searching_seconds == 30
    assert orders.escalation_options.filter(keyword="billing").exists()
    assert Stage.objects.get(name="Returns").accept_timeout_seconds == 20
