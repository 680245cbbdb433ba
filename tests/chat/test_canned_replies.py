"""Saved (canned) replies: who may use which, the console's list and use count, and an agent's
own replies managed from the console with clear errors."""

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from escalation.models import Agent, AgentGroup, CannedReply

pytestmark = pytest.mark.django_db


def agent(username: str) -> Agent:
    return Agent.objects.get(user__username=username)


def client_for(username: str) -> Client:
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


@pytest.fixture
def replies(demo):
    """A global reply, one of L1 General's (Alex's group), one of L2 Billing's, and a personal
    one each for Alex and Sam."""
    return {
        "global": CannedReply.objects.create(
            shortcut="hello", title="Greeting", text="Hi {visitor}, I'm {agent}."
        ),
        "l1": CannedReply.objects.create(
            shortcut="refund",
            title="Refund",
            text="Refunds take 3 days.",
            group=AgentGroup.objects.get(name="L1 General"),
        ),
        "l2": CannedReply.objects.create(
            shortcut="invoice",
            title="Invoice",
            text="Your invoice is attached.",
            group=AgentGroup.objects.get(name="L2 Billing"),
        ),
        "alex": CannedReply.objects.create(
            shortcut="bye", title="Goodbye", text="Bye!", owner=agent("alex")
        ),
        "sam": CannedReply.objects.create(
            shortcut="bye", title="Sam's goodbye", text="Cheers!", owner=agent("sam")
        ),
    }


def test_an_agent_gets_its_own_its_groups_and_the_global_replies(replies):
    body = client_for("alex").get("/console/replies.json").json()
    got = {(r["shortcut"], r["scope"], r["group"]) for r in body["replies"]}
    assert got == {
        ("bye", "personal", None),
        ("hello", "global", None),
        ("refund", "group", "L1 General"),
    }
    alex_bye = next(r for r in body["replies"] if r["shortcut"] == "bye")
    assert alex_bye["text"] == "Bye!"  # Alex's, not Sam's


def test_a_use_is_counted_only_for_a_reply_the_agent_may_use(replies):
    alex = client_for("alex")
    assert alex.post(f"/console/replies/{replies['global'].pk}/used/").status_code == 204
    assert alex.post(f"/console/replies/{replies['global'].pk}/used/").status_code == 204
    assert alex.post(f"/console/replies/{replies['sam'].pk}/used/").status_code == 404
    assert alex.post(f"/console/replies/{replies['l2'].pk}/used/").status_code == 404
    assert alex.get(f"/console/replies/{replies['global'].pk}/used/").status_code == 405
    assert (
        client_for("morgan").post(f"/console/replies/{replies['global'].pk}/used/").status_code
        == 403
    )
    counts = dict(CannedReply.objects.values_list("pk", "uses"))
    assert counts[replies["global"].pk] == 2 and counts[replies["sam"].pk] == 0
    assert CannedReply.objects.get(pk=replies["global"].pk).last_used_at is not None


def test_an_agent_adds_edits_and_deletes_its_own_replies(replies):
    alex = client_for("alex")
    added = alex.post(
        "/console/replies/",
        {"shortcut": "Wait", "title": "Please wait", "text": "One moment, {visitor}."},
    )
    assert added.status_code == 302
    mine = CannedReply.objects.get(owner=agent("alex"), shortcut="wait")  # kept lower-case
    page = alex.get("/console/replies/").content.decode()
    assert "#wait" in page and "Saved #wait." in page
    assert "Sam&#x27;s goodbye" not in page and "Invoice" not in page  # not Alex's to see
    edited = alex.post(
        f"/console/replies/{mine.pk}/edit/",
        {"shortcut": "wait", "title": "Hold on", "text": "Just a moment."},
    )
    assert edited.status_code == 302
    mine.refresh_from_db()
    assert (mine.title, mine.text) == ("Hold on", "Just a moment.")
    assert alex.get(f"/console/replies/{mine.pk}/delete/").status_code == 405
    assert alex.post(f"/console/replies/{mine.pk}/delete/").status_code == 302
    assert not CannedReply.objects.filter(pk=mine.pk).exists()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"shortcut": "x", "title": "X", "text": "Hi {name}"}, "Unknown placeholder {name}"),
        ({"shortcut": "x", "title": "X", "text": "Hi {visitor"}, "unmatched"),
        ({"shortcut": "bye", "title": "X", "text": "Again"}, "already have a reply"),
        ({"shortcut": "two words", "title": "X", "text": "Hi"}, "letters, numbers"),
        ({"shortcut": "x", "title": "", "text": "Hi"}, "This field is required."),
        ({"shortcut": "x", "title": "X", "text": "y" * 4001}, "at most 4000 characters"),
    ],
    ids=["placeholder", "braces", "duplicate", "shortcut", "empty-title", "too-long"],
)
def test_a_bad_reply_is_refused_with_a_clear_error_and_nothing_is_stored(replies, data, error):
    before = CannedReply.objects.count()
    response = client_for("alex").post("/console/replies/", data)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert CannedReply.objects.count() == before


def test_another_agents_reply_cannot_be_edited_or_deleted(replies):
    alex = client_for("alex")
    for reply in (replies["sam"], replies["global"], replies["l1"]):
        assert alex.get(f"/console/replies/{reply.pk}/edit/").status_code == 404
        assert alex.post(f"/console/replies/{reply.pk}/delete/").status_code == 404
    assert CannedReply.objects.count() == 5


def test_a_reply_is_personal_or_a_groups_never_both_and_a_global_shortcut_is_unique(replies):
    both = CannedReply(
        shortcut="x",
        title="X",
        text="X",
        owner=agent("alex"),
        group=AgentGroup.objects.get(name="L1 General"),
    )
    with pytest.raises(ValidationError, match="personal or a group"):
        both.full_clean()
    again = CannedReply(shortcut="hello", title="Again", text="X")
    with pytest.raises(ValidationError, match="A global reply already has this shortcut"):
        again.full_clean()


def test_the_replies_page_is_for_agents(replies):
    assert client_for("morgan").get("/console/replies/").status_code == 403
    assert Client().get("/console/replies/").status_code == 302


def test_a_shortcut_is_kept_in_lower_case_wherever_it_is_made(replies):
    """Admin as well as the console: the reply box matches what is typed in lower case, and
    #Refund and #refund are one shortcut."""
    made = CannedReply.objects.create(shortcut="Closing", title="Closing", text="Bye")
    assert made.shortcut == "closing"
    again = CannedReply(shortcut="HELLO", title="Again", text="X")
    with pytest.raises(ValidationError, match="A global reply already has this shortcut"):
        again.full_clean()
