"""Offers: broadcast and round-robin hunt, accept, decline, lapse, hunt order, everyone passes,
auto-away. Services against the database; the events each console gets, after commit."""

from datetime import timedelta

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

pytestmark = pytest.mark.django_db

ACCEPT_SECONDS = 30


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


def test_broadcast_offers_every_eligible_agent_at_once(desk, django_capture_on_commit_callbacks):
    online(desk.ann, desk.ben)  # Cat stays offline
    ann_console = Listener(agent_group(desk.ann.pk))
    with django_capture_on_commit_callbacks(execute=True):
        chat = start("Orders")
    assert pending(chat) == ["Ann", "Ben"]
    assert holder(chat) is None and chat.status == "queued"  # offered, not assigned
    assert flow(chat) == [("offered", "Ann"), ("offered", "Ben")]
    [frame] = [f for f in ann_console.receive_all() if f["type"] == "offer"]
    assert frame["chat"] == chat.pk
    assert frame["policy"] == "broadcast"
    assert (frame["visitor"], frame["topic"], frame["tier_path"]) == (
        "Carol",
        "Orders",
        ["Level 1"],
    )
    assert frame["deadline"] is None  # broadcast offers stay open until someone accepts
    assert frame["waited_seconds"] >= 0 and frame["note"] == ""


def test_broadcast_first_accept_wins_and_the_offer_vanishes_elsewhere(
    desk, django_capture_on_commit_callbacks
):
    online(desk.ann, desk.ben)
    chat = start("Orders")
    ben_console = Listener(agent_group(desk.ben.pk))
    with django_capture_on_commit_callbacks(execute=True):
        assignment = services.accept_offer(offer_id=offer_of(chat, desk.ann).pk, agent=desk.ann)
    assert assignment.agent == desk.ann and holder(chat) == "Ann"
    assert offer_of(chat, desk.ben).status == "withdrawn"
    assert {
        "type": "offer.closed",
        "v": 3,
        "offer": offer_of(chat, desk.ben).pk,
        "chat": chat.pk,
        "status": "withdrawn",
        "reason": "taken",
    } in ben_console.receive_all()
    with pytest.raises(AlreadyTaken):
        services.accept_offer(offer_id=offer_of(chat, desk.ben).pk, agent=desk.ben)
    assert flow(chat, "accepted") == [("accepted", "Ann")]
    assert chat.messages.filter(event="agent_joined").count() == 1


def test_broadcast_decline_leaves_the_others_and_is_never_offered_again(desk):
    online(desk.ann, desk.ben)
    chat = start("Orders")
    services.decline_offer(offer_id=offer_of(chat, desk.ann).pk, agent=desk.ann)
    assert pending(chat) == ["Ben"]
    services.set_presence(agent=desk.ann, presence="away")
    online(desk.ann, desk.cat)  # a new agent gets it; Ann, who declined, does not
    assert pending(chat) == ["Ben", "Cat"]
    assert ("declined", "Ann") in flow(chat)
    with pytest.raises(OfferClosed):
        services.accept_offer(offer_id=offer_of(chat, desk.ann).pk, agent=desk.ann)


def test_taking_an_offered_chat_from_the_queue_withdraws_the_offers(desk):
    online(desk.ann, desk.ben)
    chat = start("Orders")
    services.take_chat(chat_id=chat.pk, agent=desk.ben)
    assert pending(chat) == []
    assert set(Offer.objects.filter(chat=chat).values_list("status", flat=True)) == {"withdrawn"}


def test_an_agent_who_fills_up_loses_its_other_offers(desk):
    Agent.objects.filter(pk=desk.ann.pk).update(capacity=1)
    online(desk.ann, desk.ben)
    first, second = start("Orders"), start("Orders")
    assert pending(second) == ["Ann", "Ben"]
    services.accept_offer(offer_id=offer_of(first, desk.ann).pk, agent=desk.ann)
    assert pending(second) == ["Ben"]
    assert offer_of(second, desk.ann).closed_reason == "full"
    services.end_chat_by_agent(chat_id=first.pk, agent=desk.ann)
    assert pending(second) == ["Ann", "Ben"]  # free again: offered again


