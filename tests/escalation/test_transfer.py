"""Escalation, wait-timeouts and every fallback kind, on the shipped demo configuration.

Demo (escalation/demo.py): Support, stage L1 General (round robin) → options billing (stage L2
Billing, queue anyway), technical (stage L2 Technical, fall back at once), engineering (group L3
Engineering, refuse), seniors (agents Sam + Kim, refuse). Timeouts: L1 → leave a message,
L2 Billing → stage L2 Technical, L2 Technical → previous tier, L3 → end; Sales → group L2 Billing.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.exceptions import ChatClosed
from chat.models import ChatSession
from escalation import services
from escalation.exceptions import (
    NobodyAvailable,
    NoteRequired,
    NotYourChat,
    OfflineMessageNotOffered,
    UnknownReason,
    UnknownTarget,
)
from escalation.models import (
    MAX_FALLBACK_HOPS,
    Agent,
    Assignment,
    ChatRoute,
    Escalation,
    FallbackAction,
    OfflineMessage,
    QueueEntry,
    Stage,
)
from escalation.selectors import offers_message_form

pytestmark = pytest.mark.django_db


def agent(username: str) -> Agent:
    return Agent.objects.get(user__username=username)


def online(*usernames: str) -> None:
    for name in usernames:
        services.set_presence(agent=agent(name), presence=Agent.Presence.ONLINE)


def start(topic: str = "Billing") -> ChatSession:
    chat = services.start_chat(
        visitor_name="Carol",
        visitor_email="carol@example.com",
        topic_name=topic,
        first_message="Help",
        visitor_context={},
    )
    return chat


def route(chat: ChatSession) -> ChatRoute:
    return ChatRoute.objects.select_related("stage", "tier", "agent", "entry").get(chat=chat)


def held_by_alex() -> ChatSession:
    online("alex")
    chat = start()
    assert route(chat).agent == agent("alex")
    return chat


def notices(chat: ChatSession) -> list[str]:
    return list(chat.messages.filter(kind="system").order_by("seq").values_list("text", flat=True))


def expire(chat: ChatSession) -> str:
    entry = route(chat).entry
    QueueEntry.objects.filter(pk=entry.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    return services.handle_wait_timeout(entry_id=entry.pk)


def test_escalate_to_a_stage_hands_over_in_one_step(demo):
    chat = held_by_alex()
    escalation = services.escalate_chat(
        chat_id=chat.pk,
        agent=agent("alex"),
        keyword="billing",
        note="Disputed invoice, account checked",
        reason="Billing question",
    )
    chat.refresh_from_db()
    r = route(chat)
    assert chat.status == ChatSession.Status.QUEUED
    assert (r.stage.name, r.tier.level, r.agent) == ("L2 Billing", 2, None)
    assignment = Assignment.objects.get(chat=chat)
    assert assignment.end_reason == Assignment.EndReason.ESCALATED and assignment.ended_at
    assert (escalation.from_stage.name, escalation.from_tier.level, escalation.from_agent) == (
        "L1 General",
        1,
        agent("alex"),
    )
    assert (escalation.to_stage.name, escalation.target_label, escalation.reason) == (
        "L2 Billing",
        "L2 Billing",
        "Billing question",
    )
    assert escalation.note == "Disputed invoice, account checked"
    assert escalation.requested_by == Escalation.RequestedBy.COMMAND
    assert escalation.outcome == Escalation.Outcome.WAITING
    assert notices(chat)[-2:] == [
        "Alex left the chat.",
        "You are being transferred to the billing team. Estimated wait: not known yet.",
    ]
    assert list(chat.flow.values_list("kind", flat=True))[-3:] == [
        "agent_left",
        "queued",
        "escalated",
    ]
    assert r.entry.waiting_since == chat.created_at  # keeps its place by original waiting time


def test_the_receiver_takes_it_and_the_escalation_is_marked_taken(demo):
    chat = held_by_alex()
    escalation = services.escalate_chat(
        chat_id=chat.pk, agent=agent("alex"), keyword="billing", note="n"
    )
    online("sam")
    services.take_chat(chat_id=chat.pk, agent=agent("sam"))
    escalation.refresh_from_db()
    assert escalation.outcome == Escalation.Outcome.TAKEN
    assert escalation.taken_by == agent("sam") and escalation.taken_at
    assert notices(chat)[-1] == "Sam from the billing team joined the chat."
    assert Assignment.objects.get(chat=chat, ended_at=None).tier.level == 2


def test_priority_order_puts_escalated_chats_ahead(demo):
    Stage.objects.filter(name="L2 Billing").update(escalated_order=Stage.EscalatedOrder.PRIORITY)
    chat = held_by_alex()
    services.escalate_chat(chat_id=chat.pk, agent=agent("alex"), keyword="billing", note="n")
    assert route(chat).entry.priority == 1


def test_refuse_rule_with_nobody_online_keeps_the_chat_with_the_agent(demo):
    chat = held_by_alex()
    with pytest.raises(NobodyAvailable, match="Nobody in L3 Engineering is online"):
        services.escalate_chat(
            chat_id=chat.pk, agent=agent("alex"), keyword="engineering", note="n"
        )
    assert route(chat).agent == agent("alex")
    assert not Escalation.objects.exists()
    assert Assignment.objects.get(chat=chat).ended_at is None


def test_escalate_to_a_group_narrows_the_queue_to_that_group(demo):
    online("jordan")
    chat = held_by_alex()
    services.escalate_chat(chat_id=chat.pk, agent=agent("alex"), keyword="engineering", note="n")
    entry = route(chat).entry
    assert (entry.stage.name, entry.group.name, entry.tier.level) == (
        "L3 Engineering",
        "L3 Engineering",
        3,
    )
    from chat.exceptions import ChatNotFound

    online("kim")
    with pytest.raises(ChatNotFound):
        services.take_chat(chat_id=chat.pk, agent=agent("kim"))
    services.take_chat(chat_id=chat.pk, agent=agent("jordan"))


def test_escalate_to_named_agents_only_they_may_take(demo):
    online("sam", "taylor")
    chat = held_by_alex()
    services.escalate_chat(
        chat_id=chat.pk, agent=agent("alex"), keyword="seniors"
    )  # no note needed
    entry = route(chat).entry
    assert set(entry.agents.values_list("display_name", flat=True)) == {"Sam", "Kim"}
    from chat.exceptions import ChatNotFound

    with pytest.raises(ChatNotFound):
        services.take_chat(chat_id=chat.pk, agent=agent("taylor"))
    services.take_chat(chat_id=chat.pk, agent=agent("sam"))


def test_named_agents_refused_when_none_is_online_and_free(demo):
    chat = held_by_alex()
    with pytest.raises(NobodyAvailable):
        services.escalate_chat(chat_id=chat.pk, agent=agent("alex"), keyword="seniors")


def test_fallback_rule_with_nobody_online_falls_back_at_once(demo):
    """technical: nobody in L2 Technical → its fallback (previous tier) runs at once → Alex."""
    chat = held_by_alex()
    services.escalate_chat(chat_id=chat.pk, agent=agent("alex"), keyword="technical", note="n")
    r = route(chat)
    assert r.agent == agent("alex") and r.tier.level == 1
    kinds = list(chat.flow.values_list("kind", flat=True))
    assert kinds[-5:] == ["queued", "escalated", "queued", "fell_back", "assigned"]
    assert notices(chat)[-2:] == [
        "We are taking you back to Alex.",
        "Alex from our support team joined the chat.",
    ]


@pytest.mark.parametrize(
    ("keyword", "note", "reason", "error", "text"),
    [
        (
            "",
            "n",
            "",
            UnknownTarget,
            "Usage: /escalate <keyword> <hand-over note>. Targets: billing",
        ),
        ("nope", "n", "", UnknownTarget, "Unknown target “nope”."),
        ("billing", "  ", "", NoteRequired, "A hand-over note is required: /escalate billing"),
        ("billing", "n", "Bored", UnknownReason, "Choose one of the listed reasons."),
    ],
)
def test_bad_escalations_are_refused_with_a_clear_message(demo, keyword, note, reason, error, text):
    chat = held_by_alex()
    with pytest.raises(error) as caught:
        services.escalate_chat(
            chat_id=chat.pk, agent=agent("alex"), keyword=keyword, note=note, reason=reason
        )
    assert text in caught.value.message
    assert route(chat).agent == agent("alex")


def test_only_the_holder_of_an_open_chat_may_escalate(demo):
    chat = held_by_alex()
    online("blair")
    with pytest.raises(NotYourChat):
        services.escalate_chat(chat_id=chat.pk, agent=agent("blair"), keyword="billing", note="n")
    services.escalate_chat(chat_id=chat.pk, agent=agent("alex"), keyword="billing", note="n")
    with pytest.raises(NotYourChat):  # escalating again: no longer held
        services.escalate_chat(chat_id=chat.pk, agent=agent("alex"), keyword="billing", note="n")
    services.end_chat_by_visitor(chat_id=chat.pk)
    with pytest.raises(ChatClosed):
        services.escalate_chat(chat_id=chat.pk, agent=agent("alex"), keyword="billing", note="n")


# --- Timeouts and fallbacks ---------------------------------------------------------------------


def test_a_timer_that_wakes_early_changes_nothing(demo):
    chat = start()
    assert services.handle_wait_timeout(entry_id=route(chat).entry.pk) == "early"
    assert route(chat).stage.name == "L1 General"


def test_timeout_at_l1_offers_the_leave_a_message_form(demo):
    chat = start()
    assert expire(chat) == "fell back"
    chat.refresh_from_db()
    assert chat.status == ChatSession.Status.MISSED
    assert notices(chat)[-1] == (
        "Sorry, nobody is available right now. Please leave a message and we will get back to you."
    )
    assert offers_message_form(chat)
    services.leave_offline_message(chat_id=chat.pk, text="Please call me back")
    assert OfflineMessage.objects.get(chat=chat).email == "carol@example.com"
    assert notices(chat)[-1] == "Thank you, we have your message and will reply by e-mail."
    with pytest.raises(OfflineMessageNotOffered):
        services.leave_offline_message(chat_id=chat.pk, text="again")
    kinds = list(chat.flow.values_list("kind", flat=True))
    assert kinds[-4:] == ["timed_out", "fell_back", "ended", "left_message"]


def test_a_duplicate_or_late_timer_changes_nothing(demo):
    chat = start()
    entry_id = route(chat).entry.pk
    assert expire(chat) == "fell back"
    count = chat.messages.count()
    assert services.handle_wait_timeout(entry_id=entry_id) == "stale"
    assert chat.messages.count() == count


def test_a_timeout_after_an_agent_took_the_chat_changes_nothing(demo):
    chat = start()
    entry_id = route(chat).entry.pk
    online("alex")  # round robin gives Alex the waiting chat
    QueueEntry.objects.filter(pk=entry_id).update(deadline=timezone.now() - timedelta(seconds=5))
    assert services.handle_wait_timeout(entry_id=entry_id) == "stale"
    chat.refresh_from_db()
    assert chat.status == ChatSession.Status.ACTIVE


def test_timeout_at_l2_billing_moves_to_l2_technical(demo):
    chat = held_by_alex()
    services.escalate_chat(chat_id=chat.pk, agent=agent("alex"), keyword="billing", note="n")
    escalation = Escalation.objects.get()
    assert expire(chat) == "fell back"
    r = route(chat)
    assert r.stage.name == "L2 Technical"
    assert notices(chat)[-2:] == [
        "Nobody from the billing team could take your chat yet.",
        "We are moving your chat to technical support.",
    ]
    escalation.refresh_from_db()
    assert escalation.outcome == Escalation.Outcome.TIMED_OUT
    moved = Escalation.objects.exclude(pk=escalation.pk).get()
    assert moved.requested_by == Escalation.RequestedBy.TIMEOUT and moved.from_agent is None


def test_timeout_at_l2_technical_goes_back_to_the_previous_tier_group_when_agent_is_away(demo):
    from escalation.models import AgentGroup

    AgentGroup.objects.filter(name="L2 Technical").update(routing_policy="manual")
    online("kim")  # someone in L2 Technical, so "technical" queues instead of falling back
    chat = held_by_alex()
    services.escalate_chat(chat_id=chat.pk, agent=agent("alex"), keyword="technical", note="n")
    services.set_presence(agent=agent("alex"), presence=Agent.Presence.AWAY)
    services.set_presence(agent=agent("kim"), presence=Agent.Presence.AWAY)
    assert expire(chat) == "fell back"
    entry = route(chat).entry
    assert (entry.stage.name, entry.group.name, entry.tier.level) == ("L1 General", "L1 General", 1)
    assert notices(chat)[-1] == "We are taking you back to our support team."


def test_timeout_at_l3_ends_the_chat_as_missed(demo):
    online("jordan")
    chat = held_by_alex()
    services.escalate_chat(chat_id=chat.pk, agent=agent("alex"), keyword="engineering", note="n")
    services.set_presence(agent=agent("jordan"), presence=Agent.Presence.OFFLINE)
    assert expire(chat) == "fell back"
    chat.refresh_from_db()
    assert chat.status == ChatSession.Status.MISSED
    assert notices(chat)[-1] == "Sorry, nobody could take your chat. The chat has ended."
    assert not offers_message_form(chat)


def test_sales_falls_back_to_the_billing_group_then_to_a_message(demo):
    chat = start(topic="Buying")
    assert expire(chat) == "fell back"
    entry = route(chat).entry
    assert (entry.stage.name, entry.group.name) == ("Sales", "L2 Billing")
    assert notices(chat)[-1] == "We are moving your chat to the billing team."
    assert expire(chat) == "fell back"
    chat.refresh_from_db()
    assert chat.status == ChatSession.Status.MISSED and offers_message_form(chat)


def test_a_fallback_loop_made_outside_admin_stops_at_the_hop_limit(demo):
    a, b = Stage.objects.get(name="L2 Billing"), Stage.objects.get(name="L2 Technical")
    Stage.objects.filter(pk=b.pk).update(fallback_action=FallbackAction.STAGE, fallback_stage=a)
    chat = held_by_alex()
    services.escalate_chat(chat_id=chat.pk, agent=agent("alex"), keyword="billing", note="n")
    for _ in range(MAX_FALLBACK_HOPS):
        assert expire(chat) == "fell back"
    assert route(chat).entry is not None
    assert expire(chat) == "fell back"
    chat.refresh_from_db()
    assert chat.status == ChatSession.Status.MISSED
    assert chat.flow.filter(kind="fell_back", data__why__startswith="stopped after").exists()


def test_the_sweep_catches_overdue_entries_only(demo):
    overdue, fresh = start(), start()
    QueueEntry.objects.filter(pk=route(overdue).entry.pk).update(
        deadline=timezone.now() - timedelta(seconds=3)
    )
    assert services.sweep_overdue_entries() == 1
    overdue.refresh_from_db(), fresh.refresh_from_db()
    assert overdue.status == ChatSession.Status.MISSED
    assert fresh.status == ChatSession.Status.QUEUED
    assert services.sweep_overdue_entries() == 0


def test_a_stage_that_falls_back_at_once_when_nobody_is_there(demo):
    Stage.objects.filter(name="L1 General").update(no_agent_rule=Stage.NoAgentRule.FALLBACK)
    chat = start()
    chat.refresh_from_db()
    assert chat.status == ChatSession.Status.MISSED and offers_message_form(chat)


def test_place_in_line_after_a_transfer_uses_the_new_wait_text(demo):
    from escalation.estimates import WaitRange
    from escalation.frames import queue_position_payload

    chat = held_by_alex()
    services.escalate_chat(chat_id=chat.pk, agent=agent("alex"), keyword="billing", note="n")
    entry = route(chat).entry
    payload = queue_position_payload(entry=entry, position=1, estimate=WaitRange(60, 180))
    assert payload.text == "You are number 1 in line for the billing team, about 1–3 minutes."


def test_the_handover_shown_is_the_agents_not_a_later_fallbacks(demo):
    from escalation.frames import latest_handover

    chat = held_by_alex()
    services.escalate_chat(
        chat_id=chat.pk, agent=agent("alex"), keyword="billing", note="Refund over limit"
    )
    expire(chat)  # L2 Billing → L2 Technical, a move without a note
    handover = latest_handover(chat_id=chat.pk)
    assert (handover["from_agent"], handover["note"]) == ("Alex", "Refund over limit")


def test_a_chat_narrowed_to_a_manual_group_is_not_auto_assigned(demo):
    """Sales (L1 General, round robin) falls back to the L2 Billing group, which picks by hand."""
    online("sam")
    chat = start(topic="Buying")
    assert expire(chat) == "fell back"
    assert route(chat).agent is None  # waits for Sam to take it
    services.take_chat(chat_id=chat.pk, agent=agent("sam"))


def test_a_chat_narrowed_to_an_automatic_group_is_assigned_when_its_agent_comes_online(demo):
    from escalation.models import AgentGroup

    AgentGroup.objects.filter(name="L2 Billing").update(routing_policy="round_robin")
    chat = start(topic="Buying")
    assert expire(chat) == "fell back"
    assert route(chat).agent is None
    online("sam")
    assert route(chat).agent == agent("sam")


def test_returning_a_chat_keeps_its_group(demo):
    online("jordan")
    chat = held_by_alex()
    services.escalate_chat(chat_id=chat.pk, agent=agent("alex"), keyword="engineering", note="n")
    services.take_chat(chat_id=chat.pk, agent=agent("jordan"))
    services.set_presence(agent=agent("jordan"), presence="away")
    entry = services.return_to_queue(chat_id=chat.pk, agent=agent("jordan"))
    assert (entry.group.name, entry.tier.level, entry.reason) == ("L3 Engineering", 3, "returned")
