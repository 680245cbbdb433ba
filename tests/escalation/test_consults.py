"""Consulting a colleague on a chat: the holder opens an internal thread with a colleague or a
group, the colleague reads the chat and answers while the thread is open, either side closes it,
and it closes with the holder's turn. The visitor's stream never carries any of it."""

import pytest
from django.conf import settings
from django.test import Client

from chat.events import agent_group
from chat.exceptions import ChatClosed, InvalidMessage
from chat.models import FlowEvent, Message
from chat.selectors import messages_after
from escalation import frames, selectors, services
from escalation.exceptions import (
    ColleagueUnavailable,
    ConsultAlreadyOpen,
    ConsultClosed,
    ConsultNotFound,
    NotYourChat,
    UnknownColleague,
)
from escalation.models import Agent, AgentGroup, Consult
from reporting.transcript import chat_transcript
from tests.chat.test_events import Listener
from tests.factories import start_chat

QUESTION = "Is a refund after 40 days allowed?"


def agent(username: str) -> Agent:
    return Agent.objects.get(user__username=username)


def online(*usernames: str) -> None:
    for username in usernames:
        services.set_presence(agent=agent(username), presence="online")


@pytest.fixture
def held(demo):
    """Alex (L1 General) holds Carol's chat; Sam and Kim (L2 Billing) are online, Taylor (L2
    Technical) too; Jordan (L3) is offline."""
    online("alex")
    chat = start_chat(first_message="I want my money back")
    online("sam", "kim", "taylor")
    return chat


def ask(chat, *, to="sam", group=None, question=QUESTION):
    if group is not None:
        group_id = AgentGroup.objects.get(name=group).pk
        return services.open_consult(
            chat_id=chat.pk, agent=agent("alex"), question=question, group_id=group_id
        )
    return services.open_consult(
        chat_id=chat.pk, agent=agent("alex"), question=question, colleague_id=agent(to).pk
    )


def test_the_holder_asks_a_colleague_who_is_told_and_may_read_the_chat(
    held, django_capture_on_commit_callbacks
):
    alex, sam = agent("alex"), agent("sam")
    listener = Listener(agent_group(alex.pk), agent_group(sam.pk), agent_group(agent("kim").pk))
    with django_capture_on_commit_callbacks(execute=True):
        consult, message = ask(held)
    event = {
        "type": "consult",
        "v": 3,
        "consult": consult.pk,
        "chat": held.pk,
        "status": "open",
        "asked_by": "Alex",
        "asked_by_id": alex.pk,
        "to": "Sam",
        "agent_id": sam.pk,
        "group_id": None,
        "answered_by": None,
        "answered_by_id": None,
        "question": QUESTION,
        "visitor": "Carol",
        "topic": "Billing",
        "reason": "",
        "closed_by": "",
        "at": consult.created_at.isoformat(),
    }
    assert listener.receive_all() == [event, event]  # Alex and Sam; Kim was not asked
    assert (message.kind, message.event, message.text) == ("internal", "consult", QUESTION)
    assert message.public_seq is None  # never numbered in the visitor's stream
    assert QUESTION not in [
        m.text for m in messages_after(chat_id=held.pk, after=0, for_visitor=True)
    ]
    flow = FlowEvent.objects.get(chat=held, kind="consulted")
    assert flow.data == {"agent": "Alex", "to": "Sam"}
    assert selectors.agent_may_view_chat(agent=sam, chat_id=held.pk)
    assert not selectors.agent_may_view_chat(agent=agent("taylor"), chat_id=held.pk)
    assert frames.consult_seen_by(agent=sam, chat_id=held.pk)["role"] == "consultant"
    assert frames.consult_seen_by(agent=alex, chat_id=held.pk)["role"] == "asker"
    assert frames.consult_seen_by(agent=agent("taylor"), chat_id=held.pk) is None
    texts = [row["text"] for row in frames.flow_summary(chat_id=held.pk)]
    assert "Alex consulted Sam" in texts


