"""Routing services against the database: start, queue, take, assign by policy, presence, end."""

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.exceptions import ChatClosed, ChatNotFound
from chat.models import ChatSession, FlowEvent, Message
from escalation import services
from escalation.exceptions import (
    AgentNotOnline,
    AlreadyTaken,
    AtCapacity,
    NotYourChat,
    UnknownTopic,
)
from escalation.models import Agent, Assignment, QueueEntry, RoutingPolicy
from escalation.tasks import sweep_gone_visitors
from tests.factories import AgentFactory, UserFactory

pytestmark = pytest.mark.django_db


def start(
    name: str = "Carol", topic: str = "Billing", text: str = "My invoice is wrong"
) -> ChatSession:
    chat = services.start_chat(
        visitor_name=name,
        visitor_email="carol@example.com",
        topic_name=topic,
        first_message=text,
        visitor_context={"page": "/pricing"},
    )
    return ChatSession.objects.select_related("route__agent").get(pk=chat.pk)  # fresh, as stored


def transcript(chat: ChatSession) -> list[tuple[int, int | None, str, str]]:
    return [(m.seq, m.public_seq, m.kind, m.text) for m in chat.messages.order_by("seq")]


def test_start_chat_queues_at_the_entry_stage_with_the_first_message_and_notice(l1_setup):
    chat = start()
    chat.refresh_from_db()
    assert chat.status == ChatSession.Status.QUEUED
    rows = transcript(chat)
    assert rows[0] == (1, 1, "visitor", "My invoice is wrong")
    assert rows[1][2] == "system"
    assert rows[1][3] == (
        "Thanks, Carol. You are in the queue for L1; an agent will be with you soon."
    )
    entry = QueueEntry.objects.get(chat=chat)
    assert entry.stage == l1_setup.l1 and entry.left_at is None
    assert entry.deadline == entry.entered_at + timedelta(seconds=300)
    assert list(chat.flow.values_list("kind", flat=True)) == ["created", "queued"]
    assert chat.route.stage == l1_setup.l1 and chat.route.tier == l1_setup.t1


def test_start_chat_refuses_an_unknown_topic(l1_setup):
    with pytest.raises(UnknownTopic):
        start(topic="Nope")
    assert not ChatSession.objects.exists()


def test_start_chat_refuses_an_empty_first_message(l1_setup):
    from chat.exceptions import InvalidMessage

    with pytest.raises(InvalidMessage, match="empty"):
        start(text="   ")
    assert not ChatSession.objects.exists()


def test_the_stage_override_of_a_template_is_used(l1_setup):
    from escalation.models import MessageTemplate

    MessageTemplate.objects.create(event="queued", stage=l1_setup.l1, text="Hang on, {visitor}!")
    chat = start()
    assert transcript(chat)[1][3] == "Hang on, Carol!"


def test_an_agent_takes_a_waiting_chat(alice_agent):
    chat = start()
    assignment = services.take_chat(chat_id=chat.pk, agent=alice_agent)
    chat.refresh_from_db()
    assert chat.status == ChatSession.Status.ACTIVE
    assert assignment.agent == alice_agent and assignment.tier.level == 1
    assert transcript(chat)[-1][3] == "Alice from L1 General joined the chat."
    assert chat.route.agent == alice_agent and chat.route.entry is None
    entry = QueueEntry.objects.get(chat=chat)
    assert entry.outcome == QueueEntry.Outcome.TAKEN and entry.left_at is not None
    assert "assigned" in chat.flow.values_list("kind", flat=True)


def test_taking_a_taken_chat_says_already_taken(alice_agent, l1_setup):
    other = AgentFactory(member_of=[l1_setup.g1])
    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    with pytest.raises(AlreadyTaken, match="already taken"):
        services.take_chat(chat_id=chat.pk, agent=other)
    assert Assignment.objects.filter(chat=chat).count() == 1


