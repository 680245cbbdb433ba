"""Every report against numbers worked out by hand, on chats made through the real services.

Site time zone Europe/Paris. Day 1 = 2026-03-10, day 2 = 2026-03-11 (Paris dates).
- A: Alex takes it 10:00, resolves 10:05                       → handled by Alex, day 1
- B: Blair takes 11:00, escalates to billing 11:10 ("Billing question"); Sam takes 11:13
     → escalated by Blair, day 1; waited 180 s
- C: Alex takes 23:50 day 1, escalates to technical 00:10 day 2 (crosses midnight: 23:10 UTC
     on day 1); Kim takes 00:15 → escalated by Alex, day 2; waited 300 s
- D: Alex takes 09:00 day 2, escalates to billing 09:05; nobody takes it; L2 Billing times out
     09:07 → L2 Technical; that times out 09:09 → back to Alex (previous tier); Alex escalates to
     billing again 09:20; Sam takes 09:21                      → escalated twice by Alex, day 2
- E: a Sales chat nobody takes: times out 10:02 day 2 → group L2 Billing; times out 10:04 →
     "leave a message"                                         → timeouts and fallbacks only
- Dana: a tier-1 agent with no chats at all.
"""

import csv
import datetime as dt
import io
import zoneinfo

import pytest
import time_machine
from django.urls import reverse

from escalation import services
from escalation.models import Agent, AgentGroup, QueueEntry
from reporting import selectors, summaries
from reporting.selectors import ReportFilter
from tests.factories import AgentFactory, UserFactory

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
DAY1, DAY2 = dt.date(2026, 3, 10), dt.date(2026, 3, 11)


def at(day: dt.date, hh: int, mm: int) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=PARIS)


def agent(name: str) -> Agent:
    return Agent.objects.get(user__username=name)


@pytest.fixture(params=["raw", "summarised"])
def history(request, demo, settings):
    """The chats above; every report test runs twice: counted from the raw rows (today's path),
    and with the finished days counted into the daily summaries first (the path of the past)."""
    chats = make_history(settings)
    if request.param == "summarised":
        assert summaries.summarise_pending() > 0
        assert summaries.summarised_days(DAY1, DAY2) == {DAY1, DAY2}
    return chats


