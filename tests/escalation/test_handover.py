"""Warm hand-overs and hands to a colleague, on the demo configuration against PostgreSQL: the
first agent stays in the chat until a receiver accepts (and, warm, takes over); nobody in time,
a decline or a cancel leaves the chat with it. Timeouts fire by calling the timer's service at the
simulated time.

Demo: Alex (L1 General, round robin) holds Carol's Billing chat; the billing option goes to stage
L2 Billing, served by Sam and Kim (Level 2)."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.utils import timezone

from chat.exceptions import ChatClosed
from chat.models import ChatSession, Message
from escalation import frames, selectors, services
from escalation.exceptions import (
    AtCapacity,
    ColleagueNotAllowed,
    HandoverClosed,
    HandoverNotFound,
    HandoverPending,
    NobodyAvailable,
    NotReceiver,
    NotYourChat,
    UnknownColleague,
)
from escalation.models import (
    Agent,
    AgentGroup,
    Assignment,
    ChatRoute,
    Escalation,
    EscalationOption,
    Handover,
    HandoverOffer,
    RoutingPolicy,
    Stage,
    Tag,
)
from escalation.services.presence import retire_disabled_agents
from reporting.selectors import (
    ReportFilter,
    chat_detail,
    escalated_chats,
    escalations,
    row_of,
)
from tests.escalation.test_transfer import agent, online, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def warm_billing(demo):
    EscalationOption.objects.filter(keyword="billing").update(
        is_warm=True, accept_timeout_seconds=60
    )
    online("alex", "sam", "kim")
    chat = start()
    assert ChatRoute.objects.get(chat=chat).agent == agent("alex")
    return chat


def request(chat, who="alex"):
    return services.escalate_chat(
        chat_id=chat.pk, agent=agent(who), keyword="billing", note="Disputed invoice"
    )


def visitor_texts(chat) -> list[str]:
    return list(
        Message.objects.filter(chat=chat, public_seq__isnull=False)
        .order_by("seq")
        .values_list("text", flat=True)
    )


def flow_texts(chat) -> list[str]:
    return [row["text"] for row in frames.flow_summary(chat_id=chat.pk)]


def test_a_warm_request_keeps_the_agent_and_offers_the_targets_available_agents(warm_billing):
    chat = warm_billing
    escalation = request(chat)
    assert escalation.warm and escalation.entry is None
    chat.refresh_from_db()
    assert chat.status == ChatSession.Status.ACTIVE
    assert ChatRoute.objects.get(chat=chat).agent == agent("alex")
    assert Assignment.objects.get(chat=chat, ended_at__isnull=True).agent == agent("alex")
    handover = Handover.objects.get(chat=chat)
    assert handover.status == Handover.Status.PENDING
    offered = set(
        HandoverOffer.objects.filter(handover=handover).values_list(
            "agent__user__username", flat=True
        )
    )
    assert offered == {"sam", "kim"}
    assert visitor_texts(chat)[-1] == (
        "Alex is bringing in someone from the billing team to help you. Stay with us."
    )
    # The receiver may open the chat's history while it is offered, with the note.
    assert selectors.agent_may_view_chat(agent=agent("sam"), chat_id=chat.pk)
    info = frames.chat_info(chat_id=chat.pk, agent=agent("sam"))
    assert info.handover_state["role"] == "offered"
    assert info.handover["note"] == "Disputed invoice"
    assert flow_texts(chat)[-1] == "Warm hand-over requested to L2 Billing"


def test_accept_joins_both_agents_and_take_over_moves_the_chat(warm_billing):
    chat = warm_billing
    request(chat)
    handover = Handover.objects.get(chat=chat)
    services.accept_handover(handover_id=handover.pk, agent=agent("sam"))
    handover.refresh_from_db()
    assert handover.status == Handover.Status.JOINED and handover.receiver == agent("sam")
    assert HandoverOffer.objects.get(handover=handover, agent=agent("kim")).status == "withdrawn"
    assert visitor_texts(chat)[-1] == "Sam from the billing team joined the chat."
    # Both write to the visitor; Alex still holds it and keeps its place.
    services.post_agent_message(chat_id=chat.pk, agent=agent("sam"), text="Hi, Sam here")
    services.post_agent_message(chat_id=chat.pk, agent=agent("alex"), text="Sam will help")
    assert selectors.agent_load(agent("alex")) == 1
    assert selectors.agent_load(agent("sam")) == 1  # the joined chat takes Sam's place too
    with pytest.raises(NotYourChat):  # only the holder ends or escalates
        services.end_chat_by_agent(chat_id=chat.pk, agent=agent("sam"))
    with pytest.raises(NotReceiver):
        services.take_over(chat_id=chat.pk, agent=agent("kim"))
    with pytest.raises(NotReceiver):
        services.take_over(chat_id=chat.pk, agent=agent("alex"))

    services.take_over(chat_id=chat.pk, agent=agent("sam"))
    route = ChatRoute.objects.select_related("stage").get(chat=chat)
    assert route.agent == agent("sam") and route.stage.name == "L2 Billing"
    alex_turn = Assignment.objects.get(chat=chat, agent=agent("alex"))
    assert alex_turn.end_reason == Assignment.EndReason.ESCALATED
    assert Assignment.objects.get(chat=chat, ended_at__isnull=True).agent == agent("sam")
    escalation = Escalation.objects.get(chat=chat)
    assert escalation.outcome == Escalation.Outcome.TAKEN and escalation.taken_by == agent("sam")
    assert visitor_texts(chat)[-1] == "Alex left the chat."
    assert flow_texts(chat)[-4:] == [
        "Sam joined",
        "Alex replied first",  # Sam's reply is not the first of Alex's turn
        "Alex left (handed over)",
        "Sam took over",
    ]
    with pytest.raises(NotYourChat):  # Alex is out
        services.post_agent_message(chat_id=chat.pk, agent=agent("alex"), text="still here?")


def test_nobody_accepting_in_time_leaves_the_chat_with_the_agent(warm_billing):
    chat = warm_billing
    request(chat)
    handover = Handover.objects.get(chat=chat)
    assert services.handle_handover_timeout(handover_id=handover.pk) == "early"
    with time_machine.travel(handover.deadline + timedelta(milliseconds=5), tick=False):
        with pytest.raises(HandoverClosed):
            services.accept_handover(handover_id=handover.pk, agent=agent("sam"))
        assert services.handle_handover_timeout(handover_id=handover.pk) == "timed out"
        assert services.handle_handover_timeout(handover_id=handover.pk) == "stale"  # once
    handover.refresh_from_db()
    assert handover.status == Handover.Status.TIMED_OUT
    assert Escalation.objects.get(chat=chat).outcome == Escalation.Outcome.TIMED_OUT
    assert ChatRoute.objects.get(chat=chat).agent == agent("alex")
    assert visitor_texts(chat)[-1] == "Alex will keep helping you."
    assert flow_texts(chat)[-1] == "No one accepted; stayed with Alex"
    assert not HandoverOffer.objects.filter(handover=handover, status="pending").exists()
    request(chat)  # a new request may follow


def test_the_sweep_fires_a_lost_timer(warm_billing):
    chat = warm_billing
    request(chat)
    handover = Handover.objects.get(chat=chat)
    with time_machine.travel(handover.deadline + timedelta(seconds=1), tick=False):
        assert services.sweep_overdue_handovers() == 1
        assert services.sweep_overdue_handovers() == 0


def test_the_agent_cancels_a_pending_request_only(warm_billing):
    chat = warm_billing
    request(chat)
    with pytest.raises(HandoverPending):
        request(chat)
    with pytest.raises(HandoverNotFound):
        services.cancel_handover(chat_id=chat.pk, agent=agent("sam"))
    services.cancel_handover(chat_id=chat.pk, agent=agent("alex"))
    assert Handover.objects.get(chat=chat).status == Handover.Status.CANCELLED
    assert Escalation.objects.get(chat=chat).outcome == Escalation.Outcome.CANCELLED
    assert visitor_texts(chat)[-1] == "Alex will keep helping you."


def test_the_agent_cancels_a_joined_handover_and_the_receiver_leaves(warm_billing):
    chat = warm_billing
    request(chat)
    handover = Handover.objects.get(chat=chat)
    services.accept_handover(handover_id=handover.pk, agent=agent("kim"))
    with pytest.raises(HandoverNotFound):  # only the first agent cancels
        services.cancel_handover(chat_id=chat.pk, agent=agent("kim"))
    services.cancel_handover(chat_id=chat.pk, agent=agent("alex"))
    handover.refresh_from_db()
    assert handover.status == Handover.Status.CANCELLED
    assert ChatRoute.objects.get(chat=chat).agent == agent("alex")
    assert selectors.agent_load(agent("kim")) == 0
    assert visitor_texts(chat)[-1] == "Kim left the chat."
    with pytest.raises(NotYourChat):  # Kim no longer writes to it
        services.post_agent_message(chat_id=chat.pk, agent=agent("kim"), text="Still here?")
    request(chat)  # the chat may be handed over again


def test_everyone_declining_leaves_the_chat_with_the_agent(warm_billing):
    chat = warm_billing
    request(chat)
    handover = Handover.objects.get(chat=chat)
    services.decline_handover(handover_id=handover.pk, agent=agent("sam"))
    assert Handover.objects.get(pk=handover.pk).status == Handover.Status.PENDING
    with pytest.raises(HandoverClosed):
        services.decline_handover(handover_id=handover.pk, agent=agent("sam"))
    services.decline_handover(handover_id=handover.pk, agent=agent("kim"))
    assert Handover.objects.get(pk=handover.pk).status == Handover.Status.DECLINED
    assert Escalation.objects.get(chat=chat).outcome == Escalation.Outcome.DECLINED
    assert ChatRoute.objects.get(chat=chat).agent == agent("alex")
    with pytest.raises(HandoverNotFound):  # never offered to Blair
        services.accept_handover(handover_id=handover.pk, agent=agent("blair"))


def test_the_chat_ending_during_the_joint_phase_closes_the_handover(warm_billing):
    chat = warm_billing
    request(chat)
    handover = Handover.objects.get(chat=chat)
    services.accept_handover(handover_id=handover.pk, agent=agent("sam"))
    services.end_chat_by_visitor(chat_id=chat.pk)
    handover.refresh_from_db()
    assert handover.status == Handover.Status.ENDED
    assert selectors.agent_load(agent("sam")) == 0
    with pytest.raises(ChatClosed):
        services.take_over(chat_id=chat.pk, agent=agent("sam"))


def test_the_visitor_leaving_during_a_request_withdraws_the_offers(warm_billing):
    chat = warm_billing
    request(chat)
    handover = Handover.objects.get(chat=chat)
    services.end_chat_by_visitor(chat_id=chat.pk)
    assert Handover.objects.get(pk=handover.pk).status == Handover.Status.ENDED
    assert set(HandoverOffer.objects.values_list("status", flat=True)) == {"withdrawn"}
    with pytest.raises(ChatClosed):
        services.accept_handover(handover_id=handover.pk, agent=agent("sam"))


def test_the_first_agent_gone_hands_a_joined_chat_to_the_receiver(warm_billing):
    chat = warm_billing
    request(chat)
    handover = Handover.objects.get(chat=chat)
    services.accept_handover(handover_id=handover.pk, agent=agent("sam"))
    alex = agent("alex")
    Agent.objects.filter(pk=alex.pk).update(console_seen_at=timezone.now() - timedelta(hours=1))
    assert services.hand_back_chats_of_gone_agent(agent_id=alex.pk, seen_before=timezone.now()) == 1
    assert ChatRoute.objects.get(chat=chat).agent == agent("sam")
    assert Handover.objects.get(pk=handover.pk).status == Handover.Status.COMPLETED


def test_the_first_agent_gone_cancels_a_pending_request(warm_billing):
    chat = warm_billing
    request(chat)
    alex = agent("alex")
    services.return_to_queue(chat_id=chat.pk, agent=alex, why="the agent's console closed")
    assert Handover.objects.get(chat=chat).status == Handover.Status.CANCELLED
    assert not HandoverOffer.objects.filter(status="pending").exists()


def test_a_full_receiver_cannot_accept(warm_billing):
    chat = warm_billing
    request(chat)
    Agent.objects.filter(user__username="sam").update(capacity=1)
    other = start()  # Alex's too (round robin); Sam holds it instead, filling Sam's one place
    Assignment.objects.filter(chat=other, ended_at__isnull=True).update(agent=agent("sam"))
    with pytest.raises(AtCapacity):
        services.accept_handover(handover_id=Handover.objects.get(chat=chat).pk, agent=agent("sam"))


def test_a_warm_request_with_nobody_available_is_refused(warm_billing):
    for name in ("sam", "kim"):
        services.set_presence(agent=agent(name), presence=Agent.Presence.OFFLINE)
    with pytest.raises(NobodyAvailable):
        request(warm_billing)
    assert not Handover.objects.exists() and not Escalation.objects.exists()


# --- Hand to a colleague -----------------------------------------------------------------------
@pytest.fixture
def colleague_stage(warm_billing):
    Stage.objects.filter(name="L1 General").update(
        allows_hand_to_colleague=True, colleague_handover="either"
    )
    return warm_billing


def test_the_dialog_lists_online_colleagues_of_the_same_or_a_higher_tier(colleague_stage):
    options = frames.escalation_options_for(agent=agent("alex"), chat_id=colleague_stage.pk)
    names = [c["name"] for c in options.colleagues]
    assert "Alex" not in names and {"Sam", "Kim"} <= set(names)
    sam = next(c for c in options.colleagues if c["name"] == "Sam")
    assert (sam["tier"], sam["load"]) == ("Level 2", 0)
    assert options.colleague_modes == ["warm", "cold"]


def test_a_cold_hand_to_a_colleague_moves_the_chat_when_accepted(colleague_stage):
    chat = colleague_stage
    escalation = services.hand_to_colleague(
        chat_id=chat.pk, agent=agent("alex"), colleague_name="@sam", warm=False, note="VIP"
    )
    assert escalation.target_label == "Sam" and not escalation.warm
    assert ChatRoute.objects.get(chat=chat).agent == agent("alex")  # until Sam accepts
    services.accept_handover(handover_id=Handover.objects.get(chat=chat).pk, agent=agent("sam"))
    route = ChatRoute.objects.get(chat=chat)
    assert route.agent == agent("sam")
    assert Assignment.objects.get(chat=chat, ended_at__isnull=True).tier.level == 2
    assert visitor_texts(chat)[-2:] == [
        "Alex left the chat.",
        "Sam from our support team joined the chat.",
    ]


def test_a_declined_colleague_leaves_the_chat_with_the_holder(colleague_stage):
    chat = colleague_stage
    services.hand_to_colleague(
        chat_id=chat.pk, agent=agent("alex"), colleague_id=agent("kim").pk, warm=True
    )
    services.decline_handover(handover_id=Handover.objects.get(chat=chat).pk, agent=agent("kim"))
    assert ChatRoute.objects.get(chat=chat).agent == agent("alex")
    assert flow_texts(chat)[-1] == "Declined by Kim; stayed with Alex"


def test_hand_to_a_colleague_is_checked(colleague_stage):
    chat = colleague_stage
    with pytest.raises(UnknownColleague):  # not online
        services.hand_to_colleague(chat_id=chat.pk, agent=agent("alex"), colleague_name="jordan")
    with pytest.raises(UnknownColleague):  # oneself
        services.hand_to_colleague(chat_id=chat.pk, agent=agent("alex"), colleague_name="alex")
    with pytest.raises(NotYourChat):
        services.hand_to_colleague(chat_id=chat.pk, agent=agent("sam"), colleague_name="kim")
    Stage.objects.filter(name="L1 General").update(colleague_handover="cold")
    with pytest.raises(ColleagueNotAllowed):
        services.hand_to_colleague(
            chat_id=chat.pk, agent=agent("alex"), colleague_name="sam", warm=True
        )
    Stage.objects.filter(name="L1 General").update(allows_hand_to_colleague=False)
    with pytest.raises(ColleagueNotAllowed):
        services.hand_to_colleague(chat_id=chat.pk, agent=agent("alex"), colleague_name="sam")


def test_reports_count_a_warm_hand_over_once_taken_over(warm_billing):
    chat = warm_billing
    today = timezone.localdate()
    f = ReportFilter(start=today, end=today)
    request(chat)
    services.cancel_handover(chat_id=chat.pk, agent=agent("alex"))
    request(chat)
    assert escalations(f).count() == 0  # cancelled, then pending: still at tier 1
    handover = Handover.objects.get(chat=chat, status="pending")
    services.accept_handover(handover_id=handover.pk, agent=agent("sam"))
    services.take_over(chat_id=chat.pk, agent=agent("sam"))
    [row] = [row_of(e) for e in escalated_chats(f)]
    assert (row["to"], row["taken_by"]) == ("L2 Billing (Level 2) · warm", "Sam")
    said = [ev["kind"] for ev in chat_detail(chat_id=chat.pk)["flow"]]  # the Flow tab
    assert [s for s in said if "hand-over" in s or "Sam" in s or "stayed" in s] == [
        "Warm hand-over requested to L2 Billing",
        "Cancelled by Alex; stayed with Alex",
        "Warm hand-over requested to L2 Billing",
        "Sam joined",
        "Sam took over",
    ]


@pytest.mark.parametrize("counted", ["raw", "summarised"])
def test_a_hand_over_that_never_happened_is_no_escalation_in_any_report(warm_billing, counted):
    """Cancelled, declined or timed out, the chat stayed at tier 1: the count reports (raw or
    from the daily summaries) and the by-tag report say it was not escalated; taken over, it was."""
    from reporting import summaries, tags
    from reporting.selectors import handled_vs_escalated_over_time

    chat = warm_billing
    services.set_chat_tags(chat_id=chat.pk, agent=agent("alex"), tag_ids=[Tag.objects.first().pk])
    request(chat)
    services.cancel_handover(chat_id=chat.pk, agent=agent("alex"))
    day = timezone.localdate()
    f = ReportFilter(start=day, end=day)

    def escalated() -> tuple[int, int]:
        if counted == "summarised":
            with time_machine.travel(timezone.now() + timedelta(days=1, hours=1), tick=False):
                summaries.summarise(day, day)
                assert day in summaries.summarised_days(day, day)
        over_time = sum(r["escalated"] for r in handled_vs_escalated_over_time(f, by_week=False))
        [by_tag] = tags.by_tag(f)
        return over_time, by_tag["escalated"]

    assert escalated() == (0, 0)
    request(chat)
    handover = Handover.objects.get(chat=chat, status="pending")
    services.accept_handover(handover_id=handover.pk, agent=agent("sam"))
    services.take_over(chat_id=chat.pk, agent=agent("sam"))
    assert escalated() == (1, 1)


def test_the_live_view_lists_a_joined_chat_under_its_receiver(warm_billing):
    """A receiver who joined counts the chat against its capacity; the live view shows which."""
    from reporting.live import live_snapshot

    chat = warm_billing
    request(chat)
    handover = Handover.objects.get(chat=chat, status="pending")
    services.accept_handover(handover_id=handover.pk, agent=agent("sam"))
    agents = {a["name"]: a for a in live_snapshot()["agents"]}
    assert [(c["chat"], c["joined"]) for c in agents["Alex"]["chats"]] == [(chat.pk, False)]
    assert [(c["chat"], c["joined"]) for c in agents["Sam"]["chats"]] == [(chat.pk, True)]
    assert agents["Sam"]["load"] == 1
    services.take_over(chat_id=chat.pk, agent=agent("sam"))
    agents = {a["name"]: a for a in live_snapshot()["agents"]}
    assert agents["Alex"]["chats"] == []
    assert [(c["chat"], c["joined"]) for c in agents["Sam"]["chats"]] == [(chat.pk, False)]


def test_a_warm_take_over_answers_no_wait_in_the_friction_report(warm_billing):
    """The receiver's turn began without a wait: no answer at tier 2, and no speed to answer;
    its handle time counts like any turn's."""
    from reporting import friction

    chat = warm_billing
    request(chat)
    handover = Handover.objects.get(chat=chat, status="pending")
    services.accept_handover(handover_id=handover.pk, agent=agent("sam"))
    services.take_over(chat_id=chat.pk, agent=agent("sam"))
    services.end_chat_by_agent(chat_id=chat.pk, agent=agent("sam"))
    day = timezone.localdate()
    tier1 = friction.friction(ReportFilter(start=day, end=day))["totals"]
    tier2 = friction.friction(ReportFilter(start=day, end=day, tier_level=2))["totals"]
    assert (tier1["started"], tier1["answered"]) == (1, 1)  # Alex took it from the queue
    assert tier2["answered"] == 0 and tier2["answer_median"] is None
    assert tier2["handled"] == 1  # Sam's turn, from the take-over to the end