def test_an_agent_cannot_take_from_another_groups_queue(bob_agent_other_queue):
    chat = start()
    with pytest.raises(ChatNotFound):  # as for a chat that does not exist
        services.take_chat(chat_id=chat.pk, agent=bob_agent_other_queue)


@pytest.mark.parametrize("presence", [Agent.Presence.AWAY, Agent.Presence.OFFLINE])
def test_an_agent_who_is_not_online_cannot_take(alice_agent, presence):
    services.set_presence(agent=alice_agent, presence=presence)
    chat = start()
    with pytest.raises(AgentNotOnline):
        services.take_chat(chat_id=chat.pk, agent=alice_agent)


def test_capacity_is_enforced_on_take(alice_agent):
    alice_agent.capacity = 1
    alice_agent.save()
    first, second = start("A"), start("B")
    services.take_chat(chat_id=first.pk, agent=alice_agent)
    with pytest.raises(AtCapacity):
        services.take_chat(chat_id=second.pk, agent=alice_agent)


def test_capacity_defaults_to_the_groups_default(alice_agent, l1_setup):
    l1_setup.g1.default_capacity = 2
    l1_setup.g1.save()
    chats = [start(str(i)) for i in range(3)]
    services.take_chat(chat_id=chats[0].pk, agent=alice_agent)
    services.take_chat(chat_id=chats[1].pk, agent=alice_agent)
    with pytest.raises(AtCapacity):
        services.take_chat(chat_id=chats[2].pk, agent=alice_agent)


def auto_group(l1_setup, policy):
    l1_setup.g1.routing_policy = policy
    l1_setup.g1.default_capacity = 5
    l1_setup.g1.save()


def test_round_robin_assigns_to_the_agent_assigned_longest_ago(l1_setup):
    auto_group(l1_setup, RoutingPolicy.ROUND_ROBIN)
    a = AgentFactory(display_name="A", member_of=[l1_setup.g1])
    b = AgentFactory(display_name="B", member_of=[l1_setup.g1])
    Agent.objects.filter(pk=a.pk).update(last_assigned_at=timezone.now() - timedelta(minutes=1))
    Agent.objects.filter(pk=b.pk).update(last_assigned_at=timezone.now() - timedelta(minutes=5))
    holders = [start(str(i)).route.agent.display_name for i in range(4)]
    assert holders == ["B", "A", "B", "A"]


def test_least_busy_assigns_to_the_agent_with_fewest_chats(l1_setup):
    l1_setup.g1.default_capacity = 5
    l1_setup.g1.save()
    a = AgentFactory(display_name="A", member_of=[l1_setup.g1])
    AgentFactory(display_name="B", member_of=[l1_setup.g1])
    for name in ["a1", "a2"]:  # manual pick first: A takes two chats by hand
        services.take_chat(chat_id=start(name).pk, agent=a)
    auto_group(l1_setup, RoutingPolicy.LEAST_BUSY)
    holders = [start(str(i)).route.agent.display_name for i in range(3)]
    # B (0 chats), B (1 vs 2), then a tie at 2-2 goes to the one assigned longest ago: A.
    assert holders == ["B", "B", "A"]


def test_automatic_routing_skips_away_offline_and_full_agents(l1_setup):
    auto_group(l1_setup, RoutingPolicy.ROUND_ROBIN)
    AgentFactory(display_name="Away", member_of=[l1_setup.g1], presence=Agent.Presence.AWAY)
    AgentFactory(display_name="Off", member_of=[l1_setup.g1], presence=Agent.Presence.OFFLINE)
    full = AgentFactory(display_name="Full", member_of=[l1_setup.g1], capacity=1)
    start("first")  # Full takes its one chat
    chat = start("second")
    chat.refresh_from_db()
    assert chat.status == ChatSession.Status.QUEUED
    assert Assignment.objects.filter(agent=full).count() == 1


def test_an_agent_going_online_gets_waiting_chats(l1_setup):
    auto_group(l1_setup, RoutingPolicy.LEAST_BUSY)
    agent = AgentFactory(member_of=[l1_setup.g1], presence=Agent.Presence.OFFLINE)
    chat = start()
    assert chat.route.agent is None
    services.set_presence(agent=agent, presence=Agent.Presence.ONLINE)
    chat.route.refresh_from_db()
    assert chat.route.agent == agent