def make_history(settings):
    settings.TIME_ZONE = "Europe/Paris"
    AgentGroup.objects.filter(name__in=["L1 General", "L2 Technical"]).update(
        routing_policy="manual"
    )
    AgentFactory(
        user=UserFactory(username="dana", roles=["Agents"]),
        display_name="Dana",
        member_of=[AgentGroup.objects.get(name="L1 General")],
    )
    for name in ["alex", "blair", "sam", "kim", "dana"]:
        services.set_presence(agent=agent(name), presence="online")
    chats = {}

    def travel(when):
        return time_machine.travel(when, tick=False)

    def start(topic="Billing"):
        return services.start_chat(
            visitor_name="V",
            visitor_email="",
            topic_name=topic,
            first_message="hello",
            visitor_context={"page": "/help"},
        )

    def expire(chat, when):
        with travel(when):
            entry = QueueEntry.objects.get(chat=chat, left_at__isnull=True)
            assert services.handle_wait_timeout(entry_id=entry.pk) == "fell back"

    with travel(at(DAY1, 10, 0)):
        chats["A"] = start()
        services.take_chat(chat_id=chats["A"].pk, agent=agent("alex"))
    with travel(at(DAY1, 10, 5)):
        services.end_chat_by_agent(chat_id=chats["A"].pk, agent=agent("alex"))
    with travel(at(DAY1, 11, 0)):
        chats["B"] = start()
        services.take_chat(chat_id=chats["B"].pk, agent=agent("blair"))
    with travel(at(DAY1, 11, 10)):
        services.escalate_chat(
            chat_id=chats["B"].pk,
            agent=agent("blair"),
            keyword="billing",
            note="n",
            reason="Billing question",
        )
    with travel(at(DAY1, 11, 13)):
        services.take_chat(chat_id=chats["B"].pk, agent=agent("sam"))
    with travel(at(DAY1, 11, 30)):
        services.end_chat_by_agent(chat_id=chats["B"].pk, agent=agent("sam"))
    with travel(at(DAY1, 23, 50)):
        chats["C"] = start()
        services.take_chat(chat_id=chats["C"].pk, agent=agent("alex"))
    with travel(at(DAY2, 0, 10)):
        services.escalate_chat(
            chat_id=chats["C"].pk, agent=agent("alex"), keyword="technical", note="n"
        )
    with travel(at(DAY2, 0, 15)):
        services.take_chat(chat_id=chats["C"].pk, agent=agent("kim"))
    services.set_presence(agent=agent("sam"), presence="away")
    with travel(at(DAY2, 9, 0)):
        chats["D"] = start()
        services.take_chat(chat_id=chats["D"].pk, agent=agent("alex"))
    with travel(at(DAY2, 9, 5)):
        services.escalate_chat(
            chat_id=chats["D"].pk, agent=agent("alex"), keyword="billing", note="n"
        )
    services.set_presence(agent=agent("kim"), presence="away")
    expire(chats["D"], at(DAY2, 9, 7))  # L2 Billing → L2 Technical
    expire(chats["D"], at(DAY2, 9, 9))  # L2 Technical → previous tier: Alex, online and free
    assert chats["D"].route.__class__.objects.get(chat=chats["D"]).agent == agent("alex")
    services.set_presence(agent=agent("sam"), presence="online")
    with travel(at(DAY2, 9, 20)):
        services.escalate_chat(
            chat_id=chats["D"].pk, agent=agent("alex"), keyword="billing", note="n"
        )
    with travel(at(DAY2, 9, 21)):
        services.take_chat(chat_id=chats["D"].pk, agent=agent("sam"))
    with travel(at(DAY2, 9, 30)):
        services.end_chat_by_agent(chat_id=chats["D"].pk, agent=agent("sam"))
    with travel(at(DAY2, 10, 0)):
        chats["E"] = start(topic="Buying")
    expire(chats["E"], at(DAY2, 10, 2))  # Sales → group L2 Billing (within stage Sales)
    expire(chats["E"], at(DAY2, 10, 4))  # the group did not answer either → leave a message
    return chats


def two_days(**kw) -> ReportFilter:
    return ReportFilter(start=DAY1, end=DAY2, **kw)


pytestmark = pytest.mark.django_db


def test_handled_vs_escalated_per_day_in_the_site_time_zone(history):
    rows = selectors.handled_vs_escalated_over_time(two_days())
    assert rows == [
        {"bucket": DAY1, "handled": 1, "escalated": 1},
        {"bucket": DAY2, "handled": 0, "escalated": 3},  # C crossed midnight in Paris
    ]


def test_per_week(history):
    rows = selectors.handled_vs_escalated_over_time(two_days(), by_week=True)
    assert rows == [{"bucket": dt.date(2026, 3, 9), "handled": 1, "escalated": 4}]


def test_by_agent_includes_agents_with_no_chats(history):
    rows = {
        r["agent"]: (r["handled"], r["escalated"], r["escalation_rate"])
        for r in selectors.by_agent(two_days())
    }
    assert rows == {"Alex": (1, 3, 0.75), "Blair": (0, 1, 1.0), "Dana": (0, 0, None)}


def test_escalated_chats_one_row_per_chat(history):
    rows = list(selectors.escalated_rows(two_days(), sort="when"))
    assert [r["chat_id"] for r in rows] == [history["B"].pk, history["C"].pk, history["D"].pk]
    b, c, d = rows
    assert (b["from_agent"], b["from_group"], b["to"], b["reason"], b["wait_seconds"]) == (
        "Blair",
        "L1 General",
        "L2 Billing (Level 2)",
        "Billing question",
        180,
    )
    assert (c["from_agent"], c["to"], c["wait_seconds"], c["taken_by"]) == (
        "Alex",
        "L2 Technical (Level 2)",
        300,
        "Kim",
    )
    assert c["when"].astimezone(PARIS).date() == DAY2
    assert (d["wait_seconds"], d["taken_by"], d["outcome"]) == (None, "", "Ended")  # first one
    assert b["outcome"] == "Ended" and c["outcome"] == "Still open"


