"""The friction report against figures worked out by hand, on chats made through the services.

Site time zone Europe/Paris. Day 1 = 2026-03-10, day 2 = 2026-03-11 (Paris dates; Paris is
UTC+1 then). Support chats wait at "L1 General" (tier 1); Orders chats at "Orders" (tier 1),
whose drop stage is "Order follow-up" (tier 1, group L1 Follow-up).

- A: starts 10:00 day 1; Alex takes 10:02 (wait 120 s), writes 10:03 (first response 60 s),
     resolves 10:10 (handle 480 s).
- B: starts 11:00; Blair takes 11:01 (60 s), writes 11:05 (240 s), escalates to L2 Billing
     11:10 (handle 540 s); Sam takes 11:13 (a tier-2 wait of 180 s), writes 11:14 (60 s),
     resolves 11:30 (handle 1020 s).
- C: starts 23:50 day 1; the visitor leaves 00:05 day 2 (abandoned after 900 s, on day 2 in
     Paris but on day 1 in UTC: 23:05 UTC).
- D: an Orders chat, starts 09:00 day 2; the visitor leaves 09:04 (abandoned after 240 s) and
     it is dropped to "Order follow-up"; Blair takes it there 09:30 (1560 s after the drop),
     never writes, ends it 09:40 (handle 600 s).
- E: starts 10:00 day 2; Alex takes 10:01 (60 s), writes 10:01:30 (30 s), still holds it.
- F: starts 23:30 day 2, still waiting.
- G: starts 23:59 on 2026-03-09, before the period; the visitor leaves 00:01 day 1 (abandoned
     after 120 s, in the period: each figure counts when it happened).
- H: starts 00:00:30 on 2026-03-12 (after the period in Paris; 23:00:30 UTC on day 2).

Percentiles are PostgreSQL's percentile_cont (linear between the closest ranks).
"""

import csv
import datetime as dt
import io
import math
import zoneinfo

import pytest
import time_machine
from django.urls import reverse

from chat.models import ChatSession
from escalation import services
from escalation.models import Agent, AgentGroup, Assignment, Pipeline, QueueEntry, Stage
from reporting import charts, durations, friction, summaries
from reporting.models import DailyDuration
from reporting.selectors import ReportFilter
from tests.factories import UserFactory

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
DAY1, DAY2 = dt.date(2026, 3, 10), dt.date(2026, 3, 11)

pytestmark = pytest.mark.django_db


def at(day: dt.date, hh: int, mm: int, ss: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=PARIS)


def agent(name: str) -> Agent:
    return Agent.objects.get(user__username=name)


def travel(when: dt.datetime):
    return time_machine.travel(when, tick=False)


def start(when: dt.datetime, topic: str = "Billing"):
    with travel(when):
        return services.start_chat(
            visitor_name="V",
            visitor_email="",
            topic_name=topic,
            first_message="hello",
            visitor_context={},
        )


def take(chat, who: str, when: dt.datetime) -> None:
    with travel(when):
        services.take_chat(chat_id=chat.pk, agent=agent(who))


def write(chat, who: str, when: dt.datetime) -> None:
    with travel(when):
        services.post_agent_message(chat_id=chat.pk, agent=agent(who), text="Hello")


def resolve(chat, who: str, when: dt.datetime) -> None:
    with travel(when):
        services.end_chat_by_agent(chat_id=chat.pk, agent=agent(who))


def leave(chat, when: dt.datetime) -> None:
    with travel(when):
        services.end_chat_by_visitor(chat_id=chat.pk)


@pytest.fixture(params=["raw", "summarised"])
def history(request, demo, settings):
    """The chats above; every test runs twice: from the raw rows (today's path), and with the
    finished days summarised first. Then day 1 and the days before come from the histograms and
    day 2 from the raw rows: E's turn has not ended, so day 2's histograms are not final."""
    chats = make_history(settings)
    if request.param == "summarised":
        assert summaries.summarise_pending() > 0
        day0 = DAY1 - dt.timedelta(days=1)
        assert summaries.summarised_days(day0, DAY2, with_durations=True) == {day0, DAY1}
        assert DailyDuration.objects.filter(day=DAY1).exists()
    return chats


