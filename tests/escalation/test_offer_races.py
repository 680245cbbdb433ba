"""Offers answered at the same instant, on two real PostgreSQL connections."""

from datetime import timedelta

import pytest
from django.utils import timezone

from escalation import services
from escalation.models import Agent, Assignment, Offer
from tests.escalation.test_concurrency import race
from tests.escalation.test_offers import offer_of, online, start

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ROUNDS = 50


def test_two_agents_accepting_the_same_broadcast_offer_exactly_one_wins(desk):
    Agent.objects.filter(pk__in=[desk.ann.pk, desk.ben.pk]).update(capacity=ROUNDS)
    online(desk.ann, desk.ben)
    ann, ben = Agent.objects.get(pk=desk.ann.pk), Agent.objects.get(pk=desk.ben.pk)
    winners = set()
    for _ in range(ROUNDS):
        chat = start("Orders")
        a, b = offer_of(chat, ann), offer_of(chat, ben)
        outcomes = race(
            lambda a=a: services.accept_offer(offer_id=a.pk, agent=ann),
            lambda b=b: services.accept_offer(offer_id=b.pk, agent=ben),
        )
        assert sorted(outcomes) == ["already_taken", "won"]
        [assignment] = Assignment.objects.filter(chat=chat)
        winners.add(assignment.agent_id)
        statuses = sorted(Offer.objects.filter(chat=chat).values_list("status", flat=True))
        assert statuses == ["accepted", "withdrawn"]
        assert chat.flow.filter(kind="accepted").count() == 1
        assert chat.messages.filter(event="agent_joined").count() == 1
    print(f"{ROUNDS} rounds, winners: {sorted(winners)}")


def test_an_accept_racing_its_deadline_either_wins_or_lapses_never_both(desk):
    Agent.objects.filter(pk__in=[desk.ann.pk, desk.ben.pk]).update(capacity=ROUNDS)
    online(desk.ann, desk.ben)
    ann = Agent.objects.get(pk=desk.ann.pk)
    for _ in range(10):
        chat = start("Returns")
        offer = Offer.objects.get(chat=chat, status="pending")
        if offer.agent_id != ann.pk:
            services.decline_offer(offer_id=offer.pk, agent=Agent.objects.get(pk=offer.agent_id))
            offer = Offer.objects.get(chat=chat, status="pending")
        Offer.objects.filter(pk=offer.pk).update(deadline=timezone.now() + timedelta(seconds=0.02))
        results: list[str] = []
        outcomes = race(
            lambda o=offer: services.accept_offer(offer_id=o.pk, agent=ann),
            lambda o=offer, r=results: r.append(services.handle_offer_timeout(offer_id=o.pk)),
        )
        offer.refresh_from_db()
        if outcomes[0] == "won":
            assert offer.status == "accepted" and results in (["stale"], ["early"])
        else:
            assert outcomes[0] == "offer_lapsed" and offer.status == "lapsed"
        assert chat.flow.filter(kind__in=["accepted", "lapsed"]).count() == 1