def test_filters_narrow_every_report(history):
    only_blair = two_days(agent_id=agent("blair").pk)
    assert [r["chat_id"] for r in selectors.escalated_rows(only_blair)] == [history["B"].pk]
    assert selectors.handled_vs_escalated_over_time(only_blair)[0]["escalated"] == 1
    day1 = ReportFilter(start=DAY1, end=DAY1)
    assert {r["agent"]: r["escalated"] for r in selectors.by_agent(day1)} == {
        "Alex": 0,
        "Blair": 1,
        "Dana": 0,
    }
    tier2 = two_days(tier_level=2)
    assert list(selectors.escalated_rows(tier2)) == []


def test_reasons_targets_and_times(history):
    assert selectors.by_reason(two_days()) == [
        {"reason": "(no reason given)", "escalations": 3},
        {"reason": "Billing question", "escalations": 1},
    ]
    assert selectors.by_target(two_days()) == [
        {"target": "L2 Billing (Level 2)", "escalations": 3},
        {"target": "L2 Technical (Level 2)", "escalations": 1},
    ]
    after = selectors.wait_after_escalation(two_days())
    assert (after["escalations"], after["taken"]) == (4, 3)
    assert after["median_seconds"] == pytest.approx(180)  # of 60, 180, 300
    assert after["p90_seconds"] == pytest.approx(276)
    to_escalate = selectors.time_to_escalate(two_days())
    assert to_escalate["escalations"] == 4  # 300, 600, 660, 1200 seconds
    assert to_escalate["median_seconds"] == pytest.approx(630)
    assert to_escalate["p90_seconds"] == pytest.approx(1038)


def test_timeouts_and_fallbacks_by_stage(history):
    rows = {r["stage"]: r for r in selectors.timeouts_and_fallbacks(two_days())}
    assert rows["Support › L2 Billing"] == {
        "stage": "Support › L2 Billing",
        "timed_out": 1,
        "moved": 1,
        "left_message": 0,
        "ended": 0,
    }
    assert rows["Support › L2 Technical"]["timed_out"] == 1
    assert rows["Support › L2 Technical"]["moved"] == 1
    assert rows["Sales › Sales"] == {
        "stage": "Sales › Sales",
        "timed_out": 2,
        "moved": 1,
        "left_message": 1,
        "ended": 0,
    }


def test_an_empty_period_says_so_everywhere(history, client, manager_user):
    client.force_login(manager_user)
    empty = {"start": "2025-01-01", "end": "2025-01-31"}
    for name, says in [
        ("escalated", "No chats left tier 1 by escalation in this period."),
        ("over_time", "No data in this period."),
        ("reasons", "No data in this period."),
        ("waits", "No escalations in this period."),
        ("fallbacks", "No timeouts or fallbacks in this period."),
    ]:
        response = client.get(reverse(f"reporting:{name}"), empty)
        assert response.status_code == 200, name
        assert says in response.content.decode(), name


def parse_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_every_page_renders_and_its_csv_holds_the_same_numbers(history, client, manager_user):
    client.force_login(manager_user)
    query = {"start": DAY1.isoformat(), "end": DAY2.isoformat()}
    for name in ["home", "escalated", "over_time", "by_agent", "reasons", "waits", "fallbacks"]:
        assert client.get(reverse(f"reporting:{name}"), query).status_code == 200, name
    over_time = parse_csv(client.get(reverse("reporting:over_time"), {**query, "format": "csv"}))
    assert over_time == [
        ["day", "handled", "escalated"],
        ["2026-03-10", "1", "1"],
        ["2026-03-11", "0", "3"],
    ]
    by_agent = parse_csv(client.get(reverse("reporting:by_agent"), {**query, "format": "csv"}))
    assert by_agent[0][:4] == ["agent", "handled", "escalated", "escalation_rate"]
    firsts = [row[:4] for row in by_agent]  # the offer columns are tested in test_offer_reports
    assert ["Alex", "1", "3", "0.750"] in firsts and ["Dana", "0", "0", ""] in firsts
    escalated = client.get(reverse("reporting:escalated"), {**query, "format": "csv"})
    assert escalated["Content-Disposition"] == (
        'attachment; filename="escalated-chats-2026-03-10-2026-03-11.csv"'
    )
    rows = parse_csv(escalated)
    assert len(rows) == 4 and rows[1][0] == str(history["D"].pk)  # newest first, like the page
    assert rows[0][:2] == ["chat", "visitor"]
    assert rows[1][1] == history["D"].visitor_name  # the visitor is named, on the page too
    listed = client.get(reverse("reporting:escalated"), query).content.decode()
    assert f"<td><bdi>{history['D'].visitor_name}</bdi></td>" in listed
    page = client.get(reverse("reporting:by_agent"), query).content.decode()
    assert "75%" in page and "<svg" in page


