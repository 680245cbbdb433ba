"""The stage after the agent: a satisfaction survey (or the "leave a message" form) when a chat
an agent took ends; the answer on the chat's Metadata tab and in the satisfaction report."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from chat.models import ChatSession
from escalation import selectors, services
from escalation.exceptions import SurveyAlreadyAnswered, SurveyNotOffered
from escalation.models import Agent, Stage, SurveyAnswer
from tests.factories import start_chat, visitor_client

pytestmark = pytest.mark.django_db


def agent(username: str) -> Agent:
    return Agent.objects.get(user__username=username)


def chat_with(username: str, topic: str = "Billing") -> ChatSession:
    """A chat the agent took at once (it is the only one online and free)."""
    Agent.objects.update(presence=Agent.Presence.OFFLINE)
    services.set_presence(agent=agent(username), presence=Agent.Presence.ONLINE)
    chat = start_chat(topic_name=topic, first_message="Help")
    chat.refresh_from_db()
    assert chat.route.agent == agent(username)
    return chat


def notices(chat: ChatSession) -> list[str]:
    return list(chat.messages.filter(kind="system").order_by("seq").values_list("event", flat=True))


def test_the_agent_ends_and_the_visitor_is_asked_to_rate_the_chat(demo):
    chat = chat_with("alex")  # L1 General asks for a survey
    services.end_chat_by_agent(chat_id=chat.pk, agent=agent("alex"))
    chat.refresh_from_db()
    assert notices(chat)[-2:] == ["ended", "survey"]
    assert chat.messages.get(event="survey").text == (
        "How did we do, Carol? Please rate this chat below."
    )
    assert selectors.offers_survey(chat)
    answer = services.answer_survey(chat_id=chat.pk, rating=4, comment="  Quick, thanks ")
    assert (answer.rating, answer.comment) == (4, "Quick, thanks")
    assert answer.assignment.agent == agent("alex")
    assert not selectors.offers_survey(chat)
    with pytest.raises(SurveyAlreadyAnswered):
        services.answer_survey(chat_id=chat.pk, rating=1)
    assert list(chat.flow.values_list("kind", flat=True))[-2:] == ["after_agent", "survey_answered"]


def test_the_visitor_ends_and_is_asked_too_but_not_a_page_that_is_gone(demo):
    chat = chat_with("alex")
    services.end_chat_by_visitor(chat_id=chat.pk)
    assert selectors.offers_survey(ChatSession.objects.get(pk=chat.pk))
    gone = chat_with("alex")
    ChatSession.objects.filter(pk=gone.pk).update(
        visitor_seen_at=timezone.now() - timedelta(hours=1)
    )
    assert services.sweep_gone_visitors() == 1  # its page stopped answering
    gone.refresh_from_db()
    assert gone.status == "ended" and not selectors.offers_survey(gone)
    assert "survey" not in notices(gone)


def test_a_stage_that_asks_nothing_offers_nothing_and_a_chat_nobody_took_is_not_rated(demo):
    Stage.objects.filter(name="L1 General").update(after_agent=Stage.AfterAgent.NOTHING)
    chat = chat_with("alex")
    services.end_chat_by_agent(chat_id=chat.pk, agent=agent("alex"))
    assert notices(ChatSession.objects.get(pk=chat.pk))[-1] == "ended"
    with pytest.raises(SurveyNotOffered):
        services.answer_survey(chat_id=chat.pk, rating=5)
    Agent.objects.update(presence=Agent.Presence.OFFLINE)
    waiting = start_chat(visitor_name="Dan", visitor_email="", first_message="Hi")
    services.end_chat_by_visitor(chat_id=waiting.pk)  # left the queue: abandoned, no agent
    assert not selectors.offers_survey(ChatSession.objects.get(pk=waiting.pk))
    assert not SurveyAnswer.objects.exists()


def test_a_stage_may_take_a_message_after_the_agent(demo):
    get_user_model().objects.filter(username="alex").update(email="alex@example.com")
    chat = chat_with("alex", topic="Buying")  # Sales: the "leave a message" form after
    services.end_chat_by_agent(chat_id=chat.pk, agent=agent("alex"))
    chat.refresh_from_db()
    assert notices(chat)[-2:] == ["ended", "after_agent_message"]
    assert selectors.offers_message_form(chat) and not selectors.offers_survey(chat)
    services.leave_offline_message(chat_id=chat.pk, text="One more question: invoices?")
    assert notices(chat)[-1] == "message_left"
    assert not selectors.offers_message_form(chat)


def test_the_visitor_rates_the_chat_on_the_page_with_clear_errors(demo):
    chat = chat_with("alex")
    client = visitor_client(chat)
    assert 'id="survey-form" hidden' in client.get("/chat/room/").content.decode()
    services.end_chat_by_agent(chat_id=chat.pk, agent=agent("alex"))
    page = client.get("/chat/room/").content.decode()
    assert 'id="survey-form" hidden' not in page and "How would you rate this chat?" in page
    for bad in ({"comment": "No rating"}, {"rating": "9", "comment": "No rating"}):
        refused = client.post("/chat/room/survey/", bad)
        assert refused.status_code == 400
        body = refused.content.decode()
        assert "Choose a rating from 1 (poor) to 5 (great)." in body and "No rating" in body
    long = client.post("/chat/room/survey/", {"rating": "3", "comment": "x" * 2001})
    assert long.status_code == 400 and "at most 2,000 characters" in long.content.decode()
    done = client.post("/chat/room/survey/", {"rating": "5", "comment": "Great"}, follow=True)
    assert "Thank you for your feedback." in done.content.decode()
    again = client.post("/chat/room/survey/", {"rating": "1"})
    assert again.status_code == 400 and "already rated" in again.content.decode()
    assert list(SurveyAnswer.objects.values_list("rating", "comment")) == [(5, "Great")]


def test_the_metadata_tab_shows_the_answer_and_erasure_keeps_only_the_rating(demo):
    chat = chat_with("alex")
    services.end_chat_by_agent(chat_id=chat.pk, agent=agent("alex"))
    services.answer_survey(chat_id=chat.pk, rating=4, comment="Kind <b>agent</b>")
    manager = Client()
    manager.force_login(get_user_model().objects.get(username="morgan"))
    page = manager.get(f"/reports/chats/{chat.pk}/").content.decode()
    assert "4 of 5" in page and "Kind &lt;b&gt;agent&lt;/b&gt;" in page
    services.erase_visitor(email="carol@example.com")
    assert list(SurveyAnswer.objects.values_list("rating", "comment")) == [(4, "")]


def answered(username: str, rating: int, topic: str = "Billing", days_ago: int = 0) -> None:
    chat = chat_with(username, topic)
    services.end_chat_by_agent(chat_id=chat.pk, agent=agent(username))
    answer = services.answer_survey(chat_id=chat.pk, rating=rating)
    SurveyAnswer.objects.filter(pk=answer.pk).update(
        answered_at=timezone.now() - timedelta(days=days_ago)
    )


def answered_after_escalation_to_sam(rating: int) -> None:
    """Alex escalates a chat to L2 Billing, Sam (Level 2) takes and ends it, and it is rated."""
    chat = chat_with("alex")
    services.escalate_chat(chat_id=chat.pk, agent=agent("alex"), keyword="billing", note="n")
    Agent.objects.update(presence=Agent.Presence.OFFLINE)
    services.set_presence(agent=agent("sam"), presence=Agent.Presence.ONLINE)
    services.take_chat(chat_id=chat.pk, agent=agent("sam"))
    services.end_chat_by_agent(chat_id=chat.pk, agent=agent("sam"))
    services.answer_survey(chat_id=chat.pk, rating=rating)


def test_the_satisfaction_report_by_tier_group_and_agent_with_csv(demo):
    """Hand-worked: Alex (L1 General, Level 1) is rated 5, 4 and 2; Sam is rated 3 after an
    escalation to L2 Billing (Level 2); a rating of Alex's 40 days ago is outside the period."""
    for rating in (5, 4, 2):
        answered("alex", rating)
    answered("alex", 1, days_ago=40)
    answered_after_escalation_to_sam(3)

    manager = Client()
    manager.force_login(get_user_model().objects.get(username="morgan"))
    page = manager.get("/reports/satisfaction/")
    assert page.status_code == 200
    tables = dict(page.context["tables"])
    agents = {
        r["label"]: (r["answers"], round(r["average"], 2), round(r["satisfied_share"], 3))
        for r in tables["agent"]
    }
    assert agents == {"Alex": (3, 3.67, 0.667), "Sam": (1, 3.0, 0.0)}
    assert [(r["label"], r["answers"]) for r in tables["tier"]] == [("Level 1", 3), ("Level 2", 1)]
    assert {r["label"] for r in tables["group"]} == {"L1 General", "L2 Billing"}
    response = manager.get("/reports/satisfaction/?format=csv&by=agent")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows == [
        ["agent", "answers", "average_rating", "satisfied_share"],
        ["Alex", "3", "3.67", "0.667"],
        ["Sam", "1", "3.00", "0.000"],
    ]
    assert manager.get("/reports/satisfaction/?format=csv&by=nothing").status_code == 404
    agent_client = Client()
    agent_client.force_login(get_user_model().objects.get(username="alex"))
    assert agent_client.get("/reports/satisfaction/").status_code == 403