@pytest.mark.parametrize("who", ["blair", "sam"])
def test_only_the_holder_may_open_a_consult(held, who):
    with pytest.raises(NotYourChat):
        services.open_consult(
            chat_id=held.pk, agent=agent(who), question=QUESTION, colleague_id=agent("kim").pk
        )
    assert not Consult.objects.exists()


def test_an_ended_chat_takes_no_consult(held):
    services.end_chat_by_agent(chat_id=held.pk, agent=agent("alex"))
    with pytest.raises(ChatClosed):
        ask(held)


@pytest.mark.parametrize(
    ("target", "error", "text"),
    [
        ({"colleague_id": "alex"}, ColleagueUnavailable, "You cannot consult yourself"),
        ({"colleague_id": "jordan"}, ColleagueUnavailable, "Jordan is not online"),
        ({"colleague_id": 987654}, UnknownColleague, "There is no such colleague."),
        ({}, UnknownColleague, "Choose one colleague or one group"),
        ({"colleague_id": "sam", "group_id": "L2 Billing"}, UnknownColleague, "Choose one"),
        ({"group_id": "L3 Engineering"}, ColleagueUnavailable, "Nobody in L3 Engineering"),
        ({"group_id": 987654}, UnknownColleague, "There is no such group."),
    ],
)
def test_a_consult_needs_one_online_colleague_or_a_group_with_someone_online(
    held, target, error, text
):
    ids = {}
    for key, value in target.items():
        if isinstance(value, int):
            ids[key] = value
        elif key == "colleague_id":
            ids[key] = agent(value).pk
        else:
            ids[key] = AgentGroup.objects.get(name=value).pk
    with pytest.raises(error) as refused:
        services.open_consult(chat_id=held.pk, agent=agent("alex"), question=QUESTION, **ids)
    assert text in refused.value.message
    assert not Consult.objects.exists()
    assert not Message.objects.filter(chat=held, event="consult").exists()


@pytest.mark.parametrize("question", ["", "   ", "x" * (settings.MESSAGE_MAX_CHARS + 1)])
def test_an_empty_or_oversized_question_is_refused(held, question):
    with pytest.raises(InvalidMessage):
        ask(held, question=question)
    assert not Consult.objects.exists()


def test_one_open_consult_per_chat(held):
    consult, _ = ask(held)
    with pytest.raises(ConsultAlreadyOpen):
        ask(held, to="kim")
    services.close_consult(consult_id=consult.pk, agent=agent("alex"))
    second, _ = ask(held, to="kim")
    assert second.is_open and second.agent == agent("kim")


def test_the_first_answer_is_recorded_once_and_both_sides_write(
    held, django_capture_on_commit_callbacks
):
    consult, _ = ask(held)
    listener = Listener(agent_group(agent("alex").pk))
    with django_capture_on_commit_callbacks(execute=True):
        answer = services.post_consult_message(
            consult_id=consult.pk, agent=agent("sam"), text="Yes, with a manager's OK."
        )
    [told] = listener.receive_all()
    assert (told["answered_by"], told["answered_by_id"]) == ("Sam", agent("sam").pk)
    services.post_consult_message(consult_id=consult.pk, agent=agent("alex"), text="Thanks!")
    services.post_consult_message(consult_id=consult.pk, agent=agent("sam"), text="Anytime.")
    assert (answer.kind, answer.event, answer.author_name) == ("internal", "consult", "Sam")
    thread = Message.objects.filter(chat=held, event="consult").order_by("seq")
    assert [(m.author_name, m.public_seq) for m in thread] == [
        ("Alex", None),
        ("Sam", None),
        ("Alex", None),
        ("Sam", None),
    ]
    assert FlowEvent.objects.filter(chat=held, kind="consult_answered").count() == 1
    assert "Sam answered the consult" in [r["text"] for r in frames.flow_summary(chat_id=held.pk)]


