"""While a chat waits: still-searching notices, the drop stage, and every estimate shown stored."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from chat.models import ChatSession
from escalation import services, tasks
from escalation.models import ChatRoute, QueueEntry, Stage, WaitEstimate
from tests.escalation.test_offers import start
from tests.factories import AgentGroupFactory, StageFactory

pytestmark = pytest.mark.django_db


def entry_of(chat: ChatSession) -> QueueEntry:
    entry = ChatRoute.objects.select_related("entry__stage").get(chat=chat).entry
    assert entry is not None
    return entry


def make_due(entry: QueueEntry) -> Any:
    due = timezone.now() - timedelta(milliseconds=10)
    QueueEntry.objects.filter(pk=entry.pk).update(next_notice_at=due)
    return due


def searching(chat: ChatSession) -> list[str]:
    return list(chat.messages.filter(event="still_searching").values_list("text", flat=True))


@pytest.fixture
def follow_up(desk: Any) -> Stage:
    """A follow-up queue (manual pick) as the drop stage of the broadcast stage."""
    stage = StageFactory(
        pipeline=desk.stages["broadcast"].pipeline,
        name="Follow-up",
        tier=desk.stages["broadcast"].tier,
        served_by=[AgentGroupFactory(name="Follow-up team", tier=desk.stages["broadcast"].tier)],
        wait_timeout_seconds=3600,
    )
    Stage.objects.filter(pk=desk.stages["broadcast"].pk).update(drop_stage=stage)
    return stage


# --- Still-searching notices ------------------------------------------------------------------


def test_still_searching_notice_tells_position_and_estimate_on_schedule(desk):
    Stage.objects.filter(pk=desk.stages["broadcast"].pk).update(still_searching_seconds=30)
    chat = start("Orders")
    entry = entry_of(chat)
    assert entry.next_notice_at == entry.entered_at + timedelta(seconds=30)
    assert services.send_still_searching(entry_id=entry.pk, due=entry.next_notice_at) == "early"
    due = make_due(entry)
    shown = WaitEstimate.objects.filter(entry=entry).count()
    assert services.send_still_searching(entry_id=entry.pk, due=due) == "sent"
    assert searching(chat) == [
        "Still looking for an agent: you are number 1 in line, wait not known yet."
    ]
    assert WaitEstimate.objects.filter(entry=entry).count() == shown + 1  # stored as shown
    entry.refresh_from_db()
    assert entry.next_notice_at == due + timedelta(seconds=30)  # keeps its cadence
    # The same task delivered twice, or a superseded one, sends nothing.
    assert services.send_still_searching(entry_id=entry.pk, due=due) == "stale"
    assert len(searching(chat)) == 1


def test_still_searching_sweep_catches_a_lost_notice_and_stops_when_the_chat_leaves(desk):
    Stage.objects.filter(pk=desk.stages["broadcast"].pk).update(still_searching_seconds=10)
    chat = start("Orders")
    make_due(entry_of(chat))
    assert services.sweep_due_notices() == 1
    assert services.sweep_due_notices() == 0
    services.end_chat_by_visitor(chat_id=chat.pk)
    assert entry_of_or_none(chat) is None
    assert QueueEntry.objects.get(chat=chat).next_notice_at is None
    assert len(searching(chat)) == 1


def entry_of_or_none(chat: ChatSession) -> QueueEntry | None:
    return ChatRoute.objects.get(chat=chat).entry


def test_still_searching_off_by_default_and_when_turned_off_while_waiting(desk):
    chat = start("Orders")
    assert entry_of(chat).next_notice_at is None
    Stage.objects.filter(pk=desk.stages["broadcast"].pk).update(still_searching_seconds=5)
    other = start("Orders")
    Stage.objects.filter(pk=desk.stages["broadcast"].pk).update(still_searching_seconds=0)
    due = make_due(entry_of(other))
    assert services.send_still_searching(entry_id=entry_of(other).pk, due=due) == "off"
    assert searching(other) == []


# --- Drop stage ----------------------------------------------------------------------------------


def test_visitor_leaving_while_queued_moves_the_chat_to_the_drop_stage(desk, follow_up):
    chat = start("Orders")
    first = entry_of(chat)
    services.end_chat_by_visitor(chat_id=chat.pk)
    chat.refresh_from_db()
    dropped = entry_of(chat)
    assert chat.status == "queued"
    assert (dropped.stage, dropped.reason) == (follow_up, "dropped")
    first.refresh_from_db()
    assert first.outcome == "abandoned"
    [event] = chat.flow.filter(kind="dropped")
    assert (event.data["from_stage"], event.data["to_stage"]) == ("Broadcast", "Follow-up")
    assert event.data["why"] == "visitor ended the chat"
    assert chat.messages.filter(event="dropped").get().text == (
        "You left the queue. Someone from Follow-up will get back to you."
    )


def test_a_gone_visitor_is_dropped_once_then_waits_for_the_follow_up(desk, follow_up):
    chat = start("Orders")
    ChatSession.objects.filter(pk=chat.pk).update(
        visitor_seen_at=timezone.now() - timedelta(hours=1)
    )
    assert tasks.sweep_gone_visitors() == 1
    assert entry_of(chat).stage == follow_up
    assert tasks.sweep_gone_visitors() == 0  # already dropped: not abandoned by the sweep
    assert services.abandon_if_visitor_gone(chat_id=chat.pk, seen_before=timezone.now()) is False
    services.end_chat_by_visitor(chat_id=chat.pk)  # leaving the drop stage: no second drop
    chat.refresh_from_db()
    assert chat.status == "abandoned"
    assert chat.flow.filter(kind="dropped").count() == 1


def test_without_a_drop_stage_the_chat_ends_abandoned(desk):
    chat = start("Orders")
    services.end_chat_by_visitor(chat_id=chat.pk)
    chat.refresh_from_db()
    assert chat.status == "abandoned"
    assert not chat.flow.filter(kind="dropped").exists()
    assert chat.flow.filter(kind="abandoned").exists()


def test_a_chat_active_with_an_agent_is_not_dropped(desk, follow_up):
    services.set_presence(agent=desk.ann, presence="online")
    chat = start("Orders")
    from escalation.models import Offer

    offer = Offer.objects.get(chat=chat, agent=desk.ann)
    services.accept_offer(offer_id=offer.pk, agent=desk.ann)
    services.end_chat_by_visitor(chat_id=chat.pk)
    chat.refresh_from_db()
    assert chat.status == "ended"


# --- Every estimate shown is stored ---------------------------------------------------------------


def test_the_estimate_of_the_queued_notice_is_stored(l1_setup):
    chat = services.start_chat(
        visitor_name="V",
        visitor_email="",
        topic_name="Billing",
        first_message="x",
        visitor_context={},
    )
    entry = entry_of(chat)
    assert WaitEstimate.objects.filter(entry=entry, position=1).count() == 1