def test_going_away_withdraws_offers_and_someone_elses_offer_cannot_be_answered(desk):
    online(desk.ann, desk.ben)
    chat = start("Orders")
    with pytest.raises(OfferNotFound):
        services.accept_offer(offer_id=offer_of(chat, desk.ann).pk, agent=desk.ben)
    services.set_presence(agent=desk.ann, presence="offline")
    assert pending(chat) == ["Ben"]
    assert offer_of(chat, desk.ann).closed_reason == "offline"


# --- Round-robin hunt -------------------------------------------------------------------------


def test_hunt_offers_one_agent_at_a_time_in_round_robin_order(desk):
    online(desk.ann, desk.ben, desk.cat)
    chats = [start("Returns") for _ in range(4)]
    # Each next chat goes to the agent offered one longest ago (never offered first, by id).
    assert [pending(c) for c in chats] == [["Ann"], ["Ben"], ["Cat"], ["Ann"]]
    offer = offer_of(chats[0], desk.ann)
    assert offer.deadline == offer.offered_at + timedelta(seconds=ACCEPT_SECONDS)
    assert offer.policy == "hunt"


def test_hunt_decline_moves_on_at_once(desk):
    online(desk.ann, desk.ben)
    chat = start("Returns")
    services.decline_offer(offer_id=offer_of(chat, desk.ann).pk, agent=desk.ann)
    assert pending(chat) == ["Ben"]
    assert flow(chat) == [("offered", "Ann"), ("declined", "Ann"), ("offered", "Ben")]


def test_hunt_lapse_moves_on_and_never_straight_back(desk, django_capture_on_commit_callbacks):
    online(desk.ann, desk.ben)
    chat = start("Returns")
    ann_console = Listener(agent_group(desk.ann.pk))
    with django_capture_on_commit_callbacks(execute=True):
        assert lapse(chat) == "lapsed"
    assert pending(chat) == ["Ben"]
    closed = [f for f in ann_console.receive_all() if f["type"] == "offer.closed"]
    assert closed == [
        {
            "type": "offer.closed",
            "v": 3,
            "offer": offer_of(chat, desk.ann).pk,
            "chat": chat.pk,
            "status": "lapsed",
            "reason": "lapsed",
        }
    ]
    [lapsed] = chat.flow.filter(kind="lapsed")
    assert lapsed.data["agent"] == "Ann" and lapsed.data["late_ms"] >= 1000
    services.decline_offer(offer_id=offer_of(chat, desk.ben).pk, agent=desk.ben)
    assert pending(chat) == []  # Ann let it lapse: not offered to her again


def test_everyone_passes_the_chat_stays_queued_and_its_wait_timeout_still_applies(desk):
    online(desk.ann, desk.ben, desk.cat)
    chat = start("Returns")
    assert lapse(chat) == "lapsed"  # Ann
    services.decline_offer(offer_id=offer_of(chat, desk.ben).pk, agent=desk.ben)
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