def test_a_client_id_sent_again_stores_nothing_new(held):
    consult, _ = ask(held)
    first = services.post_consult_message(
        consult_id=consult.pk, agent=agent("sam"), text="Yes", client_id="c-1"
    )
    again = services.post_consult_message(
        consult_id=consult.pk, agent=agent("sam"), text="Yes", client_id="c-1"
    )
    assert again.pk == first.pk
    assert Message.objects.filter(chat=held, event="consult").count() == 2


def test_a_group_consult_goes_on_with_the_member_who_answers_first(
    held, django_capture_on_commit_callbacks
):
    sam, kim = agent("sam"), agent("kim")
    services.set_presence(agent=kim, presence="offline")
    listener = Listener(agent_group(sam.pk), agent_group(kim.pk))
    with django_capture_on_commit_callbacks(execute=True):
        consult, _ = ask(held, group="L2 Billing")
    told = listener.receive_all()
    assert [(e["to"], e["group_id"], e["agent_id"]) for e in told] == [
        ("L2 Billing", consult.group_id, None)
    ]  # Sam only: Kim was offline, so not alerted
    services.set_presence(agent=kim, presence="online")
    assert selectors.agent_may_view_chat(agent=sam, chat_id=held.pk)
    assert selectors.agent_may_view_chat(agent=kim, chat_id=held.pk)  # a member may still answer
    with django_capture_on_commit_callbacks(execute=True):
        services.post_consult_message(consult_id=consult.pk, agent=kim, text="Kim here.")
    assert {e["answered_by"] for e in listener.receive_all()} == {"Kim"}  # both are told
    assert not selectors.agent_may_view_chat(agent=sam, chat_id=held.pk)
    with pytest.raises(ConsultClosed, match="Kim answered this consult"):
        services.post_consult_message(consult_id=consult.pk, agent=sam, text="Me too")
    with pytest.raises(ConsultClosed):
        services.close_consult(consult_id=consult.pk, agent=sam)
    services.post_consult_message(consult_id=consult.pk, agent=kim, text="Still here.")


def test_strangers_are_told_there_is_no_such_consult(held):
    consult, _ = ask(held)
    taylor = agent("taylor")
    for attempt in (
        lambda: services.post_consult_message(consult_id=consult.pk, agent=taylor, text="Hi"),
        lambda: services.close_consult(consult_id=consult.pk, agent=taylor),
        lambda: services.post_consult_message(consult_id=987654, agent=taylor, text="Hi"),
    ):
        with pytest.raises(ConsultNotFound):
            attempt()
    services.close_consult(consult_id=consult.pk, agent=agent("sam"))
    with pytest.raises(ConsultNotFound):  # closed or not: a stranger learns nothing
        services.close_consult(consult_id=consult.pk, agent=taylor)


def test_a_closed_consult_takes_nothing_more_and_is_no_longer_readable(
    held, django_capture_on_commit_callbacks
):
    consult, _ = ask(held)
    listener = Listener(agent_group(agent("alex").pk))
    with django_capture_on_commit_callbacks(execute=True):
        services.close_consult(consult_id=consult.pk, agent=agent("sam"))
    [told] = listener.receive_all()
    assert (told["status"], told["reason"], told["closed_by"]) == ("closed", "closed", "Sam")
    for who in ("sam", "alex"):
        with pytest.raises(ConsultClosed):
            services.post_consult_message(consult_id=consult.pk, agent=agent(who), text="More")
    with pytest.raises(ConsultClosed):
        services.close_consult(consult_id=consult.pk, agent=agent("alex"))
    assert not selectors.agent_may_view_chat(agent=agent("sam"), chat_id=held.pk)
    flow = FlowEvent.objects.get(chat=held, kind="consult_closed")
    assert flow.data == {"to": "Sam", "why": "closed by Sam"}