def make_history(settings):
    settings.TIME_ZONE = "Europe/Paris"
    # Agents pick chats themselves: nothing is assigned or offered behind the story's back.
    AgentGroup.objects.update(routing_policy="manual")
    for name in ["alex", "blair", "sam"]:
        services.set_presence(agent=agent(name), presence="online")
    chats = {}
    chats["G"] = start(dt.datetime(2026, 3, 9, 23, 59, tzinfo=PARIS))
    leave(chats["G"], at(DAY1, 0, 1))  # abandoned on day 1, but it started before the period
    chats["A"] = start(at(DAY1, 10, 0))
    take(chats["A"], "alex", at(DAY1, 10, 2))
    write(chats["A"], "alex", at(DAY1, 10, 3))
    resolve(chats["A"], "alex", at(DAY1, 10, 10))
    chats["B"] = start(at(DAY1, 11, 0))
    take(chats["B"], "blair", at(DAY1, 11, 1))
    write(chats["B"], "blair", at(DAY1, 11, 5))
    with travel(at(DAY1, 11, 10)):
        services.escalate_chat(
            chat_id=chats["B"].pk, agent=agent("blair"), keyword="billing", note="n"
        )
    take(chats["B"], "sam", at(DAY1, 11, 13))
    write(chats["B"], "sam", at(DAY1, 11, 14))
    resolve(chats["B"], "sam", at(DAY1, 11, 30))
    chats["C"] = start(at(DAY1, 23, 50))
    leave(chats["C"], at(DAY2, 0, 5))
    chats["D"] = start(at(DAY2, 9, 0), topic="Where is my order?")
    leave(chats["D"], at(DAY2, 9, 4))
    take(chats["D"], "blair", at(DAY2, 9, 30))
    resolve(chats["D"], "blair", at(DAY2, 9, 40))
    chats["E"] = start(at(DAY2, 10, 0))
    take(chats["E"], "alex", at(DAY2, 10, 1))
    write(chats["E"], "alex", at(DAY2, 10, 1, 30))
    chats["F"] = start(at(DAY2, 23, 30))
    chats["H"] = start(dt.datetime(2026, 3, 12, 0, 0, 30, tzinfo=PARIS))
    return chats


def two_days(**kw) -> ReportFilter:
    return ReportFilter(start=DAY1, end=DAY2, **kw)


def figures(row: dict, names: tuple[str, ...]) -> tuple:
    """The named figures, seconds rounded to a millionth (1128.0000000000002 is 1128)."""
    return tuple(round(row[n], 6) if isinstance(row[n], float) else row[n] for n in names)


QUEUE = ("started", "abandoned", "abandoned_median", "abandoned_p90", "dropped")
ANSWERS = ("answered", "answer_median", "answer_p90")
REPLIES = ("replied", "reply_median", "reply_p90")
HANDLING = ("handled", "handle_median", "handle_p90", "handle_total")


def test_the_totals_at_tier_1(history):
    t = friction.friction(two_days())["totals"]
    assert figures(t, QUEUE) == (6, 3, 240, 768, 1)  # A-F; G 120 s, C 900 s, D 240 s; D
    assert figures(t, ANSWERS) == (4, 90, 1128)  # A 120, B 60, D 1560, E 60 (Sam's is tier 2)
    assert figures(t, REPLIES) == (3, 60, 204)  # A 60, B 240, E 30; D: Blair never wrote
    assert figures(t, HANDLING) == (3, 540, 588, 1620)  # A 480, B 540, D 600; E still held


