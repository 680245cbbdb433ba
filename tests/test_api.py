"""REST API v1: authentication, every permission boundary, error shapes, and the operations."""

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from chat.selectors import make_visitor_token
from escalation import services
from escalation.models import Agent

pytestmark = pytest.mark.django_db


def agent(name: str) -> Agent:
    return Agent.objects.get(user__username=name)


def client_for(username: str | None = None, *, token: str | None = None) -> APIClient:
    client = APIClient()
    if username:
        token = Token.objects.get_or_create(
            user=agent(username).user
            if Agent.objects.filter(user__username=username).exists()
            else _user(username)
        )[0].key
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def _user(username):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=username)


def start():
    return services.start_chat(
        visitor_name="Carol",
        visitor_email="",
        topic_name="Billing",
        first_message="Help",
        visitor_context={},
    )


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    return body["error"]


def test_anonymous_gets_401_in_the_error_shape(demo):
    response = APIClient().get("/api/v1/chats/")
    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"


def test_a_visitor_token_is_not_an_api_token(demo):
    chat = start()
    response = client_for(token=make_visitor_token(chat)).get("/api/v1/chats/")
    assert response.status_code == 401


def test_a_disabled_agent_is_refused(demo):
    api = client_for("alex")
    user = agent("alex").user
    user.is_active = False
    user.save()
    assert api.get("/api/v1/chats/").status_code == 401


def test_an_agent_sees_its_queue_not_another_groups(demo):
    chat = start()  # waits at L1 General
    alex, sam = client_for("alex"), client_for("sam")
    assert [c["id"] for c in alex.get("/api/v1/chats/").json()["results"]] == [chat.pk]
    assert sam.get("/api/v1/chats/").json()["results"] == []
    assert error_of(sam.get(f"/api/v1/chats/{chat.pk}/"))["code"] == "not_found"
    taking = sam.post(f"/api/v1/chats/{chat.pk}/take/")
    assert taking.status_code == 404 and error_of(taking)["code"] == "not_found"  # as if missing
    detail = alex.get(f"/api/v1/chats/{chat.pk}/").json()
    assert detail["status"] == "queued" and [f["kind"] for f in detail["flow"]] == [
        "created",
        "queued",
    ]


def test_a_chat_you_may_not_see_answers_exactly_as_a_missing_one(demo):
    """Issue 13: take answered 403 for another group's chat and 404 for a missing one, so an agent
    could tell which ids exist. Every chat endpoint now answers the same for both."""
    chat = start()  # waits at L1 General; Sam is L2 Billing
    sam = client_for("sam")
    for suffix, method in [
        ("", "get"),
        ("messages/", "get"),
        ("messages/", "post"),
        ("take/", "post"),
        ("end/", "post"),
        ("return/", "post"),
        ("escalate/", "post"),
    ]:
        body = {"text": "hi", "target": "billing", "note": "x"}
        call = getattr(sam, method)
        theirs = call(f"/api/v1/chats/{chat.pk}/{suffix}", body, format="json")
        missing = call(f"/api/v1/chats/{chat.pk + 1000}/{suffix}", body, format="json")
        assert theirs.status_code == missing.status_code == 404, suffix
        not_found = {"code": "not_found", "message": "No ChatSession matches the given query."}
        assert theirs.json() == missing.json() == {"error": not_found}


def test_a_manager_reads_every_chat_but_cannot_act(demo):
    chat = start()
    morgan = client_for("morgan")
    assert [c["id"] for c in morgan.get("/api/v1/chats/").json()["results"]] == [chat.pk]
    response = morgan.post(f"/api/v1/chats/{chat.pk}/take/")
    assert response.status_code == 403 and error_of(response)["code"] == "permission_denied"


def test_take_conflict_is_409(demo):
    services.set_presence(agent=agent("alex"), presence="online")
    services.set_presence(agent=agent("blair"), presence="online")
    from escalation.models import AgentGroup

    AgentGroup.objects.filter(name="L1 General").update(routing_policy="manual")
    chat = start()
    assert client_for("alex").post(f"/api/v1/chats/{chat.pk}/take/").json()["status"] == "active"
    response = client_for("blair").post(f"/api/v1/chats/{chat.pk}/take/")
    assert response.status_code == 409
    assert error_of(response) == {
        "code": "already_taken",
        "message": "This chat was already taken by another agent.",
    }


