"""CSAT in the by-agent report: the average survey rating and the number of answers, for chats
the agent was the last to hold at the report's tier, answered in the period; HTML, CSV and the
API alike, from one aggregate query."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from escalation.models import AgentGroup, Pipeline
from reporting import offers, satisfaction
from reporting.selectors import ReportFilter
from tests.escalation.test_survey import agent, answered, answered_after_escalation_to_sam
from tests.reporting.test_reports import parse_csv

pytestmark = pytest.mark.django_db


@pytest.fixture
def rated(demo: None) -> None:
    """Hand-worked: Alex (Level 1) is rated 5, 4 and 2 in the period (3 answers, average 11/3 =
    3.67) and 1 forty days ago (outside); Blair (Level 1) is rated 1 (1 answer, 1.00); Sam (Level
    2) is rated 3 after Alex escalated the chat to him: it counts for Sam at tier 2 only."""
    for rating in (5, 4, 2):
        answered("alex", rating)
    answered("alex", 1, days_ago=40)
    answered("blair", 1)
    answered_after_escalation_to_sam(3)


def period(tier_level: int = 1) -> ReportFilter:
    today = timezone.localdate()
    return ReportFilter(start=today - timedelta(days=7), end=today, tier_level=tier_level)


def query(tier_level: int = 1) -> dict[str, str]:
    f = period(tier_level)
    return {"start": f.start.isoformat(), "end": f.end.isoformat(), "tier": str(tier_level)}


def manager() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username="morgan"))
    return client


def test_csat_per_agent_at_the_reports_tier(rated: None) -> None:
    by_id = satisfaction.csat_by_agent(period())
    figures = {agent_id: (s["answers"], round(s["average"], 2)) for agent_id, s in by_id.items()}
    assert figures == {agent("alex").pk: (3, 3.67), agent("blair").pk: (1, 1.0)}
    tier2 = satisfaction.csat_by_agent(period(tier_level=2))
    assert {k: (v["answers"], v["average"]) for k, v in tier2.items()} == {agent("sam").pk: (1, 3)}


def test_csat_follows_the_group_agent_and_pipeline_filters(rated: None) -> None:
    f = period()
    alex_only = ReportFilter(start=f.start, end=f.end, agent_id=agent("alex").pk)
    assert set(satisfaction.csat_by_agent(alex_only)) == {agent("alex").pk}
    sales = ReportFilter(
        start=f.start, end=f.end, pipeline_id=Pipeline.objects.get(name="Sales").pk
    )
    assert satisfaction.csat_by_agent(sales) == {}  # every rated chat was a Support chat
    general = AgentGroup.objects.get(name="L1 General")
    in_group = ReportFilter(start=f.start, end=f.end, group_id=general.pk)
    assert {k: v["answers"] for k, v in satisfaction.csat_by_agent(in_group).items()} == {
        agent("alex").pk: 3,
        agent("blair").pk: 1,
    }


def test_the_by_agent_rows_take_one_more_query_for_csat(rated, django_assert_num_queries) -> None:
    f = period()
    f.tier_ids  # noqa: B018 - read once, as the rows do
    with django_assert_num_queries(1):
        satisfaction.csat_by_agent(f)
    rows = {r["agent"]: r["csat"] for r in offers.by_agent_with_offers(f)}
    assert rows["Alex"]["answers"] == 3 and rows["Blair"]["answers"] == 1
    assert "Sam" not in rows  # no tier-1 agent
    assert all(rows[name] == satisfaction.NO_CSAT for name in rows if name not in {"Alex", "Blair"})


def test_the_by_agent_page_and_csv_show_the_same_csat(rated: None) -> None:
    client = manager()
    csv_rows = parse_csv(client.get(reverse("reporting:by_agent"), {**query(), "format": "csv"}))
    header = csv_rows[0]
    assert header[-2:] == ["csat_answers", "csat_average"]
    csat = {row[0]: row[-2:] for row in csv_rows[1:]}
    assert csat["Alex"] == ["3", "3.67"] and csat["Blair"] == ["1", "1.00"]
    page = client.get(reverse("reporting:by_agent"), query()).content.decode()
    assert "<th>CSAT (answers)</th>" in page
    assert "<td>3.67 of 5 (3)</td>" in page and "<td>1.00 of 5 (1)</td>" in page
    assert "CSAT: the average survey rating (1 to 5)" in page
    tier2 = parse_csv(client.get(reverse("reporting:by_agent"), {**query(2), "format": "csv"}))
    assert {row[0]: row[-2:] for row in tier2[1:]}["Sam"] == ["1", "3.00"]


def test_the_api_rows_carry_the_csat_too(rated: None) -> None:
    client = manager()
    rows = client.get("/api/v1/reports/by-agent/", query()).json()["data"]
    alex = next(r for r in rows if r["agent"] == "Alex")
    assert alex["csat"]["answers"] == 3 and round(alex["csat"]["average"], 2) == 3.67