def test_bad_filters_are_explained(client, manager_user):
    client.force_login(manager_user)
    response = client.get(
        reverse("reporting:over_time"), {"start": "2026-03-10", "end": "2026-01-01"}
    )
    assert response.status_code == 400
    assert "The start date is after the end date." in response.content.decode()
    response = client.get(
        reverse("reporting:over_time"), {"start": "2020-01-01", "end": "2026-01-01"}
    )
    assert "Choose a period of at most 400 days." in response.content.decode()


def test_reports_are_for_managers(client, alice_agent):
    client.force_login(alice_agent.user)
    for name in ["escalated", "over_time", "by_agent", "reasons", "waits", "fallbacks"]:
        assert client.get(reverse(f"reporting:{name}")).status_code == 403


def test_the_chat_page_shows_metadata_and_flow(history, client, manager_user):
    client.force_login(manager_user)
    d = history["D"]
    meta = client.get(reverse("reporting:chat", args=[d.pk])).content.decode()
    assert "Level 1 → Level 2" in meta and "/help" in meta
    assert "<bdi>Alex</bdi>, <bdi>Sam</bdi>" in meta
    flow = client.get(reverse("reporting:chat", args=[d.pk]), {"tab": "flow"}).content.decode()
    assert "<svg" in flow and "Held by <bdi>Alex</bdi>" in flow and "Waiting for L2 Billing" in flow
    assert flow.count("Timed out") >= 2
    assert client.get(reverse("reporting:chat", args=[999999])).status_code == 404


def test_an_agent_opens_only_chats_it_may_see(history, client):
    client.force_login(agent("alex").user)
    assert client.get(reverse("reporting:chat", args=[history["D"].pk])).status_code == 200
    client.force_login(agent("dana").user)
    # Not hers: "not found", exactly as a missing chat (ids cannot be probed).
    theirs = client.get(reverse("reporting:chat", args=[history["D"].pk]))
    missing = client.get(reverse("reporting:chat", args=[999_999]))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content


@pytest.mark.postgres
def test_the_copy_csv_matches_the_python_rows(history, client, manager_user):
    """PostgreSQL streams the escalated-chats CSV with COPY; it must say exactly what the Python
    rows (the embedded default's path) and the page say."""
    client.force_login(manager_user)
    query = {"start": DAY1.isoformat(), "end": DAY2.isoformat(), "format": "csv"}
    copied = parse_csv(client.get(reverse("reporting:escalated"), query))
    python = [
        ["" if v is None else str(v) for v in row]
        for row in selectors.escalated_csv_rows(two_days())
    ]
    assert copied[0] == selectors.ESCALATED_CSV_HEADER
    assert copied[1:] == python
    assert copied[-1][2] == "2026-03-10 11:10:00"  # B, in Paris time like the page