def test_the_tier_table_compares_every_tier(history):
    rows = {r["label"]: r for r in friction.friction(two_days())["tables"]["tier"]}
    assert list(rows) == ["Level 1", "Level 2"]
    assert figures(rows["Level 1"], QUEUE + ANSWERS) == (6, 3, 240, 768, 1, 4, 90, 1128)
    two = rows["Level 2"]  # B's second wait belongs to the receiving tier
    assert figures(two, QUEUE) == (0, 0, None, None, 0)
    assert figures(two, ANSWERS + REPLIES + HANDLING) == (
        1,
        180,
        180,
        1,
        60,
        60,
        1,
        1020,
        1020,
        1020,
    )
    tier2 = friction.friction(two_days(tier_level=2))
    assert figures(tier2["totals"], ANSWERS) == (1, 180, 180)
    assert [r["label"] for r in tier2["tables"]["tier"]] == ["Level 1", "Level 2"]
    assert [r["label"] for r in tier2["tables"]["agent"]] == ["Sam"]


def test_per_stage(history):
    rows = {r["label"]: r for r in friction.friction(two_days())["tables"]["stage"]}
    assert list(rows) == ["Orders › Orders", "Orders › Order follow-up", "Support › L1 General"]
    assert figures(rows["Support › L1 General"], QUEUE + ANSWERS) == (
        5, 2, 510, 822, 0, 3, 60, 108,  # A, B, C, E, F started; G, C abandoned; A, B, E taken
    )  # fmt: skip
    assert figures(rows["Orders › Orders"], QUEUE + ANSWERS) == (1, 1, 240, 240, 0, 0, None, None)
    follow_up = rows["Orders › Order follow-up"]
    assert figures(follow_up, QUEUE + ANSWERS) == (0, 0, None, None, 1, 1, 1560, 1560)
    assert figures(follow_up, REPLIES + HANDLING) == (0, None, None, 1, 600, 600, 600)


def test_per_group_and_per_agent_show_what_they_answered(history):
    report = friction.friction(two_days())
    groups = {r["label"]: r for r in report["tables"]["group"]}
    assert list(groups) == ["L1 Follow-up", "L1 General"]
    general = groups["L1 General"]
    assert figures(general, ANSWERS + REPLIES) == (3, 60, 108, 3, 60, 204)
    assert figures(general, HANDLING) == (2, 510, 534, 1020)
    assert figures(general, QUEUE) == (None,) * 5  # a queue's waits belong to no one group
    agents = {r["label"]: r for r in report["tables"]["agent"]}
    assert list(agents) == ["Alex", "Blair"]
    assert figures(agents["Alex"], ANSWERS + REPLIES + HANDLING) == (
        2, 90, 114, 2, 45, 57, 1, 480, 480, 480,
    )  # fmt: skip
    assert figures(agents["Blair"], ANSWERS + REPLIES + HANDLING) == (
        2, 810, 1410, 1, 240, 240, 2, 570, 594, 1140,
    )  # fmt: skip


def test_per_day_in_the_site_time_zone(history):
    days = friction.friction(two_days())["days"]
    assert days == [
        {"day": DAY1, "started": 3, "answered": 2, "abandoned": 1},  # A, B, C; A, B; G
        {"day": DAY2, "started": 3, "answered": 2, "abandoned": 2},  # D, E, F; D, E; C, D
    ]


def test_a_day_ends_at_midnight_of_the_site_time_zone(history, settings):
    # In UTC, G left on the day before the period (23:01), C on day 1 (23:05), and H started
    # on day 2 (23:00:30).
    settings.TIME_ZONE = "UTC"
    days = friction.friction(two_days())["days"]
    assert days == [
        {"day": DAY1, "started": 3, "answered": 2, "abandoned": 1},
        {"day": DAY2, "started": 4, "answered": 2, "abandoned": 1},
    ]
    day1 = friction.friction(ReportFilter(start=DAY1, end=DAY1))["totals"]
    assert figures(day1, QUEUE) == (3, 1, 900, 900, 0)


