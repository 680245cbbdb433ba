"""The console's Visitor panel (frames.visitor_panel): what the visitor told and their browser
sent, each value a plain string cut to length; their earlier chats by e-mail, only those the agent
may open, in one query by the e-mail index; and the same details on the Metadata tab, escaped."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client

from chat.models import ChatSession
from chat.selectors import CONTEXT_VALUE_MAX_CHARS, browser_and_os, visitor_details
from escalation import frames, selectors, services
from escalation.models import Agent
from tests.factories import start_chat

pytestmark = pytest.mark.django_db

CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)


def agent(username: str) -> Agent:
    return Agent.objects.get(user__username=username)


def chat_with(username: str, email: str = "carol@example.com", **context: object) -> ChatSession:
    """A chat the agent took at once (the only one online and free)."""
    Agent.objects.update(presence=Agent.Presence.OFFLINE)
    services.set_presence(agent=agent(username), presence=Agent.Presence.ONLINE)
    chat = start_chat(visitor_email=email, visitor_context=context)
    chat.refresh_from_db()
    assert chat.route.agent == agent(username)
    return chat


def ended_with(username: str, email: str = "carol@example.com") -> ChatSession:
    chat = chat_with(username, email)
    services.end_chat_by_agent(chat_id=chat.pk, agent=agent(username))
    return chat


def test_browser_and_os_come_from_the_user_agent() -> None:
    assert browser_and_os(CHROME_ON_WINDOWS) == ("Chrome 120", "Windows 10")
    assert browser_and_os("nothing to see here") == ("", "")


def test_details_are_plain_strings_cut_to_length(demo) -> None:
    long = "x" * 2000
    chat = chat_with(
        "alex",
        page="https://shop.example/<b>cart</b>",
        page_title=long,
        user_agent=CHROME_ON_WINDOWS,
        time_zone="Europe/Paris",
        utc_offset_minutes=60,
        fields={
            "company": {"label": "Company", "value": "<script>alert(1)</script>", "position": 0},
            "agree": {"label": "Agreed", "value": True, "position": 1},
            "broken": "not an answer",
        },
        attributes={"plan": "gold", "seats": 12, "trial": False, "note": long},
    )
    details = visitor_details(chat)
    assert details["fields"] == [
        {"key": "company", "label": "Company", "value": "<script>alert(1)</script>"},
        {"key": "agree", "label": "Agreed", "value": "yes"},
    ]
    assert len(details["page_title"]) == CONTEXT_VALUE_MAX_CHARS
    assert (details["browser"], details["os"]) == ("Chrome 120", "Windows 10")
    assert (details["time_zone"], details["utc_offset_minutes"]) == ("Europe/Paris", 60)
    assert [a["name"] for a in details["attributes"]] == ["note", "plan", "seats", "trial"]
    assert [a["value"] for a in details["attributes"][1:]] == ["gold", "12", "no"]
    assert len(details["attributes"][0]["value"]) == CONTEXT_VALUE_MAX_CHARS


def test_details_survive_a_context_of_the_wrong_shape(demo) -> None:
    chat = chat_with("alex", fields=["a"], attributes="b", utc_offset_minutes="60")
    details = visitor_details(chat)
    assert details["fields"] == [] and details["attributes"] == []
    assert details["utc_offset_minutes"] is None


def test_previous_chats_are_those_the_agent_may_open_newest_first(demo) -> None:
    alex_first, alex_second = ended_with("alex"), ended_with("alex")
    blairs = ended_with("blair")  # Alex never held it and it waits nowhere: not his to see
    ended_with("alex", email="someone@example.com")  # another visitor
    current = chat_with("alex", email="Carol@Example.com")  # the same, typed otherwise
    panel = frames.visitor_panel(chat=current, agent=agent("alex"))
    assert [p["chat"] for p in panel["previous"]] == [alex_second.pk, alex_first.pk]
    assert panel["previous"][0]["url"] == f"/reports/chats/{alex_second.pk}/"
    assert panel["previous"][0]["status"] == "Ended"
    # A manager who also works as an agent sees every earlier chat, as on the reports.
    alex_user = agent("alex").user
    alex_user.user_permissions.add(Permission.objects.get(codename="view_reports"))
    manager = Agent.objects.get(pk=agent("alex").pk)  # a fresh user: no cached permissions
    panel = frames.visitor_panel(chat=current, agent=manager)
    assert [p["chat"] for p in panel["previous"]] == [blairs.pk, alex_second.pk, alex_first.pk]


def test_previous_chats_stop_at_five_and_skip_chats_without_e_mail(demo) -> None:
    earlier = [ended_with("alex") for _ in range(6)]
    current = chat_with("alex")
    previous = selectors.previous_chats_of_visitor(chat=current, agent=agent("alex"))
    assert [c.pk for c in previous] == [c.pk for c in reversed(earlier)][:5]
    anonymous = chat_with("alex", email="")
    assert selectors.previous_chats_of_visitor(chat=anonymous, agent=agent("alex")) == []


def test_previous_chats_take_one_query(demo, django_assert_num_queries) -> None:
    ended_with("alex")
    current = chat_with("alex")
    alex = agent("alex")
    alex.user.has_perm("escalation.view_reports")  # the user's permissions, read once
    with django_assert_num_queries(1):
        selectors.previous_chats_of_visitor(chat=current, agent=alex)


def test_previous_chats_are_found_by_the_e_mail_index(demo) -> None:
    current = chat_with("alex")
    query = ChatSession.objects.filter(
        visitor_email__iexact=current.visitor_email, created_at__lt=current.created_at
    ).exclude(visitor_email="")
    sql, params = query.order_by("-created_at")[:5].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "chat_visitor_email_created" in plan, plan


def test_chat_info_carries_the_panel(demo) -> None:
    ended_with("alex")
    current = chat_with("alex", user_agent=CHROME_ON_WINDOWS)
    info = frames.chat_info(chat_id=current.pk, agent=agent("alex")).to_dict()
    assert info["details"]["browser"] == "Chrome 120"
    assert len(info["details"]["previous"]) == 1


def test_the_metadata_tab_shows_the_details_escaped(demo) -> None:
    chat = chat_with(
        "alex",
        page_title="Cart <i>now</i>",
        referrer="https://search.example/",
        user_agent=CHROME_ON_WINDOWS,
        time_zone="Europe/Paris",
        utc_offset_minutes=60,
        fields={"company": {"label": "Company", "value": "<script>alert(1)</script>"}},
        attributes={"plan": "<b>gold</b>"},
    )
    manager = Client()
    manager.force_login(get_user_model().objects.get(username="morgan"))
    page = manager.get(f"/reports/chats/{chat.pk}/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "Cart &lt;i&gt;now&lt;/i&gt;" in page and "https://search.example/" in page
    assert "Chrome 120 on Windows 10" in page and "Europe/Paris (UTC offset 60 min)" in page
    assert "&lt;b&gt;gold&lt;/b&gt;" in page
