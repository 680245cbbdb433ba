"""The demo configuration: tiers, groups, pipelines exercising every fallback kind and every
routing policy (Orders: broadcast with a drop stage; Returns: round-robin hunt), people.

Idempotent: every row is found by its natural key and brought to the values below, so running it
again changes nothing (and repairs demo rows an admin has edited).
"""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from escalation.models import (
    Agent,
    AgentGroup,
    EscalationOption,
    EscalationReason,
    FallbackAction,
    Pipeline,
    PreChatField,
    RoutingPolicy,
    Site,
    Stage,
    Tag,
    TargetKind,
    Tier,
    Topic,
)

DEMO_PASSWORD = "tierline-demo"  # noqa: S105 - the documented demo login, printed by make run


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    detail: str


TIERS = {1: "Level 1", 2: "Level 2", 3: "Level 3"}
GROUPS = {  # name: (tier, policy, default capacity, auto-away after this many lapses)
    "L1 General": (1, RoutingPolicy.ROUND_ROBIN, 3, 0),
    "L1 Orders": (1, RoutingPolicy.BROADCAST, 3, 0),
    "L1 Returns": (1, RoutingPolicy.HUNT, 3, 3),
    "L1 Follow-up": (1, RoutingPolicy.MANUAL, 3, 0),
    "L2 Billing": (2, RoutingPolicy.MANUAL, 2, 0),
    "L2 Technical": (2, RoutingPolicy.LEAST_BUSY, 2, 0),
    "L3 Engineering": (3, RoutingPolicy.MANUAL, 2, 0),
}
# What visitors are told of each group and stage (their internal names say tier and desk).
PUBLIC_NAMES = {
    "L1 General": "our support team",
    "L1 Orders": "the orders team",
    "L1 Returns": "the returns team",
    "L1 Follow-up": "the orders team",
    "L2 Billing": "the billing team",
    "L2 Technical": "technical support",
    "L3 Engineering": "our engineers",
    "Sales": "the sales team",
    "Orders": "the orders team",
    "Order follow-up": "the orders team",
    "Returns": "the returns team",
}
L1_TEAMS = ["L1 General", "L1 Orders", "L1 Returns", "L1 Follow-up"]
AGENTS = {  # username: (display name, groups)
    "alex": ("Alex", L1_TEAMS),
    "blair": ("Blair", L1_TEAMS),
    "sam": ("Sam", ["L2 Billing"]),
    "kim": ("Kim", ["L2 Billing", "L2 Technical"]),
    "taylor": ("Taylor", ["L2 Technical"]),
    "jordan": ("Jordan", ["L3 Engineering"]),
}
REASONS = [
    "Billing question",
    "Technical fault",
    "Needs engineering",
    "Customer asked for a specialist",
]


def _user(username: str, **fields: Any) -> Any:
    user_model = get_user_model()
    user, _ = user_model.objects.update_or_create(username=username, defaults=fields)
    if not user.check_password(DEMO_PASSWORD):
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
    return user


DEMO_SITE = "Demo shop"


