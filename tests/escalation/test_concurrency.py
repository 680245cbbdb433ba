"""Two agents act on one chat at the same instant, on two real PostgreSQL connections."""

import threading

import pytest
from django.db import connection

from chat.exceptions import ChatError
from escalation import services
from escalation.models import Assignment
from tests.factories import AgentFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ROUNDS = 50  # 50 rounds of each race: enough to hit the interleavings


def race(*actions):
    """Run the actions at once (a barrier releases them together); return each one's outcome."""
    barrier = threading.Barrier(len(actions))
    outcomes: list[str] = [""] * len(actions)

    def run(i, action):
        try:
            barrier.wait(timeout=10)
            action()
            outcomes[i] = "won"
        except ChatError as exc:
            outcomes[i] = exc.code
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return outcomes


def test_two_agents_taking_the_same_chat_exactly_one_wins(l1_setup):
    alice = AgentFactory(display_name="Alice", member_of=[l1_setup.g1], capacity=ROUNDS)
    bob = AgentFactory(display_name="Bob", member_of=[l1_setup.g1], capacity=ROUNDS)
    for _ in range(ROUNDS):
        chat = services.start_chat(
            visitor_name="V",
            visitor_email="",
            topic_name="Billing",
            first_message="hi",
            visitor_context={},
        )
        outcomes = race(
            lambda chat=chat: services.take_chat(chat_id=chat.pk, agent=alice),
            lambda chat=chat: services.take_chat(chat_id=chat.pk, agent=bob),
        )
        assert sorted(outcomes) == ["already_taken", "won"]
        assert Assignment.objects.filter(chat=chat).count() == 1
        assert list(chat.flow.values_list("kind", flat=True)) == ["created", "queued", "assigned"]
        assert chat.messages.filter(event="agent_joined").count() == 1


def test_one_agent_at_capacity_one_taking_two_chats_at_once_gets_one(l1_setup):
    alice = AgentFactory(display_name="Alice", member_of=[l1_setup.g1], capacity=1)
    for _ in range(10):
        a = services.start_chat(
            visitor_name="A",
            visitor_email="",
            topic_name="Billing",
            first_message="hi",
            visitor_context={},
        )
        b = services.start_chat(
            visitor_name="B",
            visitor_email="",
            topic_name="Billing",
            first_message="hi",
            visitor_context={},
        )
        outcomes = race(
            lambda a=a: services.take_chat(chat_id=a.pk, agent=alice),
            lambda b=b: services.take_chat(chat_id=b.pk, agent=alice),
        )
        assert sorted(outcomes) == ["at_capacity", "won"]
        held = Assignment.objects.get(agent=alice, ended_at=None)
        services.end_chat_by_agent(chat_id=held.chat_id, agent=alice)
        services.end_chat_by_visitor(chat_id=a.pk if held.chat_id == b.pk else b.pk)


def test_ending_and_messaging_at_once_leave_no_half_state(l1_setup):
    alice = AgentFactory(display_name="Alice", member_of=[l1_setup.g1], capacity=ROUNDS)
    for _ in range(10):
        chat = services.start_chat(
            visitor_name="V",
            visitor_email="",
            topic_name="Billing",
            first_message="hi",
            visitor_context={},
        )
        services.take_chat(chat_id=chat.pk, agent=alice)
        outcomes = race(
            lambda chat=chat: services.end_chat_by_agent(chat_id=chat.pk, agent=alice),
            lambda chat=chat: services.post_agent_message(chat_id=chat.pk, agent=alice, text="x"),
        )
        assert outcomes[0] == "won"
        assert outcomes[1] in {"won", "chat_closed"}
        ended = chat.messages.get(event="ended")
        late = chat.messages.filter(text="x").first()
        assert late is None or late.seq < ended.seq  # nothing is written after the end


def _held_chat(l1_setup, holder):
    from escalation.models import EscalationOption

    EscalationOption.objects.get_or_create(
        stage=l1_setup.l1,
        keyword="billing",
        defaults={
            "label": "Billing",
            "target_kind": "stage",
            "target_stage": l1_setup.l2,
            "no_agent_rule": "queue",
            "note_required": False,
        },
    )
    chat = services.start_chat(
        visitor_name="V",
        visitor_email="",
        topic_name="Billing",
        first_message="hi",
        visitor_context={},
    )
    services.take_chat(chat_id=chat.pk, agent=holder)
    return chat