def test_going_offline_keeps_the_chats_held(alice_agent):
    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    services.set_presence(agent=alice_agent, presence=Agent.Presence.OFFLINE)
    message = services.post_agent_message(chat_id=chat.pk, agent=alice_agent, text="Still here")
    assert message.kind == Message.Kind.AGENT


def test_ending_a_chat_frees_capacity_for_the_next_in_line(l1_setup):
    auto_group(l1_setup, RoutingPolicy.ROUND_ROBIN)
    agent = AgentFactory(member_of=[l1_setup.g1], capacity=1)
    first, second = start("first"), start("second")
    assert first.route.agent == agent
    services.end_chat_by_agent(chat_id=first.pk, agent=agent)
    first.refresh_from_db()
    assert first.status == ChatSession.Status.ENDED
    assert Assignment.objects.get(chat=first).end_reason == Assignment.EndReason.RESOLVED
    second.route.refresh_from_db()
    assert second.route.agent == agent


def test_only_the_holder_may_end_or_write(alice_agent, l1_setup):
    other = AgentFactory(member_of=[l1_setup.g1])
    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    with pytest.raises(NotYourChat):
        services.end_chat_by_agent(chat_id=chat.pk, agent=other)
    with pytest.raises(NotYourChat):
        services.post_agent_message(chat_id=chat.pk, agent=other, text="hi")


def test_an_ended_chat_takes_no_more_messages(alice_agent):
    from escalation.services import post_visitor_message

    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    services.end_chat_by_agent(chat_id=chat.pk, agent=alice_agent)
    with pytest.raises(ChatClosed):
        services.post_agent_message(chat_id=chat.pk, agent=alice_agent, text="late")
    with pytest.raises(ChatClosed):
        post_visitor_message(chat_id=chat.pk, text="late")
    with pytest.raises(ChatClosed):
        services.take_chat(chat_id=chat.pk, agent=alice_agent)


def test_a_visitor_leaving_while_queued_abandons_the_chat(l1_setup):
    chat = start()
    services.end_chat_by_visitor(chat_id=chat.pk)
    chat.refresh_from_db()
    assert chat.status == ChatSession.Status.ABANDONED
    assert QueueEntry.objects.get(chat=chat).outcome == QueueEntry.Outcome.ABANDONED
    assert "abandoned" in chat.flow.values_list("kind", flat=True)
    services.end_chat_by_visitor(chat_id=chat.pk)  # twice is harmless


def test_a_visitor_ending_an_active_chat_ends_it(alice_agent):
    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    services.end_chat_by_visitor(chat_id=chat.pk)
    chat.refresh_from_db()
    assert chat.status == ChatSession.Status.ENDED
    assert Assignment.objects.get(chat=chat).end_reason == Assignment.EndReason.VISITOR_LEFT


def test_the_sweep_abandons_chats_whose_visitor_is_gone(l1_setup, settings):
    gone, here = start("gone"), start("here")
    ChatSession.objects.filter(pk=gone.pk).update(
        visitor_seen_at=timezone.now() - timedelta(seconds=settings.VISITOR_GONE_SECONDS + 5)
    )
    assert sweep_gone_visitors() == 1
    gone.refresh_from_db(), here.refresh_from_db()
    assert gone.status == ChatSession.Status.ABANDONED
    assert here.status == ChatSession.Status.QUEUED