@transaction.atomic
def load_demo_configuration() -> list[DemoLogin]:
    tiers = {
        level: Tier.objects.update_or_create(level=level, defaults={"name": name})[0]
        for level, name in TIERS.items()
    }
    groups = {
        name: AgentGroup.objects.update_or_create(
            name=name,
            defaults={
                "tier": tiers[level],
                "routing_policy": policy,
                "default_capacity": capacity,
                "auto_away_after_lapses": lapses,
                "public_name": PUBLIC_NAMES[name],
            },
        )[0]
        for name, (level, policy, capacity, lapses) in GROUPS.items()
    }
    for position, label in enumerate(REASONS):
        EscalationReason.objects.update_or_create(
            label=label, defaults={"position": position, "is_active": True}
        )

    logins = []
    agents_role = Group.objects.get(name="Agents")
    agents: dict[str, Agent] = {}
    for username, (display_name, group_names) in AGENTS.items():
        user = _user(username, first_name=display_name, is_staff=False, is_superuser=False)
        user.groups.add(agents_role)
        agent, _ = Agent.objects.update_or_create(
            user=user, defaults={"display_name": display_name}
        )
        agent.groups.set([groups[name] for name in group_names])
        agents[username] = agent
        logins.append(DemoLogin(username, "agent", ", ".join(group_names)))
    manager = _user("morgan", first_name="Morgan", is_staff=False, is_superuser=False)
    manager.groups.add(Group.objects.get(name="Managers"))
    logins.append(DemoLogin("morgan", "manager", "reports"))
    _user("admin", first_name="Admin", is_staff=True, is_superuser=True)
    logins.append(DemoLogin("admin", "admin", "Django admin"))

    support, _ = Pipeline.objects.get_or_create(name="Support")
    sales, _ = Pipeline.objects.get_or_create(name="Sales")
    orders, _ = Pipeline.objects.get_or_create(name="Orders")
    returns, _ = Pipeline.objects.get_or_create(name="Returns")

    def stage(
        pipeline: Pipeline, name: str, position: int, level: int, group: str, **kw: Any
    ) -> Stage:
        row, _ = Stage.objects.update_or_create(
            pipeline=pipeline,
            name=name,
            defaults={
                "tier": tiers[level],
                "public_name": PUBLIC_NAMES[name],
                "position": position,
                # Every setting is named, so load_demo puts an edited demo stage back as it was.
                "fallback_stage": None,
                "fallback_group": None,
                "no_agent_rule": Stage.NoAgentRule.QUEUE,
                "escalated_order": Stage.EscalatedOrder.ORIGINAL_WAIT,
                "accept_timeout_seconds": 20,
                "still_searching_seconds": 0,
                "drop_stage": None,
                "after_agent": Stage.AfterAgent.NOTHING,
                **kw,
            },
        )
        row.groups.set([groups[group]])
        return row

    # Every fallback kind is here: leave a message (L1), another stage (Billing → Technical),
    # back to the previous tier (Technical), end as missed (Engineering), another group (Sales).
    l3 = stage(
        support,
        "L3 Engineering",
        3,
        3,
        "L3 Engineering",
        wait_timeout_seconds=300,
        fallback_action=FallbackAction.END,
        after_agent=Stage.AfterAgent.SURVEY,
    )
    l2_tech = stage(
        support,
        "L2 Technical",
        2,
        2,
        "L2 Technical",
        wait_timeout_seconds=120,
        fallback_action=FallbackAction.PREVIOUS_TIER,
        after_agent=Stage.AfterAgent.SURVEY,
    )
    l2_billing = stage(
        support,
        "L2 Billing",
        1,
        2,
        "L2 Billing",
        wait_timeout_seconds=120,
        fallback_action=FallbackAction.STAGE,
        fallback_stage=l2_tech,
        after_agent=Stage.AfterAgent.SURVEY,
    )
    l1 = stage(
        support,
        "L1 General",
        0,
        1,
        "L1 General",
        wait_timeout_seconds=180,
        fallback_action=FallbackAction.LEAVE_MESSAGE,
        after_agent=Stage.AfterAgent.SURVEY,  # Support asks how it went; Sales takes a message
    )
    sales_l1 = stage(
        sales,
        "Sales",
        0,
        1,
        "L1 General",
        wait_timeout_seconds=120,
        fallback_action=FallbackAction.GROUP,
        fallback_group=groups["L2 Billing"],
        after_agent=Stage.AfterAgent.LEAVE_MESSAGE,
    )
    # Offers and the other exits of a stage. Orders: broadcast to Alex and Blair, still-searching
    # notices every 30 s, a visitor who leaves goes to the follow-up queue (picked by hand).
    # Returns: round-robin hunt, 20 s to accept, three lapses in a row set an agent away, a
    # visitor who leaves ends the chat as abandoned.
    follow_up = stage(
        orders,
        "Order follow-up",
        1,
        1,
        "L1 Follow-up",
        wait_timeout_seconds=3600,
        fallback_action=FallbackAction.END,
    )
    orders_l1 = stage(
        orders,
        "Orders",
        0,
        1,
        "L1 Orders",
        wait_timeout_seconds=120,
        fallback_action=FallbackAction.LEAVE_MESSAGE,
        still_searching_seconds=30,
        drop_stage=follow_up,
    )
    returns_l1 = stage(
        returns,
        "Returns",
        0,
        1,
        "L1 Returns",
        wait_timeout_seconds=180,
        fallback_action=FallbackAction.LEAVE_MESSAGE,
        accept_timeout_seconds=20,
        still_searching_seconds=45,
    )
    Pipeline.objects.filter(pk=support.pk).update(entry_stage=l1, is_active=True)
    Pipeline.objects.filter(pk=sales.pk).update(entry_stage=sales_l1, is_active=True)
    Pipeline.objects.filter(pk=orders.pk).update(entry_stage=orders_l1, is_active=True)
    Pipeline.objects.filter(pk=returns.pk).update(entry_stage=returns_l1, is_active=True)
    for position, (topic, pipeline) in enumerate(
        [
            ("Billing", support),
            ("Technical problem", support),
            ("Something else", support),
            ("Buying", sales),
            ("Where is my order?", orders),
            ("Return an item", returns),
        ]
    ):
        Topic.objects.update_or_create(
            name=topic, defaults={"pipeline": pipeline, "position": position}
        )
    # Tags agents put on chats (the By tag report counts them).
    for position, name in enumerate(
        ["Billing question", "Refund", "Bug report", "How-to", "Account access", "Feedback"]
    ):
        Tag.objects.update_or_create(name=name, defaults={"position": position})
    # A website to try the widget from (docs/widget.md): a static page served on port 8080.
    Site.objects.update_or_create(
        name=DEMO_SITE,
        defaults={"allowed_origins": "http://localhost:8080\nhttp://127.0.0.1:8080"},
    )
    # The start form's own questions per pipeline; optional, so a visitor in a hurry can skip.
    questions: list[tuple[Pipeline, str, dict[str, Any]]] = [
        (sales, "company", {"label": "Company", "kind": PreChatField.Kind.TEXT}),
        (
            support,
            "order-number",
            {
                "label": "Order number",
                "kind": PreChatField.Kind.ORDER_NUMBER,
                "pattern": r"[A-Z]{2}-\d{6}",
                "pattern_error": "An order number looks like AB-123456.",
                "help_text": "On your receipt, e.g. AB-123456.",
                "position": 1,
            },
        ),
        (
            support,
            "product",
            {
                "label": "Product",
                "kind": PreChatField.Kind.CHOICE,
                "choices": "Tierline Cloud\nTierline Self-hosted\nMobile app",
                "position": 2,
            },
        ),
    ]
    for pipeline, key, question in questions:
        PreChatField.objects.update_or_create(pipeline=pipeline, key=key, defaults=question)

    def option(
        at: Stage, keyword: str, label: str, kind: str, position: int, **kw: Any
    ) -> EscalationOption:
        agents_list = kw.pop("agents", [])
        row, _ = EscalationOption.objects.update_or_create(
            stage=at,
            keyword=keyword,
            defaults={
                "label": label,
                "target_kind": kind,
                "position": position,
                "target_stage": None,
                "target_group": None,
                "queue_stage": None,
                "note_required": True,
                **kw,
            },
        )
        row.target_agents.set(agents_list)
        return row

    option(
        l1,
        "billing",
        "Billing specialists",
        TargetKind.STAGE,
        0,
        target_stage=l2_billing,
        no_agent_rule=EscalationOption.NoAgentRule.QUEUE,
    )
    option(
        l1,
        "technical",
        "Technical support",
        TargetKind.STAGE,
        1,
        target_stage=l2_tech,
        no_agent_rule=EscalationOption.NoAgentRule.FALLBACK,
    )
    option(
        l1,
        "engineering",
        "Engineering",
        TargetKind.GROUP,
        2,
        target_group=groups["L3 Engineering"],
        queue_stage=l3,
        no_agent_rule=EscalationOption.NoAgentRule.REFUSE,
    )
    option(
        l1,
        "seniors",
        "Senior billing agents (Sam, Kim)",
        TargetKind.AGENTS,
        3,
        agents=[agents["sam"], agents["kim"]],
        queue_stage=l2_billing,
        no_agent_rule=EscalationOption.NoAgentRule.REFUSE,
        note_required=False,
    )
    option(
        l2_billing,
        "engineering",
        "Engineering",
        TargetKind.STAGE,
        0,
        target_stage=l3,
        no_agent_rule=EscalationOption.NoAgentRule.QUEUE,
    )
    option(
        l2_tech,
        "engineering",
        "Engineering",
        TargetKind.STAGE,
        0,
        target_stage=l3,
        no_agent_rule=EscalationOption.NoAgentRule.QUEUE,
    )
    option(
        orders_l1,
        "billing",
        "Billing specialists",
        TargetKind.STAGE,
        0,
        target_stage=l2_billing,
        no_agent_rule=EscalationOption.NoAgentRule.QUEUE,
    )
    option(
        sales_l1,
        "billing",
        "Billing specialists",
        TargetKind.STAGE,
        0,
        target_stage=l2_billing,
        no_agent_rule=EscalationOption.NoAgentRule.QUEUE,
    )
    return logins