def test_escalating_twice_at_once_moves_the_chat_once(l1_setup):
    from escalation.models import Escalation

    alice = AgentFactory(display_name="Alice", member_of=[l1_setup.g1], capacity=ROUNDS)
    for _ in range(ROUNDS):
        chat = _held_chat(l1_setup, alice)
        outcomes = race(
            lambda chat=chat: services.escalate_chat(
                chat_id=chat.pk, agent=alice, keyword="billing"
            ),
            lambda chat=chat: services.escalate_chat(
                chat_id=chat.pk, agent=alice, keyword="billing"
            ),
        )
        assert sorted(outcomes) == ["not_your_chat", "won"]
        assert Escalation.objects.filter(chat=chat).count() == 1
        assert sorted(chat.flow.values_list("kind", flat=True)) == [
            "agent_left",
            "assigned",
            "created",
            "escalated",
            "queued",
            "queued",
        ]  # one set of flow events
        assert chat.messages.filter(event="transfer").count() == 1
        assert chat.queue_entries.filter(left_at__isnull=True).count() == 1


def test_escalating_while_the_visitor_ends_has_one_outcome(l1_setup):
    alice = AgentFactory(display_name="Alice", member_of=[l1_setup.g1], capacity=ROUNDS)
    for _ in range(15):
        chat = _held_chat(l1_setup, alice)
        outcomes = race(
            lambda chat=chat: services.escalate_chat(
                chat_id=chat.pk, agent=alice, keyword="billing"
            ),
            lambda chat=chat: services.end_chat_by_visitor(chat_id=chat.pk),
        )
        chat.refresh_from_db()
        assert outcomes[1] == "won"
        if outcomes[0] == "won":  # escalated first, then the visitor left the new queue
            assert chat.status == "abandoned"
        else:
            assert outcomes[0] == "chat_closed" and chat.status == "ended"
        assert chat.queue_entries.filter(left_at__isnull=True).count() == 0
        assert not chat.assignments.filter(ended_at__isnull=True).exists()


def test_a_timeout_racing_a_take_has_one_outcome(l1_setup):
    from datetime import timedelta

    from django.utils import timezone

    from escalation.models import QueueEntry

    bob = AgentFactory(display_name="Bob", member_of=[l1_setup.g1], capacity=ROUNDS)
    for _ in range(15):
        chat = services.start_chat(
            visitor_name="V",
            visitor_email="",
            topic_name="Billing",
            first_message="hi",
            visitor_context={},
        )
        entry = QueueEntry.objects.get(chat=chat, left_at__isnull=True)
        QueueEntry.objects.filter(pk=entry.pk).update(
            deadline=timezone.now() - timedelta(seconds=1)
        )
        results: list[str] = []
        outcomes = race(
            lambda chat=chat: services.take_chat(chat_id=chat.pk, agent=bob),
            lambda entry=entry, results=results: results.append(
                services.handle_wait_timeout(entry_id=entry.pk)
            ),
        )
        chat.refresh_from_db()
        if outcomes[0] == "won":
            assert results == ["stale"] and chat.status == "active"
        else:
            assert results == ["fell back"] and chat.status == "missed"
        assert chat.flow.filter(kind__in=["assigned", "timed_out"]).count() == 1


def test_a_chat_that_starts_while_its_agent_comes_online_is_not_lost(demo):
    """The agent comes online (not yet committed: its dispatch sees no chat) while a chat starts
    and commits (its dispatch skips the agent, whose row the other transaction holds). Neither
    assigns; the look again after the agent's commit does."""
    from django.db import transaction

    from escalation.models import Agent
    from tests.factories import start_chat

    alex = Agent.objects.get(user__username="alex")
    started: list[int] = []

    def start() -> None:
        try:
            started.append(start_chat().pk)
        finally:
            connection.close()

    with transaction.atomic():
        services.set_presence(agent=alex, presence="online")
        visitor = threading.Thread(target=start)
        visitor.start()
        visitor.join(timeout=30)
        assert started, "the chat started while the agent's change was open"
        assert Assignment.objects.filter(chat_id=started[0]).count() == 0
    assignment = Assignment.objects.get(chat_id=started[0])
    assert assignment.agent == alex
