"""The by-agent report's offer columns and the predicted-vs-actual wait report, against numbers
worked out by hand, on chats made through the real services (times frozen, UTC).

Offers (desk: Orders = broadcast, Returns = round-robin hunt, accept timeout 30 s):
- 10:00:00 chat 1 (Orders) offered to Ann and Ben; Ann accepts 10:00:10 (Ben's is withdrawn)
- 10:01:00 chat 2 (Returns) offered to Ben (never offered, never assigned: first); Ben declines
  10:01:05 → Ann; Ann lets it lapse (handled 10:01:40)
- 10:02:00 chat 3 (Returns) offered to Ben (offered longest ago); Ben accepts 10:02:20
→ Ann: 2 answered (1 accepted, 1 lapsed), 50 %, median 10 s; Ben: 2 answered, 50 %, 20 s.
"""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from escalation import services
from escalation.models import Offer, QueueEntry, WaitEstimate
from reporting import accuracy, offers, summaries
from reporting.selectors import ReportFilter
from tests.escalation.test_offers import offer_of, online, start
from tests.reporting.test_reports import parse_csv

pytestmark = pytest.mark.django_db

UTC = dt.UTC
DAY = dt.date(2026, 3, 10)


def at(hh: int, mm: int, ss: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, 10, hh, mm, ss, tzinfo=UTC)


def travel(when: dt.datetime):
    return time_machine.travel(when, tick=False)


def period() -> ReportFilter:
    return ReportFilter(start=DAY, end=DAY)


@pytest.fixture
def offer_history(desk, settings):
    settings.TIME_ZONE = "UTC"
    with travel(at(9, 59)):
        online(desk.ann, desk.ben)
    with travel(at(10, 0)):
        first = start("Orders")
    with travel(at(10, 0, 10)):
        services.accept_offer(offer_id=offer_of(first, desk.ann).pk, agent=desk.ann)
    with travel(at(10, 1)):
        second = start("Returns")
    with travel(at(10, 1, 5)):
        services.decline_offer(offer_id=offer_of(second, desk.ben).pk, agent=desk.ben)
    with travel(at(10, 1, 40)):
        assert services.handle_offer_timeout(offer_id=offer_of(second, desk.ann).pk) == "lapsed"
    with travel(at(10, 2)):
        third = start("Returns")
    with travel(at(10, 2, 20)):
        services.accept_offer(offer_id=offer_of(third, desk.ben).pk, agent=desk.ben)
    return desk


def test_accept_rate_and_median_time_to_accept_per_agent(offer_history):
    desk = offer_history
    stats = offers.offer_stats_by_agent(period())
    assert stats[desk.ann.pk] == {
        "offers": 2,
        "accepted": 1,
        "declined": 0,
        "lapsed": 1,
        "accept_rate": 0.5,
        "median_accept_seconds": 10.0,
    }
    assert (stats[desk.ben.pk]["offers"], stats[desk.ben.pk]["declined"]) == (2, 1)
    assert stats[desk.ben.pk]["median_accept_seconds"] == 20.0
    assert desk.cat.pk not in stats
    assert Offer.objects.get(chat__topic="Orders", agent=desk.ben).status == "withdrawn"
    other_day = ReportFilter(start=DAY + dt.timedelta(days=1), end=DAY + dt.timedelta(days=1))
    assert offers.offer_stats_by_agent(other_day) == {}


def test_by_agent_page_and_csv_show_the_offer_columns(offer_history, client, manager_user):
    client.force_login(manager_user)
    query = {"start": DAY.isoformat(), "end": DAY.isoformat()}
    rows = parse_csv(client.get(reverse("reporting:by_agent"), {**query, "format": "csv"}))
    assert rows[0] == [
        "agent",
        "handled",
        "escalated",
        "escalation_rate",
        "offers_answered",
        "accepted",
        "accept_rate",
        "median_seconds_to_accept",
        "csat_answers",
        "csat_average",
    ]
    assert ["Ann", "0", "0", "", "2", "1", "0.500", "10.0", "0", ""] in rows
    assert ["Ben", "0", "0", "", "2", "1", "0.500", "20.0", "0", ""] in rows
    assert ["Cat", "0", "0", "", "0", "0", "", "", "0", ""] in rows
    page = client.get(reverse("reporting:by_agent"), query).content.decode()
    assert "<th>Accept rate</th>" in page and "<td>50%</td><td>10 s</td>" in page


# --- Predicted vs actual ----------------------------------------------------------------------


@pytest.fixture
def estimate_history(desk, settings):
    """Two Orders chats with an estimate each, taken 100 s and 120 s later; a Returns chat whose
    visitor left. Each start also stored its "queued" notice's estimate (no number: no data)."""
    settings.TIME_ZONE = "UTC"
    with travel(at(9, 59)):
        online(desk.ann)
    with travel(at(10, 0)):
        a, b = start("Orders"), start("Orders")
        services.set_presence(agent=desk.ann, presence="away")  # no offer for the Returns chat
        c = start("Returns")
    for chat, low, high in ((a, 60, 120), (b, 30, 60), (c, 60, 120)):
        WaitEstimate.objects.create(
            entry=QueueEntry.objects.get(chat=chat),
            position=1,
            low_seconds=low,
            high_seconds=high,
            created_at=at(10, 0),
        )
    services.set_presence(agent=desk.ann, presence="online")
    with travel(at(10, 1, 40)):  # predicted 90 s, waited 100 s: +10 s, within 25 %, as promised
        services.accept_offer(offer_id=offer_of(a, desk.ann).pk, agent=desk.ann)
    with travel(at(10, 2)):  # predicted 45 s, waited 120 s: +75 s, longer than promised (60 s)
        services.accept_offer(offer_id=offer_of(b, desk.ann).pk, agent=desk.ann)
    with travel(at(10, 3)):
        services.end_chat_by_visitor(chat_id=c.pk)