def test_filters_narrow_the_answers(history):
    blair = friction.friction(two_days(agent_id=agent("blair").pk))
    assert figures(blair["totals"], ANSWERS) == (2, 810, 1410)
    assert figures(blair["totals"], QUEUE) == (6, 3, 240, 768, 1)  # the tier's queues still
    assert [r["label"] for r in blair["tables"]["agent"]] == ["Blair"]
    orders = friction.friction(two_days(pipeline_id=Pipeline.objects.get(name="Orders").pk))
    assert figures(orders["totals"], QUEUE + ANSWERS) == (1, 1, 240, 240, 1, 1, 1560, 1560)
    group = AgentGroup.objects.get(name="L1 Follow-up")
    assert figures(friction.friction(two_days(group_id=group.pk))["totals"], ANSWERS) == (
        1,
        1560,
        1560,
    )


def test_an_empty_period(history, client, manager_user):
    report = friction.friction(ReportFilter(start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 3)))
    assert figures(report["totals"], QUEUE + ANSWERS + REPLIES + HANDLING) == (
        0, 0, None, None, 0, 0, None, None, 0, None, None, 0, None, None, None,
    )  # fmt: skip
    assert report["tables"] == {"tier": [], "stage": [], "group": [], "agent": []}
    assert [d["started"] for d in report["days"]] == [0, 0, 0]
    client.force_login(manager_user)
    page = client.get(reverse("reporting:friction"), {"start": "2025-01-01", "end": "2025-01-03"})
    text = page.content.decode()
    assert page.status_code == 200
    assert "No chats waited or were answered at tier 1 in this period." in text
    assert "No data in this period." in text  # the chart
    assert "No chats answered at tier 1 in this period." in text  # the agent table


def parse_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_the_csv_holds_the_numbers_of_the_page(history, client, manager_user):
    client.force_login(manager_user)
    query = {"start": DAY1.isoformat(), "end": DAY2.isoformat(), "format": "csv"}
    response = client.get(reverse("reporting:friction"), query)
    assert response["Content-Disposition"] == (
        'attachment; filename="friction-all-2026-03-10-2026-03-11.csv"'
    )
    rows = parse_csv(response)
    assert rows[0] == friction.CSV_HEADER
    assert rows[1] == ["total", "All", "6", "3", "240", "768", "1", "4", "90", "1128", "3", "60",
                       "204", "3", "540", "588", "1620"]  # fmt: skip
    assert ["tier", "Level 2", "0", "0", "", "", "0", "1", "180", "180", "1", "60", "60", "1",
            "1020", "1020", "1020"] in rows  # fmt: skip
    assert ["agent", "Blair", "", "", "", "", "", "2", "810", "1410", "1", "240", "240", "2",
            "570", "594", "1140"] in rows  # fmt: skip
    assert rows[-2:] == [
        ["day", "2026-03-10", "3", "1", "", "", "", "2", *[""] * 9],
        ["day", "2026-03-11", "3", "2", "", "", "", "2", *[""] * 9],
    ]
    assert [r[0] for r in rows[1:]] == (
        ["total"] + ["tier"] * 2 + ["stage"] * 3 + ["group"] * 2 + ["agent"] * 2 + ["day"] * 2
    )
    by_agent = parse_csv(client.get(reverse("reporting:friction"), {**query, "by": "agent"}))
    assert [r[:2] for r in by_agent[1:]] == [
        ["total", "All"],
        ["agent", "Alex"],
        ["agent", "Blair"],
        ["day", "2026-03-10"],
        ["day", "2026-03-11"],
    ]


def test_the_page_reads_as_the_numbers(history, client, manager_user):
    client.force_login(manager_user)
    query = {"start": DAY1.isoformat(), "end": DAY2.isoformat()}
    html = client.get(reverse("reporting:friction"), query).content.decode()
    assert "<h1>Friction: where chats stall</h1>" in html
    # Speed to answer at tier 1: 4 answered, median 90 s, 90th percentile 1128 s.
    assert '<th scope="row">Answered: speed to answer</th><td>4</td><td>1 min 30 s</td>' in html
    assert "<td>3 of 4 answered</td><td>1 min 0 s</td><td>3 min 24 s</td>" in html
    assert "<svg" in html and "Tue 2026-03-10: started 3, answered 2, abandoned 1" in html
    assert "Orders › Order follow-up" in html and "<bdi>Blair</bdi>" in html
    only_stage = client.get(reverse("reporting:friction"), {**query, "by": "stage"})
    text = only_stage.content.decode()
    assert "Per stage at tier 1" in text and "Per agent" not in text
    nav = client.get(reverse("reporting:home")).content.decode()
    assert reverse("reporting:friction") in nav