@pytest.mark.parametrize(
    ("end", "reason", "why"),
    [
        ("resolved", "chat_ended", "the chat ended"),
        ("visitor", "chat_ended", "the chat ended"),
        ("escalated", "handed_over", "the chat was handed over"),
        ("returned", "handed_over", "the chat was handed over"),
    ],
)
def test_the_consult_closes_with_the_holders_turn(
    held, django_capture_on_commit_callbacks, end, reason, why
):
    consult, _ = ask(held)
    alex = agent("alex")
    listener = Listener(agent_group(agent("sam").pk))
    with django_capture_on_commit_callbacks(execute=True):
        if end == "resolved":
            services.end_chat_by_agent(chat_id=held.pk, agent=alex)
        elif end == "visitor":
            services.end_chat_by_visitor(chat_id=held.pk)
        elif end == "escalated":
            services.escalate_chat(
                chat_id=held.pk, agent=alex, keyword="billing", note="Refund", reason=""
            )
        else:
            services.return_to_queue(chat_id=held.pk, agent=alex)
    consult.refresh_from_db()
    assert (consult.status, consult.close_reason, consult.closed_by) == ("closed", reason, None)
    told = [e for e in listener.receive_all() if e["type"] == "consult"]
    assert [(e["status"], e["reason"]) for e in told] == [("closed", reason)]
    assert FlowEvent.objects.get(chat=held, kind="consult_closed").data["why"] == why
    # (Escalated to Billing, the chat waits in Sam's queue: he may see it there, not as a
    # consultant.)
    assert not selectors.consulted_on_now(agent=agent("sam"), chat_id=held.pk)


def test_the_next_holder_reads_the_thread_in_the_history(held):
    consult, _ = ask(held)
    services.post_consult_message(consult_id=consult.pk, agent=agent("sam"), text="Escalate it")
    services.escalate_chat(
        chat_id=held.pk, agent=agent("alex"), keyword="billing", note="Refund", reason=""
    )
    services.take_chat(chat_id=held.pk, agent=agent("kim"))  # from L2 Billing's queue
    history = messages_after(chat_id=held.pk, after=0, for_visitor=False)
    assert [m.text for m in history if m.event == "consult"] == [QUESTION, "Escalate it"]
    assert frames.consult_seen_by(agent=agent("kim"), chat_id=held.pk) is None  # closed


def test_the_transcript_marks_the_thread_as_consult_lines(held):
    consult, _ = ask(held)
    services.post_consult_message(consult_id=consult.pk, agent=agent("sam"), text="Yes")
    lines = [line for line in chat_transcript(chat=held) if line.event == "consult"]
    assert [(line.label, line.author, line.visible_to_visitor) for line in lines] == [
        ("Consult", "Alex", False),
        ("Consult", "Sam", False),
    ]
    assert not any(line.is_notice for line in lines)


def report(username: str, chat, tab: str = "") -> int:
    client = Client()
    client.force_login(agent(username).user)
    return client.get(f"/reports/chats/{chat.pk}/{tab}").status_code


def test_who_may_read_the_chats_report_page_after_a_consult(held):
    """The colleague named (or the member who answered) keeps access to the report page; a
    group's other members only while the consult is open; anyone else never."""
    consult, _ = ask(held, group="L2 Billing")
    assert (report("sam", held), report("kim", held)) == (200, 200)  # both may answer
    services.post_consult_message(consult_id=consult.pk, agent=agent("kim"), text="Yes")
    assert (report("sam", held), report("kim", held)) == (404, 200)
    services.close_consult(consult_id=consult.pk, agent=agent("alex"))
    named, _ = ask(held, to="taylor")
    services.close_consult(consult_id=named.pk, agent=agent("taylor"))
    assert report("kim", held, "?tab=transcript") == 200
    assert report("taylor", held) == 200  # named, even without answering
    assert report("sam", held) == 404
    assert report("jordan", held) == 404


def test_erasure_empties_the_consult_question(held):
    consult, _ = ask(held)
    services.end_chat_by_agent(chat_id=held.pk, agent=agent("alex"))
    services.erase_visitor(chat_id=held.pk)
    consult.refresh_from_db()
    assert consult.question == ""
    assert not Message.objects.filter(chat=held).exists()