@pytest.fixture
def held(demo):
    services.set_presence(agent=agent("alex"), presence="online")
    chat = start()
    from escalation.models import ChatRoute

    assert ChatRoute.objects.get(chat=chat).agent == agent("alex")
    return chat


def test_messages_post_and_page_by_sequence_number(held):
    alex = client_for("alex")
    url = f"/api/v1/chats/{held.pk}/messages/"
    created = alex.post(url, {"text": "Hi Carol", "client_id": "k1"}, format="json")
    assert created.status_code == 201 and created.json()["kind"] == "agent"
    alex.post(url, {"text": "note", "internal": True}, format="json")
    page = alex.get(url, {"after": 0, "limit": 2}).json()
    assert [m["seq"] for m in page["messages"]] == [1, 2] and page["more"] is True
    rest = alex.get(url, {"after": page["last"]}).json()
    assert [m["text"] for m in rest["messages"]][-2:] == ["Hi Carol", "note"]
    bad = alex.post(url, {"text": ""}, format="json")
    assert bad.status_code == 400 and "text" in error_of(bad)["fields"]
    blank = alex.post(url, {"text": "   "}, format="json")
    assert error_of(blank)["code"] == "invalid_message"


def test_escalate_through_the_api(held):
    alex = client_for("alex")
    url = f"/api/v1/chats/{held.pk}/escalate/"
    unknown = alex.post(url, {"target": "nope"}, format="json")
    assert unknown.status_code == 400 and error_of(unknown)["code"] == "unknown_target"
    response = alex.post(
        url, {"target": "billing", "reason": "Billing question", "note": "Refund"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["target"] == "L2 Billing" and response.json()["tier"] == 2
    from escalation.models import Escalation

    assert Escalation.objects.get().requested_by == "api"
    again = alex.post(url, {"target": "billing", "note": "x"}, format="json")
    assert again.status_code == 409 and error_of(again)["code"] == "not_your_chat"


def test_return_to_queue_and_end(held):
    alex = client_for("alex")
    services.set_presence(agent=agent("alex"), presence="away")  # so it is not given back at once
    returned = alex.post(f"/api/v1/chats/{held.pk}/return/")
    assert returned.status_code == 200 and returned.json()["status"] == "queued"
    assert alex.post(f"/api/v1/chats/{held.pk}/end/").status_code == 409  # no longer held


def test_configuration_queues_and_presence(demo):
    start()
    alex = client_for("alex")
    tiers = alex.get("/api/v1/tiers/").json()
    assert [t["level"] for t in tiers] == [1, 2, 3]
    assert tiers[0]["public_name"] == "Level 1"  # none set: the name
    groups = {g["name"]: g["public_name"] for g in alex.get("/api/v1/groups/").json()}
    assert groups["L2 Billing"] == "the billing team"
    stages = {s["name"]: s for s in alex.get("/api/v1/stages/").json()}
    assert stages["L2 Technical"]["public_name"] == "technical support"
    assert [o["keyword"] for o in stages["L1 General"]["escalation_options"]] == [
        "billing",
        "technical",
        "engineering",
        "seniors",
    ]
    queues = alex.get("/api/v1/queues/").json()
    l1 = next(q for q in queues if q["name"].endswith("L1 General"))
    assert [w["position"] for w in l1["waiting"]] == [1]
    presence = alex.post("/api/v1/me/presence/", {"presence": "away"}, format="json")
    assert presence.json() == {"presence": "away"}
    assert alex.post("/api/v1/me/presence/", {"presence": "zzz"}, format="json").status_code == 400
    agents = {a["name"]: a for a in alex.get("/api/v1/agents/").json()}
    assert agents["Alex"]["presence"] == "away" and agents["Alex"]["load"] == 0


def test_reports_are_for_managers(demo):
    assert client_for("alex").get("/api/v1/reports/by-agent/").status_code == 403
    morgan = client_for("morgan")
    response = morgan.get("/api/v1/reports/by-agent/")
    assert response.status_code == 200 and response.json()["report"] == "by-agent"
    assert morgan.get("/api/v1/reports/nope/").status_code == 404
    bad = morgan.get("/api/v1/reports/over-time/", {"start": "2026-02-01", "end": "2026-01-01"})
    assert bad.status_code == 400 and error_of(bad)["code"] == "invalid"


def test_schema_and_docs_are_served(client):
    assert client.get("/api/schema/", {"format": "json"}).json()["info"]["title"] == "Tierline API"
    assert client.get(reverse("api-docs")).status_code == 200
