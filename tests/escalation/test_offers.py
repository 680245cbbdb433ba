"""Offers: broadcast and round-robin hunt, accept, decline, lapse, hunt order, everyone passes,
auto-away. Services against the database; the events each console gets, after commit."""

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone

from chat.events import agent_group
from chat.models import ChatSession
from escalation import services
from escalation.exceptions import (
    AlreadyTaken,
    OfferClosed,
    OfferLapsed,
    OfferNotFound,
)
from escalation.models import Agent, Assignment, ChatRoute, Offer, QueueEntry
from tests.chat.test_events import Listener
from tests.factories import (
    AgentFactory,
    AgentGroupFactory,
    PipelineFactory,
    StageFactory,
    TierFactory,
    TopicFactory,
)

pytestmark = pytest.mark.django_db

ACCEPT_SECONDS = 30


@pytest.fixture
def setup(db: None) -> Any:
    """Two pipelines at tier 1: "Broadcast" (topic "Orders") and "Hunt" (topic "Returns"),
    each stage served by one group of that policy; Ann, Ben and Cat are in both groups."""
    t1 = TierFactory(level=1)
    groups, stages = {}, {}
    for policy, name, topic in (("broadcast", "Broadcast", "Orders"), ("hunt", "Hunt", "Returns")):
        group = AgentGroupFactory(name=f"L1 {name}", tier=t1, routing_policy=policy)
        pipeline = PipelineFactory(name=name)
        stage = StageFactory(
            pipeline=pipeline,
            name=name,
            tier=t1,
            served_by=[group],
            accept_timeout_seconds=ACCEPT_SECONDS,
        )
        pipeline.entry_stage = stage
        pipeline.save()
        TopicFactory(name=topic, pipeline=pipeline)
        groups[policy], stages[policy] = group, stage
    people = {
        name: AgentFactory(
            display_name=name.title(),
            member_of=list(groups.values()),
            capacity=2,
            presence=Agent.Presence.OFFLINE,
        )
        for name in ("ann", "ben", "cat")
    }
    return SimpleNamespace(groups=groups, stages=stages, **people)


def online(*agents: Agent) -> None:
    for agent in agents:
        services.set_presence(agent=agent, presence=Agent.Presence.ONLINE)


def start(topic: str) -> ChatSession:
    return services.start_chat(
        visitor_name="Carol",
        visitor_email="",
        topic_name=topic,
        first_message="Hello",
        visitor_context={},
    )


def pending(chat: ChatSession) -> list[str]:
    """Display names of the agents the chat is offered to right now."""
    return sorted(
        Offer.objects.filter(chat=chat, status="pending").values_list(
            "agent__display_name", flat=True
        )
    )


def offer_of(chat: ChatSession, agent: Agent) -> Offer:
    return Offer.objects.filter(chat=chat, agent=agent).latest("pk")


def flow(chat: ChatSession, *kinds: str) -> list[tuple[str, str]]:
    return [
        (e.kind, e.data.get("agent", ""))
        for e in chat.flow.filter(kind__in=kinds or ("offered", "accepted", "declined", "lapsed"))
    ]