def test_an_agent_name_is_escaped(history, client, manager_user):
    Agent.objects.filter(user__username="blair").update(display_name="<b>=Blair</b>")
    client.force_login(manager_user)
    query = {"start": DAY1.isoformat(), "end": DAY2.isoformat()}
    html = client.get(reverse("reporting:friction"), query).content.decode()
    assert "&lt;b&gt;=Blair&lt;/b&gt;" in html and "<b>=Blair" not in html
    rows = parse_csv(client.get(reverse("reporting:friction"), {**query, "format": "csv"}))
    assert ["agent", "<b>=Blair</b>"] in [r[:2] for r in rows]  # "<" starts no formula
    Agent.objects.filter(user__username="blair").update(display_name="=HYPERLINK(1)")
    rows = parse_csv(client.get(reverse("reporting:friction"), {**query, "format": "csv"}))
    assert ["agent", "'=HYPERLINK(1)"] in [r[:2] for r in rows]


def test_only_managers_see_it(client, alice_agent, manager_user):
    assert client.get(reverse("reporting:friction")).status_code == 302
    client.force_login(alice_agent.user)
    assert client.get(reverse("reporting:friction")).status_code == 403
    assert client.get(reverse("reporting:friction"), {"format": "csv"}).status_code == 403
    client.force_login(manager_user)
    assert client.get(reverse("reporting:friction")).status_code == 200


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"by": "planet"}, "Break the report down by tier, stage, group or agent (or all)."),
        ({"start": "2026-03-11", "end": "2026-03-10"}, "The start date is after the end date."),
        ({"start": "yesterday"}, "Enter a valid date."),
        ({"tier": "x"}, "Select a valid choice."),
        ({"agent": "999999"}, "Select a valid choice."),
        ({"start": "9999-12-30", "end": "9999-12-31"}, "Choose dates between the years 2000"),
    ],
)
def test_bad_filters_are_explained(demo, client, manager_user, query, says):
    client.force_login(manager_user)
    for extra in ({}, {"format": "csv"}):
        response = client.get(reverse("reporting:friction"), {**query, **extra})
        assert response.status_code == 400
        assert says in response.content.decode()


def test_the_api_gives_the_same_figures(history, client):
    from rest_framework.authtoken.models import Token

    manager = UserFactory(username="api_manager", roles=["Managers"])
    token = Token.objects.create(user=manager)
    headers = {"HTTP_AUTHORIZATION": f"Token {token.key}"}
    query = {"start": DAY1.isoformat(), "end": DAY2.isoformat()}
    body = client.get("/api/v1/reports/friction/", query, **headers).json()
    assert body["data"]["totals"]["answered"] == 4
    assert body["data"]["totals"]["answer_p90"] == pytest.approx(1128)
    assert [r["label"] for r in body["data"]["agent"]] == ["Alex", "Blair"]
    assert body["data"]["days"][1] == {
        "day": "2026-03-11",
        "started": 3,
        "answered": 2,
        "abandoned": 2,
    }
    only = client.get("/api/v1/reports/friction/", {**query, "by": "tier"}, **headers).json()
    assert set(only["data"]) == {"totals", "tier", "days"}
    bad = client.get("/api/v1/reports/friction/", {"by": "planet"}, **headers)
    assert bad.status_code == 400


def test_day_labels_stay_readable_on_long_periods():
    def labelled(n: int) -> list[str]:
        days = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(n)]
        return [label for label in charts.day_labels(days) if label]

    assert labelled(7) == ["1 Jan", "2 Jan", "3 Jan", "4 Jan", "5 Jan", "6 Jan", "7 Jan"]
    assert labelled(30) == ["5 Jan", "12 Jan", "19 Jan", "26 Jan"]  # Mondays
    year = labelled(400)
    assert year[:3] == ["Jan 2026", "Feb", "Mar"] and year[-2:] == ["Jan 2027", "Feb"]
    for n in (7, 14, 30, 98, 99, 400):
        assert len(labelled(n)) <= 14, n