def gone(username: str) -> None:
    Agent.objects.filter(user__username=username).update(
        console_seen_at=timezone.now() - timedelta(hours=1)
    )


def test_a_receiver_gone_from_its_console_leaves_the_joined_chat_to_the_first_agent(warm_billing):
    chat = warm_billing
    request(chat)
    handover = Handover.objects.get(chat=chat)
    services.accept_handover(handover_id=handover.pk, agent=agent("sam"))
    services.mark_console_seen(agent_id=agent("alex").pk)
    gone("sam")
    services.sweep_gone_agents()
    handover.refresh_from_db()
    assert handover.status == Handover.Status.CANCELLED
    assert agent("sam").presence == Agent.Presence.OFFLINE
    assert ChatRoute.objects.get(chat=chat).agent == agent("alex")
    assert selectors.agent_load(agent("sam")) == 0
    assert visitor_texts(chat)[-1] == "Sam left the chat."
    request(chat)  # Alex may ask again (or escalate)


def test_an_offline_receiver_still_joined_is_swept_too(warm_billing):
    chat = warm_billing
    request(chat)
    handover = Handover.objects.get(chat=chat)
    services.accept_handover(handover_id=handover.pk, agent=agent("sam"))
    services.set_presence(agent=agent("sam"), presence=Agent.Presence.OFFLINE)
    gone("sam")
    services.sweep_gone_agents()
    assert Handover.objects.get(pk=handover.pk).status == Handover.Status.CANCELLED