def test_internal_notes_take_a_seq_but_never_a_public_seq(alice_agent):
    from chat.selectors import messages_after
    from escalation.services import post_visitor_message

    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    services.post_agent_message(chat_id=chat.pk, agent=alice_agent, text="note", internal=True)
    services.post_agent_message(chat_id=chat.pk, agent=alice_agent, text="Hello Carol")
    post_visitor_message(chat_id=chat.pk, text="Hi")
    seqs = [m.seq for m in messages_after(chat_id=chat.pk, after=0, for_visitor=False)]
    public = [m.public_seq for m in messages_after(chat_id=chat.pk, after=0, for_visitor=True)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert public == list(range(1, len(public) + 1))
    visible = [m.text for m in messages_after(chat_id=chat.pk, after=0, for_visitor=True)]
    assert "note" not in visible and "Hello Carol" in visible
    assert len(seqs) == len(public) + 1


def test_a_resent_message_with_the_same_client_id_is_stored_once(alice_agent):
    from escalation.services import post_visitor_message

    chat = start()
    first = post_visitor_message(chat_id=chat.pk, text="once", client_id="abc")
    again = post_visitor_message(chat_id=chat.pk, text="once", client_id="abc")
    assert first.pk == again.pk
    assert chat.messages.filter(text="once").count() == 1


def test_resync_returns_exactly_what_was_missed_in_order(alice_agent):
    from chat.selectors import messages_after

    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    seen = chat.messages.order_by("-public_seq").values_list("public_seq", flat=True).first()
    for text in ["one", "two", "three"]:
        services.post_agent_message(chat_id=chat.pk, agent=alice_agent, text=text)
    missed = messages_after(chat_id=chat.pk, after=seen, for_visitor=True)
    assert [m.text for m in missed] == ["one", "two", "three"]
    assert [m.public_seq for m in missed] == [seen + 1, seen + 2, seen + 3]


def test_text_is_cleaned_but_kept(alice_agent):
    from escalation.services import post_visitor_message

    chat = start()
    message = post_visitor_message(
        chat_id=chat.pk, text="  a\x00b <script>alert(1)</script>\ud800 "
    )
    assert message.text == "ab <script>alert(1)</script>\ufffd"


def test_oversized_text_is_refused_with_the_limit(l1_setup, settings):
    from chat.exceptions import InvalidMessage
    from escalation.services import post_visitor_message

    chat = start()
    with pytest.raises(InvalidMessage, match=f"the limit is {settings.MESSAGE_MAX_CHARS}"):
        post_visitor_message(chat_id=chat.pk, text="x" * (settings.MESSAGE_MAX_CHARS + 1))
    assert post_visitor_message(chat_id=chat.pk, text="x" * settings.MESSAGE_MAX_CHARS)


def test_flow_records_the_whole_life_of_a_chat(alice_agent):
    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    services.post_agent_message(chat_id=chat.pk, agent=alice_agent, text="Hello")
    services.end_chat_by_agent(chat_id=chat.pk, agent=alice_agent)
    kinds = list(FlowEvent.objects.filter(chat=chat).values_list("kind", flat=True))
    assert kinds == ["created", "queued", "assigned", "first_agent_message", "ended"]


def test_an_inactive_user_is_never_assigned(l1_setup):
    auto_group(l1_setup, RoutingPolicy.ROUND_ROBIN)
    AgentFactory(user=UserFactory(is_active=False), member_of=[l1_setup.g1])
    chat = start()
    assert chat.route.agent is None


def test_the_first_reply_is_recorded_once_per_agent_and_chat(alice_agent):
    from chat.models import FlowEvent

    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    services.post_agent_message(chat_id=chat.pk, agent=alice_agent, text="note", internal=True)
    for text in ("Hello", "Anything else?", "Bye"):
        services.post_agent_message(chat_id=chat.pk, agent=alice_agent, text=text)
    firsts = FlowEvent.objects.filter(chat=chat, kind=FlowEvent.Kind.FIRST_AGENT_MESSAGE)
    assert [event.data["agent"] for event in firsts] == ["Alice"]
    services.return_to_queue(chat_id=chat.pk, agent=alice_agent)
    services.take_chat(chat_id=chat.pk, agent=alice_agent)  # her chat again: not a first reply
    services.post_agent_message(chat_id=chat.pk, agent=alice_agent, text="Back again")
    assert firsts.count() == 1