def lapse(chat: ChatSession) -> str:
    """The hunt's pending offer reaches its deadline and its timer task runs."""
    offer = Offer.objects.get(chat=chat, status="pending")
    Offer.objects.filter(pk=offer.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    return services.handle_offer_timeout(offer_id=offer.pk)


def holder(chat: ChatSession) -> str | None:
    agent = ChatRoute.objects.get(chat=chat).agent
    return agent.display_name if agent else None


# --- Broadcast -----------------------------------------------------------------------------------


def test_broadcast_offers_every_eligible_agent_at_once(setup, django_capture_on_commit_callbacks):
    online(setup.ann, setup.ben)  # Cat stays offline
    ann_console = Listener(agent_group(setup.ann.pk))
    with django_capture_on_commit_callbacks(execute=True):
        chat = start("Orders")
    assert pending(chat) == ["Ann", "Ben"]
    assert holder(chat) is None and chat.status == "queued"  # offered, not assigned
    assert flow(chat) == [("offered", "Ann"), ("offered", "Ben")]
    [frame] = [f for f in ann_console.receive_all() if f["type"] == "offer"]
    assert frame["chat"] == chat.pk
    assert frame["policy"] == "broadcast"
    assert (frame["visitor"], frame["topic"], frame["tier_path"]) == ("Carol", "Orders", ["Level 1"])
    assert frame["deadline"] is None  # broadcast offers stay open until someone accepts
    assert frame["waited_seconds"] >= 0 and frame["note"] == ""


def test_broadcast_first_accept_wins_and_the_offer_vanishes_elsewhere(
    setup, django_capture_on_commit_callbacks
):
    online(setup.ann, setup.ben)
    chat = start("Orders")
    ben_console = Listener(agent_group(setup.ben.pk))
    with django_capture_on_commit_callbacks(execute=True):
        assignment = services.accept_offer(offer_id=offer_of(chat, setup.ann).pk, agent=setup.ann)
    assert assignment.agent == setup.ann and holder(chat) == "Ann"
    assert offer_of(chat, setup.ben).status == "withdrawn"
    assert {
        "type": "offer.closed",
        "v": 1,
        "offer": offer_of(chat, setup.ben).pk,
        "chat": chat.pk,
        "status": "withdrawn",
        "reason": "taken",
    } in ben_console.receive_all()
    with pytest.raises(AlreadyTaken):
        services.accept_offer(offer_id=offer_of(chat, setup.ben).pk, agent=setup.ben)
    assert flow(chat, "accepted") == [("accepted", "Ann")]
    assert chat.messages.filter(event="agent_joined").count() == 1


def test_broadcast_decline_leaves_the_others_and_is_never_offered_again(setup):
    online(setup.ann, setup.ben)
    chat = start("Orders")
    services.decline_offer(offer_id=offer_of(chat, setup.ann).pk, agent=setup.ann)
    assert pending(chat) == ["Ben"]
    services.set_presence(agent=setup.ann, presence="away")
    online(setup.ann, setup.cat)  # a new agent gets it; Ann, who declined, does not
    assert pending(chat) == ["Ben", "Cat"]
    assert ("declined", "Ann") in flow(chat)
    with pytest.raises(OfferClosed):
        services.accept_offer(offer_id=offer_of(chat, setup.ann).pk, agent=setup.ann)


def test_taking_an_offered_chat_from_the_queue_withdraws_the_offers(setup):
    online(setup.ann, setup.ben)
    chat = start("Orders")
    services.take_chat(chat_id=chat.pk, agent=setup.ben)
    assert pending(chat) == []
    assert set(Offer.objects.filter(chat=chat).values_list("status", flat=True)) == {"withdrawn"}


def test_an_agent_who_fills_up_loses_its_other_offers(setup):
    Agent.objects.filter(pk=setup.ann.pk).update(capacity=1)
    online(setup.ann, setup.ben)
    first, second = start("Orders"), start("Orders")
    assert pending(second) == ["Ann", "Ben"]
    services.accept_offer(offer_id=offer_of(first, setup.ann).pk, agent=setup.ann)
    assert pending(second) == ["Ben"]
    assert offer_of(second, setup.ann).closed_reason == "full"
    services.end_chat_by_agent(chat_id=first.pk, agent=setup.ann)
    assert pending(second) == ["Ann", "Ben"]  # free again: offered again


def test_going_away_withdraws_offers_and_someone_elses_offer_cannot_be_answered(setup):
    online(setup.ann, setup.ben)
    chat = start("Orders")
    with pytest.raises(OfferNotFound):
        services.accept_offer(offer_id=offer_of(chat, setup.ann).pk, agent=setup.ben)
    services.set_presence(agent=setup.ann, presence="offline")
    assert pending(chat) == ["Ben"]
    assert offer_of(chat, setup.ann).closed_reason == "offline"


# --- Round-robin hunt -------------------------------------------------------------------------


def test_hunt_offers_one_agent_at_a_time_in_round_robin_order(setup):
    online(setup.ann, setup.ben, setup.cat)
    chats = [start("Returns") for _ in range(4)]
    # Each next chat goes to the agent offered one longest ago (never offered first, by id).
    assert [pending(c) for c in chats] == [["Ann"], ["Ben"], ["Cat"], ["Ann"]]
    offer = offer_of(chats[0], setup.ann)
    assert offer.deadline == offer.offered_at + timedelta(seconds=ACCEPT_SECONDS)
    assert offer.policy == "hunt"


def test_hunt_decline_moves_on_at_once(setup):
    online(setup.ann, setup.ben)
    chat = start("Returns")
    services.decline_offer(offer_id=offer_of(chat, setup.ann).pk, agent=setup.ann)
    assert pending(chat) == ["Ben"]
    assert flow(chat) == [("offered", "Ann"), ("declined", "Ann"), ("offered", "Ben")]


def test_hunt_lapse_moves_on_and_never_straight_back(setup, django_capture_on_commit_callbacks):
    online(setup.ann, setup.ben)
    chat = start("Returns")
    ann_console = Listener(agent_group(setup.ann.pk))
    with django_capture_on_commit_callbacks(execute=True):
        assert lapse(chat) == "lapsed"
    assert pending(chat) == ["Ben"]
    closed = [f for f in ann_console.receive_all() if f["type"] == "offer.closed"]
    assert closed == [
        {
            "type": "offer.closed",
            "v": 1,
            "offer": offer_of(chat, setup.ann).pk,
            "chat": chat.pk,
            "status": "lapsed",
            "reason": "lapsed",
        }
    ]
    [lapsed] = chat.flow.filter(kind="lapsed")
    assert lapsed.data["agent"] == "Ann" and lapsed.data["late_ms"] >= 1000
    services.decline_offer(offer_id=offer_of(chat, setup.ben).pk, agent=setup.ben)
    assert pending(chat) == []  # Ann let it lapse: not offered to her again


def test_everyone_passes_the_chat_stays_queued_and_its_wait_timeout_still_applies(setup):
    online(setup.ann, setup.ben, setup.cat)
    chat = start("Returns")
    assert lapse(chat) == "lapsed"  # Ann
    services.decline_offer(offer_id=offer_of(chat, setup.ben).pk, agent=setup.ben)
    assert lapse(chat) == "lapsed"  # Cat
    assert pending(chat) == []
    chat.refresh_from_db()
    entry = ChatRoute.objects.get(chat=chat).entry
    assert chat.status == "queued" and entry is not None and entry.left_at is None
    assert flow(chat) == [
        ("offered", "Ann"),
        ("lapsed", "Ann"),
        ("offered", "Ben"),
        ("declined", "Ben"),
        ("offered", "Cat"),
        ("lapsed", "Cat"),
    ]
    QueueEntry.objects.filter(pk=entry.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    assert services.handle_wait_timeout(entry_id=entry.pk) == "fell back"
    chat.refresh_from_db()
    assert chat.status == "missed"  # the stage's fallback: the leave-a-message form


def test_an_offer_timer_acts_once_and_only_when_due(setup):
    online(setup.ann, setup.ben)
    chat = start("Returns")
    offer = offer_of(chat, setup.ann)
    assert services.handle_offer_timeout(offer_id=offer.pk) == "early"  # woke before its time
    assert pending(chat) == ["Ann"]
    Offer.objects.filter(pk=offer.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    assert services.sweep_overdue_offers() == 1  # the sweep catches a lost timer
    assert services.handle_offer_timeout(offer_id=offer.pk) == "stale"  # the late task: nothing
    assert services.sweep_overdue_offers() == 0
    assert pending(chat) == ["Ben"]
    assert chat.flow.filter(kind="lapsed").count() == 1


def test_accepting_after_the_deadline_lapses_the_offer_instead(setup):
    online(setup.ann, setup.ben)
    chat = start("Returns")
    offer = offer_of(chat, setup.ann)
    Offer.objects.filter(pk=offer.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    with pytest.raises(OfferLapsed):
        services.accept_offer(offer_id=offer.pk, agent=setup.ann)
    assert pending(chat) == ["Ben"]  # the lapse was kept and the hunt moved on
    assert holder(chat) is None


def test_hunt_agent_accepts_and_a_pending_offer_holds_a_place(setup):
    Agent.objects.filter(pk__in=[setup.ann.pk, setup.ben.pk]).update(capacity=1)
    online(setup.ann, setup.ben)
    first, second, third = start("Returns"), start("Returns"), start("Returns")
    assert (pending(first), pending(second), pending(third)) == (["Ann"], ["Ben"], [])
    services.accept_offer(offer_id=offer_of(first, setup.ann).pk, agent=setup.ann)
    assert holder(first) == "Ann"
    assert ("accepted", "Ann") in flow(first)
    services.decline_offer(offer_id=offer_of(second, setup.ben).pk, agent=setup.ben)
    assert pending(second) == []  # Ann is full, and Ben passed on it
    assert pending(third) == ["Ben"]  # the place Ben's offer held is free again
    with pytest.raises(AlreadyTaken):
        services.take_chat(chat_id=first.pk, agent=setup.cat)


def test_auto_away_after_offers_lapse_repeatedly(setup, django_capture_on_commit_callbacks):
    setup.groups["hunt"].auto_away_after_lapses = 2
    setup.groups["hunt"].save()
    online(setup.ann, setup.ben)
    first = start("Returns")
    assert lapse(first) == "lapsed"  # Ann, once: still online
    assert Agent.objects.get(pk=setup.ann.pk).presence == "online"
    second = start("Returns")
    assert pending(second) == ["Ann"]
    ann_console = Listener(agent_group(setup.ann.pk))
    with django_capture_on_commit_callbacks(execute=True):
        assert lapse(second) == "lapsed"  # twice in a row: set away
    ann = Agent.objects.get(pk=setup.ann.pk)
    assert (ann.presence, ann.lapses_in_a_row) == ("away", 0)
    assert {
        "type": "presence",
        "v": 1,
        "presence": "away",
        "reason": "2 offers in a row lapsed unanswered",
    } in ann_console.receive_all()
    assert chat_flow_set_away(second) == [True]
    assert pending(second) == ["Ben"]
    assert not Offer.objects.filter(agent=setup.ann, status="pending").exists()
    third = start("Returns")
    assert "Ann" not in pending(third)  # away agents get no offers


def chat_flow_set_away(chat: ChatSession) -> list[bool]:
    return [e.data["set_away"] for e in chat.flow.filter(kind="lapsed", data__agent="Ann")]


def test_answering_resets_the_lapse_count(setup):
    setup.groups["hunt"].auto_away_after_lapses = 2
    setup.groups["hunt"].save()
    online(setup.ann)
    first = start("Returns")
    assert lapse(first) == "lapsed"
    second = start("Returns")
    services.accept_offer(offer_id=offer_of(second, setup.ann).pk, agent=setup.ann)
    assert Agent.objects.get(pk=setup.ann.pk).lapses_in_a_row == 0
    third = start("Returns")
    assert lapse(third) == "lapsed"
    assert Agent.objects.get(pk=setup.ann.pk).presence == "online"


def test_console_hello_lists_pending_offers(setup):
    from escalation.selectors import console_state

    online(setup.ann)
    chat = start("Orders")
    state = console_state(agent=Agent.objects.get(pk=setup.ann.pk))
    assert [(o["chat"], o["policy"]) for o in state["offers"]] == [(chat.pk, "broadcast")]
    assert Assignment.objects.filter(chat=chat).count() == 0