def test_a_long_period_labels_months_with_the_year_where_it_starts():
    days = [dt.date(2025, 3, 10) + dt.timedelta(days=i) for i in range(400)]
    labels = [label for label in charts.day_labels(days) if label]
    assert labels[:2] == ["Apr 2025", "May"] and "Jan 2026" in labels  # no crowded "Mar 2025"


@pytest.mark.parametrize(
    ("largest", "ticks"),
    [
        (0, [0, 1, 2, 3, 4]),
        (3, [0, 1, 2, 3, 4]),
        (5, [0, 2, 4, 6, 8]),
        (20, [0, 5, 10, 15, 20]),
        (21, [0, 10, 20, 30, 40]),
        (1234, [0, 500, 1000, 1500, 2000]),
    ],
)
def test_the_axis_shows_exact_counts(largest, ticks):
    assert charts.count_ticks(largest) == ticks


def test_each_bar_is_as_tall_as_its_count():
    rows = [
        {"day": DAY1, "started": 3, "answered": 2, "abandoned": 0},
        {"day": DAY2, "started": 1, "answered": 4, "abandoned": 1},
    ]
    chart = charts.day_columns(rows, series=list(friction.DAY_SERIES))
    plot_h = chart["axis_y"] - chart["ticks"][-1]["y"]
    heights = [[bar["h"] for bar in day["parts"]] for day in chart["columns"]]
    assert [t["value"] for t in chart["ticks"]] == [0, 1, 2, 3, 4]
    assert heights == [
        [round(plot_h * 3 / 4, 1), round(plot_h / 2, 1), 0],
        [round(plot_h / 4, 1), round(plot_h, 1), round(plot_h / 4, 1)],
    ]
    assert chart["columns"][1]["title"] == "Wed 2026-03-11: started 1, answered 4, abandoned 1"
    assert not chart["empty"]
    assert charts.day_columns([{**rows[0], "started": 0, "answered": 0}], series=["started"])[
        "empty"
    ]


# --- The days summarised into duration histograms ---------------------------------------------


def test_with_every_day_summarised_the_figures_are_the_same(demo, settings):
    chats = make_history(settings)
    summaries.summarise_pending()
    assert DAY2 not in summaries.summarised_days(DAY1, DAY2, with_durations=True)  # E's turn
    assert summaries.summarise_pending() == 0  # nor on the next run, while it is open
    resolve(chats["E"], "alex", dt.datetime(2026, 3, 12, 10, 11, tzinfo=PARIS))
    leave(chats["F"], dt.datetime(2026, 3, 12, 0, 10, tzinfo=PARIS))  # after the period
    filters = [
        two_days(),
        two_days(tier_level=2),
        two_days(agent_id=agent("blair").pk),
        two_days(group_id=AgentGroup.objects.get(name="L1 Follow-up").pk),
        two_days(pipeline_id=Pipeline.objects.get(name="Orders").pk),
        ReportFilter(start=DAY2, end=DAY2),
    ]
    raw = [friction.friction(f) for f in filters]
    assert summaries.summarise_pending() > 0  # day 2 again, now with its histograms
    assert summaries.summarised_days(DAY1, DAY2, with_durations=True) == {DAY1, DAY2}
    assert summaries.summarise_pending() == 0  # nothing left to do
    assert [friction.friction(f) for f in filters] == raw
    t = raw[0]["totals"]
    assert figures(t, QUEUE + ANSWERS + REPLIES) == (6, 3, 240, 768, 1, 4, 90, 1128, 3, 60, 204)
    # E's turn ended 24 h 10 min after the take: 87,000 s, in a bucket of whole minutes.
    assert figures(t, HANDLING) == (4, 570, 61080, 88620)  # A 480, B 540, D 600, E 87,000