@pytest.mark.postgres
@pytest.mark.parametrize("sort", ["-when", "when", "wait"])
def test_a_long_period_exports_in_parts_with_the_same_rows(history, client, manager_user, sort):
    """Over more than a week, the time-sorted CSV is sent as the front week then the rest; the
    rows and their order are the Python path's, which is one query."""
    client.force_login(manager_user)
    start = DAY1 - dt.timedelta(days=30)
    query = {"start": start.isoformat(), "end": DAY2.isoformat(), "format": "csv", "sort": sort}
    f = ReportFilter(start=start, end=DAY2)
    assert len(list(selectors.escalated_csv_querysets(f, sort))) == (1 if sort == "wait" else 2)
    copied = parse_csv(client.get(reverse("reporting:escalated"), query))
    python = [
        ["" if v is None else str(v) for v in row] for row in selectors.escalated_csv_rows(f, sort)
    ]
    assert copied[1:] == python and len(python) == 3


def test_the_pager_keeps_the_sort(demo, client, manager_user, settings):
    from django.utils import timezone

    alex = agent("alex")
    services.set_presence(agent=alex, presence="online")
    AgentGroup.objects.filter(name="L1 General").update(routing_policy="manual")
    for _ in range(51):
        chat = services.start_chat(
            visitor_name="V",
            visitor_email="",
            topic_name="Billing",
            first_message="hi",
            visitor_context={},
        )
        services.take_chat(chat_id=chat.pk, agent=alex)
        services.escalate_chat(chat_id=chat.pk, agent=alex, keyword="billing", note="n")
    client.force_login(manager_user)
    today = timezone.localdate().isoformat()
    page = client.get(reverse("reporting:escalated"), {"start": today, "sort": "when"})
    html = page.content.decode()
    assert "Page 1 of 2 · 51 chats" in html
    assert "sort=when&amp;page=2" in html


def test_a_large_csv_export_streams_in_constant_memory(demo, client, manager_user):
    import tracemalloc

    from django.utils import timezone

    from chat.models import ChatSession
    from escalation.models import Escalation, Stage, Tier

    l1, l2 = Stage.objects.get(name="L1 General"), Stage.objects.get(name="L2 Billing")
    t1, t2 = Tier.objects.get(level=1), Tier.objects.get(level=2)
    alex = agent("alex")
    seed = services.start_chat(
        visitor_name="S",
        visitor_email="",
        topic_name="Billing",
        first_message="x",
        visitor_context={},
    )
    entry = QueueEntry.objects.get(chat=seed)
    now = timezone.now()
    n = 20_000
    chats = ChatSession.objects.bulk_create(
        [ChatSession(visitor_name=f"V{i}", topic="Billing", status="ended") for i in range(n)],
        batch_size=5000,
    )
    Escalation.objects.bulk_create(
        [
            Escalation(
                chat=c,
                from_stage=l1,
                from_tier=t1,
                from_agent=alex,
                target_kind="stage",
                target_label="L2 Billing",
                to_stage=l2,
                to_tier=t2,
                entry=entry,
                reason="Billing question",
                note="",
                requested_by="button",
                requested_at=now - dt.timedelta(minutes=i % 600),
            )
            for i, c in enumerate(chats)
        ],
        batch_size=5000,
    )
    client.force_login(manager_user)
    response = client.get(reverse("reporting:escalated"), {"format": "csv"})
    assert response.streaming
    tracemalloc.start()
    lines = 0
    for chunk in response.streaming_content:
        lines += chunk.count(b"\n")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert lines == n + 1
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while streaming {n} rows"


def test_out_of_range_inputs_are_refused_not_crashes(client, manager_user, alice_agent):
    client.force_login(manager_user)
    response = client.get(
        reverse("reporting:over_time"), {"start": "9999-12-30", "end": "9999-12-31"}
    )
    assert response.status_code == 400
    assert "Choose dates between the years 2000 and 2999." in response.content.decode()
    client.force_login(alice_agent.user)
    assert client.get("/reports/chats/99999999999999999999/").status_code == 404


def test_a_period_half_summarised_counts_the_same(demo, settings):
    make_history(settings)
    assert summaries.summarise(DAY1, DAY1) == 1  # day 2 stays raw
    assert summaries.summarised_days(DAY1, DAY2) == {DAY1}
    assert selectors.handled_vs_escalated_over_time(two_days()) == [
        {"bucket": DAY1, "handled": 1, "escalated": 1},
        {"bucket": DAY2, "handled": 0, "escalated": 3},
    ]
    assert {r["agent"]: r["escalated"] for r in selectors.by_agent(two_days())} == {
        "Alex": 3,
        "Blair": 1,
        "Dana": 0,
    }
    assert sum(r["escalations"] for r in selectors.by_reason(two_days())) == 4