def test_an_offer_timer_acts_once_and_only_when_due(desk):
    online(desk.ann, desk.ben)
    chat = start("Returns")
    offer = offer_of(chat, desk.ann)
    assert services.handle_offer_timeout(offer_id=offer.pk) == "early"  # woke before its time
    assert pending(chat) == ["Ann"]
    Offer.objects.filter(pk=offer.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    assert services.sweep_overdue_offers() == 1  # the sweep catches a lost timer
    assert services.handle_offer_timeout(offer_id=offer.pk) == "stale"  # the late task: nothing
    assert services.sweep_overdue_offers() == 0
    assert pending(chat) == ["Ben"]
    assert chat.flow.filter(kind="lapsed").count() == 1


def test_accepting_after_the_deadline_lapses_the_offer_instead(desk):
    online(desk.ann, desk.ben)
    chat = start("Returns")
    offer = offer_of(chat, desk.ann)
    Offer.objects.filter(pk=offer.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    with pytest.raises(OfferLapsed):
        services.accept_offer(offer_id=offer.pk, agent=desk.ann)
    assert pending(chat) == ["Ben"]  # the lapse was kept and the hunt moved on
    assert holder(chat) is None


def test_hunt_agent_accepts_and_a_pending_offer_holds_a_place(desk):
    Agent.objects.filter(pk__in=[desk.ann.pk, desk.ben.pk]).update(capacity=1)
    online(desk.ann, desk.ben)
    first, second, third = start("Returns"), start("Returns"), start("Returns")
    assert (pending(first), pending(second), pending(third)) == (["Ann"], ["Ben"], [])
    services.accept_offer(offer_id=offer_of(first, desk.ann).pk, agent=desk.ann)
    assert holder(first) == "Ann"
    assert ("accepted", "Ann") in flow(first)
    services.decline_offer(offer_id=offer_of(second, desk.ben).pk, agent=desk.ben)
    assert pending(second) == []  # Ann is full, and Ben passed on it
    assert pending(third) == ["Ben"]  # the place Ben's offer held is free again
    with pytest.raises(AlreadyTaken):
        services.take_chat(chat_id=first.pk, agent=desk.cat)


def test_auto_away_after_offers_lapse_repeatedly(desk, django_capture_on_commit_callbacks):
    desk.groups["hunt"].auto_away_after_lapses = 2
    desk.groups["hunt"].save()
    online(desk.ann, desk.ben)
    first = start("Returns")
    assert lapse(first) == "lapsed"  # Ann, once: still online
    assert Agent.objects.get(pk=desk.ann.pk).presence == "online"
    second = start("Returns")
    assert pending(second) == ["Ann"]
    ann_console = Listener(agent_group(desk.ann.pk))
    with django_capture_on_commit_callbacks(execute=True):
        assert lapse(second) == "lapsed"  # twice in a row: set away
    ann = Agent.objects.get(pk=desk.ann.pk)
    assert (ann.presence, ann.lapses_in_a_row) == ("away", 0)
    assert {
        "type": "presence",
        "v": 3,
        "presence": "away",
        "reason": "2 offers in a row lapsed unanswered",
    } in ann_console.receive_all()
    assert chat_flow_set_away(second) == [True]
    assert pending(second) == ["Ben"]
    assert not Offer.objects.filter(agent=desk.ann, status="pending").exists()
    third = start("Returns")
    assert "Ann" not in pending(third)  # away agents get no offers


def chat_flow_set_away(chat: ChatSession) -> list[bool]:
    return [e.data["set_away"] for e in chat.flow.filter(kind="lapsed", data__agent="Ann")]


def test_answering_resets_the_lapse_count(desk):
    desk.groups["hunt"].auto_away_after_lapses = 2
    desk.groups["hunt"].save()
    online(desk.ann)
    first = start("Returns")
    assert lapse(first) == "lapsed"
    second = start("Returns")
    services.accept_offer(offer_id=offer_of(second, desk.ann).pk, agent=desk.ann)
    assert Agent.objects.get(pk=desk.ann.pk).lapses_in_a_row == 0
    third = start("Returns")
    assert lapse(third) == "lapsed"
    assert Agent.objects.get(pk=desk.ann.pk).presence == "online"


def test_console_hello_lists_pending_offers(desk):
    from escalation.frames import console_state

    online(desk.ann)
    chat = start("Orders")
    state = console_state(agent=Agent.objects.get(pk=desk.ann.pk))
    assert [(o["chat"], o["policy"]) for o in state.offers] == [(chat.pk, "broadcast")]
    assert Assignment.objects.filter(chat=chat).count() == 0