def test_a_disabled_receiver_leaves_the_joined_chat_to_the_first_agent(warm_billing):
    chat = warm_billing
    request(chat)
    handover = Handover.objects.get(chat=chat)
    services.accept_handover(handover_id=handover.pk, agent=agent("sam"))
    User.objects.filter(username="sam").update(is_active=False)
    retire_disabled_agents()
    assert Handover.objects.get(pk=handover.pk).status == Handover.Status.CANCELLED
    assert ChatRoute.objects.get(chat=chat).agent == agent("alex")


def test_a_declined_or_withdrawn_offer_no_longer_shows_the_chat(warm_billing):
    chat = warm_billing
    request(chat)
    handover = Handover.objects.get(chat=chat)
    assert selectors.agent_may_view_chat(agent=agent("kim"), chat_id=chat.pk)
    services.decline_handover(handover_id=handover.pk, agent=agent("kim"))
    assert not selectors.agent_may_view_chat(agent=agent("kim"), chat_id=chat.pk)
    assert selectors.agent_may_view_chat(agent=agent("sam"), chat_id=chat.pk)
    services.accept_handover(handover_id=handover.pk, agent=agent("sam"))
    assert selectors.agent_may_view_chat(agent=agent("sam"), chat_id=chat.pk)  # joined


def test_hello_lists_a_joined_chat_with_the_receiver_role(warm_billing):
    chat = warm_billing
    request(chat)
    services.accept_handover(handover_id=Handover.objects.get(chat=chat).pk, agent=agent("sam"))
    rows = frames.console_state(agent=agent("sam")).chats
    assert [(r["chat"], r["role"], r["visitor"]) for r in rows] == [(chat.pk, "receiver", "Carol")]
    assert rows[0]["last_seq"] == ChatSession.objects.get(pk=chat.pk).last_seq
    alex_rows = frames.console_state(agent=agent("alex")).chats
    assert [(r["chat"], r["role"]) for r in alex_rows] == [(chat.pk, "holder")]


