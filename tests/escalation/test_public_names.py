"""What visitors are told of tiers, groups and stages: their public names, never the desk's
internal ones, and no place in line when an agent took the chat at once."""

import importlib

import pytest
from django.apps import apps
from django.utils import timezone

from chat.models import ChatSession, Message
from escalation import frames, services
from escalation.models import MessageTemplate, RoutingPolicy
from tests.factories import AgentFactory, StageOptionFactory, start_chat

pytestmark = pytest.mark.django_db


def start() -> ChatSession:
    return start_chat(visitor_email="", first_message="My invoice is wrong")


def public_texts(chat: ChatSession) -> list[str]:
    """Everything the visitor's page shows of the chat, in order."""
    return list(
        Message.objects.filter(chat=chat, public_seq__isnull=False)
        .order_by("seq")
        .values_list("text", flat=True)
    )


def name_publicly(l1_setup) -> None:
    for row, public in (
        (l1_setup.t1, "First line"),
        (l1_setup.t2, "Specialists"),
        (l1_setup.g1, "our support team"),
        (l1_setup.g2, "the billing team"),
        (l1_setup.l1, "our support desk"),
        (l1_setup.l2, "the billing desk"),
    ):
        row.public_name = public
        row.save()


def test_a_chat_an_agent_takes_at_once_is_not_told_it_is_queued(l1_setup):
    name_publicly(l1_setup)
    l1_setup.g1.routing_policy = RoutingPolicy.ROUND_ROBIN
    l1_setup.g1.save()
    AgentFactory(display_name="Alice", member_of=[l1_setup.g1])
    chat = start()
    assert public_texts(chat) == [
        "My invoice is wrong",
        "Alice from our support team joined the chat.",
    ]
    seqs = list(Message.objects.filter(chat=chat).order_by("seq").values_list("seq", flat=True))
    assert seqs == [1, 2]  # numbered on from dispatch's notice, no gap or repeat


def test_a_waiting_visitor_is_told_the_stages_public_name(l1_setup):
    name_publicly(l1_setup)
    chat = start()
    assert public_texts(chat) == [
        "My invoice is wrong",
        "Thanks, Carol. You are in the queue for our support desk; an agent will be with you soon.",
    ]
    chat.refresh_from_db()
    assert chat.status == ChatSession.Status.QUEUED


def test_a_transfer_names_the_target_group_publicly_and_the_agent_sees_the_internal_name(
    l1_setup,
):
    name_publicly(l1_setup)
    alice = AgentFactory(display_name="Alice", member_of=[l1_setup.g1])
    StageOptionFactory(
        stage=l1_setup.l1,
        keyword="billing",
        target_kind="group",
        target_group=l1_setup.g2,
        target_stage=None,
    )
    MessageTemplate.objects.filter(event="transfer", stage=None, pipeline=None).update(
        text="Off to {team} ({tier})."
    )
    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice)
    escalation = services.escalate_chat(chat_id=chat.pk, agent=alice, keyword="billing")
    texts = public_texts(chat)
    assert texts[-2:] == ["Alice left the chat.", "Off to the billing team (Specialists)."]
    assert not any("L2 Billing" in text or "Level" in text for text in texts)
    # Agents and reports keep the desk's own names: the receiving group's console lists the chat
    # for "L2 Billing" at "Level 2", and the escalation is recorded under them.
    bob = AgentFactory(display_name="Bob", member_of=[l1_setup.g2])
    [item] = frames.queue_for_agent(agent=bob, now=timezone.now())
    assert (item["team"], item["tier"]) == ("L2 Billing", "Level 2")
    assert escalation.target_label == "L2 Billing"


def test_without_a_public_name_the_name_is_used(l1_setup):
    chat = start()
    assert "in the queue for L1;" in public_texts(chat)[-1]


def test_the_shipped_texts_no_longer_name_the_tier_but_an_edited_one_is_kept():
    migration = importlib.import_module("escalation.migrations.0011_default_texts_without_tier")
    MessageTemplate.objects.filter(stage=None, pipeline=None).delete()
    for event, (old, _) in migration.CHANGED.items():
        MessageTemplate.objects.create(event=event, text=old)
    MessageTemplate.objects.filter(event="fallback").update(text="Moving you to {tier}.")
    migration.forwards(apps, None)
    texts = dict(MessageTemplate.objects.values_list("event", "text"))
    assert texts["transfer"] == "You are being transferred to {team}. Estimated wait: {wait}."
    assert texts["previous_tier"] == "We are taking you back to {team}."
    assert texts["fallback"] == "Moving you to {tier}."  # the admin's own text stays