def test_a_change_of_time_zone_counts_the_days_again(demo, settings):
    make_history(settings)
    summaries.summarise_pending()
    settings.TIME_ZONE = "UTC"  # C's escalation, 00:10 in Paris, is 23:10 on day 1 in UTC
    assert summaries.summarised_days(DAY1, DAY2) == set()
    expected = [
        {"bucket": DAY1, "handled": 1, "escalated": 2},
        {"bucket": DAY2, "handled": 0, "escalated": 2},
    ]
    assert selectors.handled_vs_escalated_over_time(two_days()) == expected
    summaries.summarise_pending()
    assert summaries.summarised_days(DAY1, DAY2) == {DAY1, DAY2}
    assert selectors.handled_vs_escalated_over_time(two_days()) == expected


def test_today_is_never_summarised_and_counts_at_once(demo, settings):
    from django.core.management import call_command
    from django.utils import timezone

    settings.TIME_ZONE = "Europe/Paris"
    today = timezone.localdate()
    alex = agent("alex")
    services.set_presence(agent=alex, presence="online")
    AgentGroup.objects.filter(name="L1 General").update(routing_policy="manual")
    out = io.StringIO()
    call_command("summarise_reports", stdout=out)
    assert summaries.summarise(today, today) == 0
    assert today not in summaries.summarised_days(today, today)
    chat = services.start_chat(
        visitor_name="V",
        visitor_email="",
        topic_name="Billing",
        first_message="hi",
        visitor_context={},
    )
    services.take_chat(chat_id=chat.pk, agent=alex)
    services.escalate_chat(chat_id=chat.pk, agent=alex, keyword="billing", note="n")
    rows = selectors.handled_vs_escalated_over_time(ReportFilter(start=today, end=today))
    assert rows == [{"bucket": today, "handled": 0, "escalated": 1}]


def test_the_periodic_task_summarises_and_a_rebuild_counts_again(demo, settings):
    from django.core.management import call_command

    from reporting.models import DailyFact
    from reporting.tasks import summarise_days

    make_history(settings)
    assert "reporting.tasks.summarise_days" in {
        entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
    }
    assert summarise_days() > 0
    assert summarise_days() == 0  # nothing left to do
    escalated = DailyFact.objects.filter(metric="escalated", day__in=[DAY1, DAY2])
    assert sum(escalated.values_list("n", flat=True)) == 4
    DailyFact.objects.filter(day=DAY2).update(n=99)  # a damaged summary ...
    call_command("summarise_reports", "--rebuild", stdout=io.StringIO())
    assert selectors.handled_vs_escalated_over_time(two_days())[1]["escalated"] == 3  # ... mended


@pytest.mark.postgres
def test_postgresql_jit_is_off_for_the_app():
    """JIT compilation costs ~150 ms on any plan PostgreSQL deems expensive: reports avoid it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"


def test_the_console_history_links_each_past_chat_to_its_tabs(demo, settings, client):
    chats = make_history(settings)
    client.force_login(agent("alex").user)
    html = client.get(reverse("console:history")).content.decode()
    for name in ["A", "C", "D"]:  # A resolved, C and D escalated (D twice)
        assert reverse("reporting:chat", args=[chats[name].pk]) in html
    assert reverse("reporting:chat", args=[chats["B"].pk]) not in html  # Blair's
    assert html.count("Escalated") == 3 and "Resolved" in html
    assert 'href="/console/history/"' in client.get(reverse("console:home")).content.decode()
    client.force_login(agent("dana").user)
    assert (
        "You have not finished any chats yet."
        in client.get(reverse("console:history")).content.decode()
    )


def test_the_console_history_is_for_agents(client, manager_user):
    assert client.get(reverse("console:history")).status_code == 302  # to the login page
    client.force_login(manager_user)
    assert client.get(reverse("console:history")).status_code == 403