@pytest.fixture
def sam_full(warm_billing):
    """Sam (one place) joined Carol's chat; a second chat waits for L2 Billing (routing it round
    robin), Kim away."""
    AgentGroup.objects.filter(name="L2 Billing").update(routing_policy=RoutingPolicy.ROUND_ROBIN)
    Agent.objects.filter(user__username="sam").update(capacity=1)
    services.set_presence(agent=agent("kim"), presence=Agent.Presence.AWAY)
    chat = warm_billing
    request(chat)
    services.accept_handover(handover_id=Handover.objects.get(chat=chat).pk, agent=agent("sam"))
    EscalationOption.objects.filter(keyword="billing").update(is_warm=False)
    Agent.objects.filter(user__username="alex").update(capacity=5)
    waiting = start()
    assert ChatRoute.objects.get(chat=waiting).agent == agent("alex")
    request(waiting)
    assert ChatRoute.objects.get(chat=waiting).agent is None  # Sam is full
    return chat, waiting


@pytest.mark.parametrize(
    "close",
    [
        lambda chat: services.end_chat_by_agent(chat_id=chat.pk, agent=agent("alex")),
        lambda chat: services.end_chat_by_visitor(chat_id=chat.pk),
        lambda chat: services.return_to_queue(chat_id=chat.pk, agent=agent("alex")),
        lambda chat: services.cancel_handover(chat_id=chat.pk, agent=agent("alex")),
    ],
    ids=["agent_ends", "visitor_ends", "returned", "cancelled"],
)
def test_closing_a_joined_handover_dispatches_the_receivers_freed_place(sam_full, close):
    chat, waiting = sam_full
    close(chat)
    assert ChatRoute.objects.get(chat=waiting).agent == agent("sam")


def test_a_cold_accept_dispatches_the_first_agents_freed_place(colleague_stage):
    chat = colleague_stage
    Agent.objects.filter(user__username="alex").update(capacity=1)
    waiting = start()
    assert ChatRoute.objects.get(chat=waiting).agent is None  # Alex is full
    services.hand_to_colleague(
        chat_id=chat.pk, agent=agent("alex"), colleague_name="@sam", warm=False, note="VIP"
    )
    services.accept_handover(handover_id=Handover.objects.get(chat=chat).pk, agent=agent("sam"))
    assert ChatRoute.objects.get(chat=waiting).agent == agent("alex")


def test_a_warm_hand_to_a_colleague_names_the_colleague_to_the_visitor(colleague_stage):
    chat = colleague_stage
    services.hand_to_colleague(
        chat_id=chat.pk, agent=agent("alex"), colleague_name="@sam", warm=True, note="VIP"
    )
    assert visitor_texts(chat)[-1] == "Alex is bringing in Sam to help you. Stay with us."
