"""The offers API: your open offers, accept, decline; the same services as the console."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from escalation.models import Offer
from tests.escalation.test_offers import offer_of, online, start

pytestmark = pytest.mark.django_db


def api(agent) -> APIClient:
    client = APIClient()
    client.force_authenticate(agent.user)
    return client


def test_an_agent_lists_accepts_and_declines_its_offers(desk, manager_user):
    online(desk.ann, desk.ben)
    chat, other = start("Orders"), start("Orders")
    listed = api(desk.ann).get(reverse("api-offers")).json()
    assert [(o["chat"], o["policy"]) for o in listed] == [
        (chat.pk, "broadcast"),
        (other.pk, "broadcast"),
    ]
    accept = reverse("api-offer-accept", args=[offer_of(chat, desk.ann).pk])
    response = api(desk.ann).post(accept)
    assert response.status_code == 200 and response.json()["agent"] == "Ann"
    late = api(desk.ben).post(reverse("api-offer-accept", args=[offer_of(chat, desk.ben).pk]))
    assert late.status_code == 409 and late.json()["error"]["code"] == "already_taken"
    decline = api(desk.ben).post(reverse("api-offer-decline", args=[offer_of(other, desk.ben).pk]))
    assert decline.status_code == 204
    assert Offer.objects.get(chat=other, agent=desk.ben).status == "declined"
    again = api(desk.ben).post(reverse("api-offer-decline", args=[offer_of(other, desk.ben).pk]))
    assert again.status_code == 409 and again.json()["error"]["code"] == "offer_closed"
    # Someone else's offer, and a user who is not an agent.
    theirs = api(desk.ben).post(reverse("api-offer-accept", args=[offer_of(other, desk.ann).pk]))
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "offer_not_found"
    manager = APIClient()
    manager.force_authenticate(manager_user)
    assert manager.get(reverse("api-offers")).status_code == 403