EXPECTED = [
    {
        "stage": "Broadcast › Broadcast",
        "shown": 4,
        "compared": 2,
        "median_error_seconds": 42.5,
        "within_25": 0.5,
        "longer_than_promised": 0.5,
    },
    {
        "stage": "Hunt › Hunt",
        "shown": 2,
        "compared": 0,
        "median_error_seconds": None,
        "within_25": None,
        "longer_than_promised": None,
    },
    {
        "stage": "All stages",
        "shown": 6,
        "compared": 2,
        "median_error_seconds": 42.5,
        "within_25": 0.5,
        "longer_than_promised": 0.5,
    },
]


def test_predicted_vs_actual_per_stage(estimate_history):
    assert offers.predicted_vs_actual(period()) == EXPECTED
    # The database's grouping and the Python one (SQLite) agree.
    spans = [summaries.day_bounds(DAY, DAY, summaries.site_tz())]
    for by_day in (False, True):
        assert sorted(accuracy._sql_groups(spans, by_day=by_day), key=repr) == sorted(
            accuracy._python_groups(spans, by_day=by_day), key=repr
        )
    # Summarised (the day is over and every entry that got an estimate has left): the same.
    assert summaries.summarise_pending() > 0
    assert DAY in summaries.summarised_days(DAY, DAY)
    assert offers.predicted_vs_actual(period()) == EXPECTED
    day_before = DAY - dt.timedelta(days=1)
    assert offers.predicted_vs_actual(ReportFilter(start=day_before, end=day_before)) == []


def test_predicted_vs_actual_page_and_csv(estimate_history, client, manager_user, alice_agent):
    client.force_login(manager_user)
    query = {"start": DAY.isoformat(), "end": DAY.isoformat()}
    page = client.get(reverse("reporting:predicted_vs_actual"), query).content.decode()
    assert "<td>Broadcast › Broadcast</td><td>4</td><td>2</td><td>+43 s</td><td>50%</td>" in page
    response = client.get(reverse("reporting:predicted_vs_actual"), {**query, "format": "csv"})
    assert response["Content-Disposition"] == (
        'attachment; filename="predicted-vs-actual-wait-2026-03-10-2026-03-10.csv"'
    )
    assert parse_csv(response) == [
        [
            "stage",
            "estimates_shown",
            "compared",
            "median_error_seconds",
            "within_25_percent",
            "longer_than_promised",
        ],
        ["Broadcast › Broadcast", "4", "2", "42.5", "0.500", "0.500"],
        ["Hunt › Hunt", "2", "0", "", "", ""],
        ["All stages", "6", "2", "42.5", "0.500", "0.500"],
    ]
    empty = client.get(
        reverse("reporting:predicted_vs_actual"), {"start": "2025-01-01", "end": "2025-01-31"}
    )
    assert "No estimates were shown in this period." in empty.content.decode()
    client.force_login(alice_agent.user)
    assert client.get(reverse("reporting:predicted_vs_actual")).status_code == 403


def test_the_flow_tab_lists_the_offers(offer_history, client, manager_user):
    client.force_login(manager_user)
    chat = Offer.objects.filter(chat__topic="Returns").earliest("pk").chat
    page = client.get(reverse("reporting:chat", args=[chat.pk]), {"tab": "flow"})
    text = page.content.decode()
    assert page.status_code == 200
    assert text.index("Offered to an agent") < text.index("Offer declined")
    assert text.index("Offer declined") < text.index("Offer lapsed")


def test_the_reports_api_has_the_offer_numbers(offer_history, client, manager_user):
    client.force_login(manager_user)
    query = {"start": DAY.isoformat(), "end": DAY.isoformat()}
    by_agent = client.get("/api/v1/reports/by-agent/", query).json()["data"]
    ann = next(r for r in by_agent if r["agent"] == "Ann")
    assert ann["offers"]["accept_rate"] == 0.5 and ann["offers"]["median_accept_seconds"] == 10


def test_the_reports_api_has_predicted_vs_actual(estimate_history, client, manager_user):
    client.force_login(manager_user)
    query = {"start": DAY.isoformat(), "end": DAY.isoformat()}
    accuracy = client.get("/api/v1/reports/predicted-vs-actual/", query).json()["data"]
    assert accuracy == EXPECTED


def test_a_day_waits_for_its_estimates_outcomes_before_it_is_summarised(demo, settings):
    from escalation.models import Agent, AgentGroup

    settings.TIME_ZONE = "UTC"
    AgentGroup.objects.filter(name="L1 General").update(routing_policy="manual")
    alex = Agent.objects.get(user__username="alex")
    services.set_presence(agent=alex, presence="online")
    day = dt.date(2026, 3, 1)
    with time_machine.travel(dt.datetime(2026, 3, 1, 23, 0, tzinfo=dt.UTC), tick=False):
        chat = services.start_chat(
            visitor_name="V",
            visitor_email="",
            topic_name="Billing",
            first_message="hi",
            visitor_context={},
        )
    assert WaitEstimate.objects.filter(entry__chat=chat).exists()
    summaries.summarise_pending()
    assert day not in summaries.summarised_days(day, day)  # still waiting: not yet
    with time_machine.travel(dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC), tick=False):
        services.take_chat(chat_id=chat.pk, agent=alex)
    summaries.summarise_pending()
    assert day in summaries.summarised_days(day, day)
    (row,) = [
        r
        for r in offers.predicted_vs_actual(ReportFilter(start=day, end=day))
        if r["stage"] != "All stages"
    ]
    assert row["shown"] == 1  # (no takes yet to estimate from: shown without numbers)
