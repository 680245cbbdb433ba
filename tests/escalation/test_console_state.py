"""The console's lists (queue, open chats, offers) read in a fixed number of queries, whatever
the length of the queue, and say the same as the one-chat selectors they replaced."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from escalation import frames, selectors, services
from escalation.frames import console_state
from escalation.models import Agent, QueueEntry
from escalation.services import post_visitor_message

pytestmark = pytest.mark.django_db


def agent(username: str) -> Agent:
    return Agent.objects.get(user__username=username)


def escalated_to_l2_billing(count: int, first: int = 0) -> list[int]:
    """`count` chats taken by Alex at L1 and escalated to L2 Billing, where nobody is online."""
    services.set_presence(agent=agent("alex"), presence=Agent.Presence.ONLINE)
    chat_ids = []
    for i in range(first, first + count):
        chat = services.start_chat(
            visitor_name=f"Visitor {i}",
            visitor_email="",
            topic_name="Billing",
            first_message="Help",
            visitor_context={},
        )
        services.escalate_chat(
            chat_id=chat.pk, agent=agent("alex"), keyword="billing", note=f"Invoice {i}"
        )
        chat_ids.append(chat.pk)
    return chat_ids


def queries_for_console(who: Agent) -> int:
    with CaptureQueriesContext(connection) as captured:
        console_state(agent=who)
    return len(captured)


def test_the_console_reads_the_same_number_of_queries_for_2_or_12_waiting_chats(demo):
    sam = agent("sam")
    escalated_to_l2_billing(2)
    few = queries_for_console(sam)
    escalated_to_l2_billing(10, first=2)
    assert len(console_state(agent=sam).queue) == 12
    assert queries_for_console(sam) == few


def test_the_queue_lists_places_paths_and_hand_overs_as_the_one_chat_selectors_do(demo):
    chat_ids = escalated_to_l2_billing(4)
    rows = console_state(agent=agent("sam")).queue
    assert [row["chat"] for row in rows] == chat_ids  # the longest waiting first
    assert [row["position"] for row in rows] == [1, 2, 3, 4]
    for i, row in enumerate(rows):
        entry = QueueEntry.objects.get(chat_id=row["chat"], left_at__isnull=True)
        assert row["position"] == selectors.queue_position(entry=entry)
        assert row["tier_path"] == selectors.tier_path(chat_id=row["chat"])
        assert len(row["tier_path"]) == 2  # tier 1, then tier 2
        assert row["handover"] == frames.latest_handover(chat_id=row["chat"])
        assert row["handover"]["note"] == f"Invoice {i}"
        assert row["handover"]["from_agent"] == "Alex"


def test_open_chats_count_each_chats_unread_visitor_messages(demo):
    first, second = escalated_to_l2_billing(2)
    sam = agent("sam")
    services.set_presence(agent=sam, presence=Agent.Presence.ONLINE)
    for chat_id in (first, second):
        services.take_chat(chat_id=chat_id, agent=sam)
    post_visitor_message(chat_id=first, text="one")
    post_visitor_message(chat_id=first, text="two")
    post_visitor_message(chat_id=second, text="three")
    last = post_visitor_message(chat_id=second, text="four")
    services.mark_read(chat_id=second, agent=sam, seq=last.seq - 1)
    chats = {row["chat"]: row for row in console_state(agent=sam).chats}
    assert set(chats) == {first, second}
    # Unread: every visitor message after what Sam marked read ("Help" counts for the first).
    assert chats[first]["unread"] == 3
    assert chats[second]["unread"] == 1
    assert chats[first]["tier_path"] == selectors.tier_path(chat_id=first)
