"""Searching past chats: words from messages and internal notes (PostgreSQL full text on a GIN
index; a plain LIKE on SQLite), the chat's details as filters, what each reader may see, and
snippets that stay text."""

import datetime as dt

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from escalation import services
from escalation.models import Agent, ChatTag, Tag
from reporting import search
from reporting.templatetags.tierline_format import marked
from tests.factories import start_chat


def agent(username: str) -> Agent:
    return Agent.objects.get(user__username=username)


@pytest.fixture
def chats(demo):
    """Alex holds Carol's chat about an invoice (with an internal note) and Erin's; Dan's chat
    about an invoice copy waits, started a week ago; Frank's is about a password."""
    services.set_presence(agent=agent("alex"), presence="online")
    carol = start_chat(first_message="My invoice is wrong <script>alert(1)</script>")
    services.post_agent_message(
        chat_id=carol.pk, agent=agent("alex"), text="Refund approved", internal=True
    )
    erin = start_chat(visitor_name="Erin", visitor_email="erin@shop.example", first_message="Hi")
    services.set_presence(agent=agent("alex"), presence="away")
    dan = start_chat(visitor_name="Dan", visitor_email="", first_message="An invoice copy please")
    type(dan).objects.filter(pk=dan.pk).update(created_at=timezone.now() - dt.timedelta(days=7))
    frank = start_chat(visitor_name="Frank", first_message="Password reset")
    refund = Tag.objects.get(name="Refund")
    ChatTag.objects.create(chat=carol, tag=refund)
    return {"carol": carol, "erin": erin, "dan": dan, "frank": frank, "refund": refund}


def found(chats, **criteria) -> list[str]:
    from chat.models import ChatSession

    rows = search.search_chats(ChatSession.objects.all(), search.ChatSearch(**criteria))
    return [chat.visitor_name for chat in rows]


def test_words_are_found_in_messages_and_notes_newest_first(chats):
    assert found(chats, words="invoice") == ["Carol", "Dan"]
    assert found(chats, words="refund") == ["Carol"]  # an internal note
    assert found(chats, words='"invoice is wrong"') == ["Carol"]
    assert found(chats, words="invoice -copy") == ["Carol"]
    assert found(chats, words="password or copy") == ["Frank", "Dan"]
    assert found(chats, words="nothing-like-this") == []


def test_the_details_narrow_the_search(chats):
    today = timezone.localdate()
    assert found(chats, visitor="DAN") == ["Dan"]
    assert found(chats, visitor="shop.example") == ["Erin"]
    assert found(chats, agent_id=agent("alex").pk) == ["Erin", "Carol"]
    assert found(chats, tier_level=1, words="invoice") == ["Carol", "Dan"]
    assert found(chats, tier_level=2) == []
    assert found(chats, tag_id=chats["refund"].pk) == ["Carol"]
    assert found(chats, status="active") == ["Erin", "Carol"]
    assert found(chats, start=today) == ["Frank", "Erin", "Carol"]
    assert found(chats, end=today - dt.timedelta(days=1)) == ["Dan"]


def test_many_matches_take_the_other_plan_with_the_same_answers(chats, monkeypatch):
    monkeypatch.setattr(search, "FEW_MATCHES", 1)  # past it: a subquery, not a list of ids
    assert found(chats, words="invoice") == ["Carol", "Dan"]
    assert found(chats, visitor="a") == ["Frank", "Erin", "Carol", "Dan"]
    assert search._few_or_all(search.Message.objects.values_list("chat_id", flat=True)).query


def test_without_full_text_the_words_are_matched_plainly(chats, monkeypatch):
    monkeypatch.setattr(search, "_full_text", lambda: False)  # as on the embedded SQLite
    assert found(chats, words="INVOICE") == ["Carol", "Dan"]
    rows, more = search.page_of(
        type(chats["dan"]).objects.all(), search.ChatSearch(words="copy"), 1
    )
    assert [r["snippet"] for r in rows] == ["An invoice copy please"] and not more
    rows, _ = search.page_of(type(chats["dan"]).objects.all(), search.ChatSearch(words="wrong"), 1)
    assert rows[0]["snippet"] == "My invoice is wrong <script>alert(1)</script>"
    assert str(marked(rows[0]["snippet"])) == (
        "My invoice is wrong &lt;script&gt;alert(1)&lt;/script&gt;"
    )  # shown as text
    assert marked("a \x02b\x03 c") == "a <mark>b</mark> c"
    assert marked("a \x02b c") == "a b c"  # an unclosed mark is dropped, not left open


def test_a_page_of_results_is_a_fixed_number_of_queries(chats, django_assert_max_num_queries):
    from chat.models import ChatSession

    for _ in range(10):
        start_chat(visitor_name="More", first_message="Another invoice")
    with django_assert_max_num_queries(5):  # probe, chats, tags, snippets: not one per row
        rows, _ = search.page_of(ChatSession.objects.all(), search.ChatSearch(words="invoice"), 1)
    assert len(rows) == 12 and all("invoice" in r["snippet"] for r in rows)


def test_the_words_use_the_index(chats):
    words = search._query("invoice")
    query = search.Message.objects.annotate(document=search.MESSAGE_DOCUMENT).filter(document=words)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: make the planner show it
        plan = query.explain()
    assert "message_text_search" in plan


def test_the_page_shows_marked_escaped_snippets_and_pages(chats, client, manager_user, monkeypatch):
    client.force_login(manager_user)
    page = client.get(reverse("reporting:search"), {"q": "invoice"}).content.decode()
    assert "My <mark>invoice</mark> is wrong" in page  # PostgreSQL's headline drops markup
    assert "<script>alert" not in page
    assert page.index(f"Chat {chats['carol'].pk}") < page.index(f"Chat {chats['dan'].pk}")
    monkeypatch.setattr(search, "PAGE_SIZE", 1)
    first = client.get(reverse("reporting:search"), {"q": "invoice"}).content.decode()
    assert "Older →" in first and "Newer" not in first
    second = client.get(reverse("reporting:search"), {"q": "invoice", "page": 2}).content.decode()
    assert f"Chat {chats['dan'].pk}" in second and "Older →" not in second
    empty = client.get(reverse("reporting:search"), {"q": "zebra"}).content.decode()
    assert "No chats match." in empty
    bad = client.get(reverse("reporting:search"), {"start": "2026-02-02", "end": "2026-01-01"})
    assert (
        bad.status_code == 400 and "The start date is after the end date." in bad.content.decode()
    )
    too_long = client.get(reverse("reporting:search"), {"q": "x" * 201})
    assert too_long.status_code == 400
    assert "Search by words" in client.get(reverse("reporting:search")).content.decode()


def test_an_agent_searches_only_what_it_may_see(chats, client):
    client.force_login(agent("alex").user)  # holds Carol's and Erin's; Dan and Frank wait in L1
    page = client.get(reverse("reporting:search"), {"q": "invoice"}).content.decode()
    assert f"Chat {chats['carol'].pk}" in page and f"Chat {chats['dan'].pk}" in page
    client.force_login(agent("sam").user)  # L2 Billing: none of these
    assert (
        "No chats match."
        in client.get(reverse("reporting:search"), {"q": "invoice"}).content.decode()
    )