def exact_percentile(values: list[float], fraction: float) -> tuple[float, float, float]:
    """percentile_cont, and the two ranked values it is read from."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = ordered[math.floor(position)], ordered[math.ceil(position)]
    return low + (position - math.floor(position)) * (high - low), low, high


def test_histogram_percentiles_are_within_the_stated_bound_of_the_exact_ones(demo, settings):
    """Durations with fractions of a second, from under a second to four hours: each median and
    90th percentile is within 0.5 s of the exact one when both durations it is read from are
    under an hour, within 30 s otherwise; the same from the raw rows and the summaries."""
    settings.TIME_ZONE = "Europe/Paris"
    alex = agent("alex")
    stage = Stage.objects.get(name="L1 General")
    waits, replies, handles = [], [], []
    for i in range(150):
        wait, reply, handle = (0.3 + i * 97.31) % 5000, 0.45 + i * 2.617, 1.2 + i * 96.457
        entered = at(DAY1, 1, 0) + dt.timedelta(seconds=60 * i + 0.123 * i)
        taken = entered + dt.timedelta(seconds=wait)
        chat = ChatSession.objects.create(visitor_name="V", topic="Billing", status="ended")
        QueueEntry.objects.create(
            chat=chat,
            stage=stage,
            tier=stage.tier,
            reason=QueueEntry.Reason.START,
            waiting_since=entered,
            entered_at=entered,
            left_at=taken,
            outcome=QueueEntry.Outcome.TAKEN,
        )
        Assignment.objects.create(
            chat=chat,
            agent=alex,
            tier=stage.tier,
            stage=stage,
            group=AgentGroup.objects.get(name="L1 General"),
            started_at=taken,
            replied_at=taken + dt.timedelta(seconds=reply),
            ended_at=taken + dt.timedelta(seconds=handle),
            end_reason=Assignment.EndReason.RESOLVED,
        )
        waits.append(wait)
        replies.append(reply)
        handles.append(handle)
    # The durations as the database stores them (microseconds).
    waits = [round(w, 6) for w in waits]
    raw = friction.friction(ReportFilter(start=DAY1, end=DAY1))["totals"]
    assert summaries.summarise(DAY1, DAY1) == 1
    summarised = friction.friction(ReportFilter(start=DAY1, end=DAY1))["totals"]
    assert summarised == raw
    coarse = 0
    for stem, values in (("answer", waits), ("reply", replies), ("handle", handles)):
        for name, fraction in (("median", 0.5), ("p90", 0.9)):
            exact, low, high = exact_percentile(values, fraction)
            bound = 0.5 if max(low, high) < durations.EXACT_BELOW_SECONDS else 30
            coarse += bound == 30
            assert abs(raw[f"{stem}_{name}"] - exact) <= bound + 1e-6, (stem, name, exact)
    assert coarse >= 2  # both kinds of bucket were read
    assert raw["handle_total"] == pytest.approx(sum(handles), abs=1e-3)  # exact, not bucketed


@pytest.mark.parametrize(
    "seconds",
    [0.0, 0.4999, 0.5, 1.5, 2.5, 59.5, 3599.4, 3599.5, 3599.99, 3600.0, 3629.99, 3630.0, 86_430.0],
)
def test_a_duration_falls_in_the_same_bucket_in_sql_and_python(seconds):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the SQL buckets are PostgreSQL's")
    with connection.cursor() as cursor:
        bucket = durations.BUCKET_SQL.format(s="d.s")
        query = f"SELECT ({bucket})::integer FROM (SELECT %s::float8 AS s) AS d"  # noqa: S608 - our SQL, value bound
        cursor.execute(query, [seconds])
        in_sql = cursor.fetchone()[0]
    assert in_sql == durations.bucket(seconds)
    exact_under_an_hour = seconds < durations.EXACT_BELOW_SECONDS
    assert abs(in_sql - seconds) <= (0.5 if exact_under_an_hour else 30)
