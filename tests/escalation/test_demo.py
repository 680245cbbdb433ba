import datetime as dt
import io

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from chat.models import ChatSession
from tests.factories import start_chat

pytestmark = pytest.mark.django_db

CONFIG_MODELS = [
    "Tier",
    "AgentGroup",
    "Agent",
    "Pipeline",
    "Topic",
    "Stage",
    "EscalationOption",
    "EscalationReason",
    "MessageTemplate",
]


def snapshot() -> dict[str, list[tuple[object, ...]]]:
    rows = {}
    for name in CONFIG_MODELS:
        model = apps.get_model("escalation", name)
        rows[name] = sorted(tuple(r.values()) for r in model.objects.values())
    user_model = apps.get_model("auth", "User")
    rows["User"] = sorted(user_model.objects.values_list("username", "is_staff", "is_superuser"))
    return rows


def test_load_demo_twice_leaves_the_same_rows(capsys):
    call_command("load_demo", "--no-history")
    first = snapshot()
    call_command("load_demo", "--no-history")
    assert snapshot() == first
    assert "admin    admin" in capsys.readouterr().out


def test_demo_has_every_routing_policy_and_exit(demo):
    from escalation.models import AgentGroup, FallbackAction, Pipeline, Stage, Tier

    assert list(Tier.objects.values_list("level", flat=True)) == [1, 2, 3]
    assert set(AgentGroup.objects.values_list("name", flat=True)) >= {
        "L1 General",
        "L2 Billing",
        "L2 Technical",
        "L3 Engineering",
    }
    support = Pipeline.objects.get(name="Support")
    assert support.entry_stage.name == "L1 General"
    keywords = set(support.entry_stage.escalation_options.values_list("keyword", flat=True))
    assert {"billing", "technical", "engineering"} <= keywords
    used = set(Stage.objects.values_list("fallback_action", flat=True))
    assert used == set(FallbackAction.values), "every fallback kind is exercised"
    assert apps.get_model("escalation", "Agent").objects.count() == 6


def test_load_demo_puts_an_edited_demo_stage_back(demo):
    from escalation.models import Stage

    Stage.objects.filter(name="L1 General").update(
        no_agent_rule="fallback", wait_timeout_seconds=5, escalated_order="priority"
    )
    call_command("load_demo", "--no-history")
    stage = Stage.objects.get(name="L1 General")
    assert (stage.no_agent_rule, stage.wait_timeout_seconds, stage.escalated_order) == (
        "queue",
        180,
        "original_wait",
    )


def test_demo_routes_one_group_by_broadcast_and_one_by_round_robin_hunt(demo):
    from escalation.models import AgentGroup, Stage

    policies = dict(AgentGroup.objects.values_list("name", "routing_policy"))
    assert policies["L1 Orders"] == "broadcast"
    assert policies["L1 Returns"] == "hunt"
    assert AgentGroup.objects.get(name="L1 Returns").auto_away_after_lapses == 3
    orders = Stage.objects.get(name="Orders")
    assert orders.drop_stage is not None and orders.drop_stage.name == "Order follow-up"
    assert orders.still_searching_seconds == 30
    assert orders.escalation_options.filter(keyword="billing").exists()
    assert Stage.objects.get(name="Returns").accept_timeout_seconds == 20


# --- The demo history ----------------------------------------------------------------------------
# A short history, ending on a Wednesday evening: Monday to Wednesday, with a burst of chats on
# each of those days (rather than one weekday in ten) so that queues form and estimates are shown.
END = dt.datetime(2026, 3, 11, 18, 0, tzinfo=dt.UTC)
DAYS = 2
SEED = 3


@pytest.fixture
def bursty(monkeypatch):
    from escalation import demo_traffic

    monkeypatch.setattr(demo_traffic, "BURST_CHANCE", 1.0)


def replay(days: int = DAYS):
    from escalation.demo_history import replay_history

    return replay_history(days=days, seed=SEED, end=END)


def fingerprint() -> list[tuple[object, ...]]:
    """Every demo chat as the replay left it, without its ids."""
    from escalation.demo_history import demo_history_chats

    return [
        (
            chat.created_at,
            chat.ended_at,
            chat.visitor_name,
            chat.topic,
            chat.status,
            chat.last_seq,
            tuple(chat.flow.order_by("id").values_list("kind", flat=True)),
        )
        for chat in demo_history_chats().order_by("created_at", "pk")
    ]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_short_history_fills_every_report_through_the_services(demo, bursty, client):
    from chat.models import ChatSession, FlowEvent, Message
    from escalation.demo_history import demo_history_chats
    from escalation.models import (
        Agent,
        Assignment,
        ChatRoute,
        ChatTag,
        Offer,
        QueueEntry,
        SurveyAnswer,
        WaitEstimate,
    )
    from reporting import friction, offers, satisfaction, search, selectors, tags
    from reporting.selectors import ReportFilter

    presence = dict(Agent.objects.values_list("pk", "presence"))
    history = replay()
    chats = demo_history_chats()
    assert history.chats == chats.count() > 20
    f = ReportFilter(start=history.first.date(), end=END.date())

    # Every report has rows: each of these is what one report page lists.
    assert selectors.escalated_chats(f).exists()
    days = selectors.handled_vs_escalated_over_time(f)
    assert sum(day["handled"] for day in days) > 0 and sum(day["escalated"] for day in days) > 0
    assert any(row["handled"] for row in offers.by_agent_with_offers(f))
    assert selectors.by_reason(f) and selectors.by_target(f)
    assert selectors.wait_after_escalation(f)["taken"] > 0
    assert selectors.time_to_escalate(f)["escalations"] > 0
    assert selectors.timeouts_and_fallbacks(f)
    assert any(row["compared"] for row in offers.predicted_vs_actual(f))
    assert satisfaction.satisfaction(f, "agent")
    totals = friction.friction(f)["totals"]
    assert totals["abandoned"] + totals["dropped"] > 0, totals
    assert totals["answered"] and totals["replied"] and totals["handled"], totals
    assert totals["handle_p90"] > totals["handle_median"] > 0, "handling times vary"
    assert tags.by_tag(f)
    found, _ = search.page_of(ChatSession.objects.all(), search.ChatSearch(words="order"), 1)
    assert found

    # What those reports count came from the services: offers answered and lapsed, waits with
    # numeric estimates, timeouts and fallbacks, visitors leaving, first replies, surveys, tags.
    kinds = set(FlowEvent.objects.filter(chat__in=chats).values_list("kind", flat=True))
    assert {
        "created",
        "queued",
        "assigned",
        "first_agent_message",
        "offered",
        "accepted",
        "escalated",
        "timed_out",
        "fell_back",
        "tagged",
        "after_agent",
        "survey_answered",
        "ended",
    } <= kinds
    assert {"abandoned", "dropped"} & kinds, "visitors left while queued"
    assert WaitEstimate.objects.filter(entry__chat__in=chats, low_seconds__isnull=False).exists()
    assert SurveyAnswer.objects.filter(chat__in=chats).exists()
    assert ChatTag.objects.filter(chat__in=chats).exists()
    assert Message.objects.filter(chat__in=chats, kind="visitor").count() > chats.count()
    handle = {
        (a.ended_at - a.started_at).seconds // 60 for a in Assignment.objects.filter(chat__in=chats)
    }
    assert len(handle) > 3, "handling times vary"

    # Nothing is left half done: every chat ended, no turn, wait or offer open, every message
    # numbered without gaps, times within the history, agents as they were.
    assert not chats.filter(status__in=ChatSession.OPEN_STATUSES).exists()
    assert not Assignment.objects.filter(chat__in=chats, ended_at__isnull=True).exists()
    assert not QueueEntry.objects.filter(chat__in=chats, left_at__isnull=True).exists()
    assert not Offer.objects.filter(chat__in=chats, status=Offer.Status.PENDING).exists()
    assert not ChatRoute.objects.filter(chat__in=chats).exclude(agent=None, entry=None).exists()
    for chat in chats.annotate(stored=Count("messages")):
        assert chat.stored == chat.last_seq, chat
        assert history.first <= chat.created_at <= chat.ended_at <= END, chat
    assert dict(Agent.objects.values_list("pk", "presence")) == presence

    # The pages show it: each report, and one escalated chat's tabs.
    client.force_login(get_user_model().objects.get(username="morgan"))
    query = {"start": f.start.isoformat(), "end": f.end.isoformat()}
    for name in ("home", "escalated", "over_time", "by_agent", "reasons", "waits", "fallbacks"):
        assert client.get(reverse(f"reporting:{name}"), query).status_code == 200, name
    for name in ("satisfaction", "tags", "predicted_vs_actual", "friction"):
        assert client.get(reverse(f"reporting:{name}"), query).status_code == 200, name
    escalated = selectors.escalated_chats(f).first()
    assert escalated is not None
    for tab in ("metadata", "flow", "transcript"):
        page = client.get(reverse("reporting:chat", args=[escalated.chat_id]), {"tab": tab})
        assert page.status_code == 200, tab
        assert escalated.chat.visitor_name in page.content.decode(), tab

    # Loading the demo again finds the history and plays none.
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    assert "Demo history already there" in out.getvalue()
    assert demo_history_chats().count() == history.chats


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_same_seed_plays_the_same_history_and_a_reset_deletes_demo_chats_only(demo, bursty):
    from escalation import services
    from escalation.demo_history import delete_demo_history, demo_history_chats

    real = start_chat(first_message="A real question")
    services.end_chat_by_visitor(chat_id=real.pk)
    first = replay(days=1)
    played = fingerprint()
    assert len(played) == first.chats > 0

    assert delete_demo_history() == first.chats
    assert not demo_history_chats().exists()
    assert ChatSession.objects.filter(pk=real.pk, messages__text="A real question").exists()

    replay(days=1)
    assert fingerprint() == played


def test_no_history_is_played_while_a_chat_is_open(demo):
    from escalation.demo_history import demo_history_chats

    start_chat(first_message="Still waiting")
    out = io.StringIO()
    call_command("load_demo", "--history-days", "1", stdout=out)
    assert "Demo history not played: 1 chat(s) are still waiting or active" in out.getvalue()
    assert not demo_history_chats().exists()


def test_no_history_is_played_while_a_console_is_open(demo):
    """A console seen within AGENT_GONE_SECONDS means a server is running on this database: its
    beat would act on the replay's past deadlines, so the replay refuses."""
    from escalation.demo_history import demo_history_chats
    from escalation.models import Agent

    Agent.objects.filter(user__username="alex").update(console_seen_at=timezone.now())
    out = io.StringIO()
    call_command("load_demo", "--history-days", "1", stdout=out)
    assert "Demo history not played: an agent console was open in the last" in out.getvalue()
    assert not demo_history_chats().exists()
    Agent.objects.update(
        console_seen_at=timezone.now() - dt.timedelta(seconds=settings.AGENT_GONE_SECONDS + 1)
    )
    out = io.StringIO()
    call_command("load_demo", "--history-days", "1", stdout=out)
    assert "Demo history: " in out.getvalue()
    assert demo_history_chats().exists()


@pytest.mark.parametrize("days", ["0", "366", "ninety"])
def test_load_demo_refuses_a_history_length_it_cannot_play(demo, days):
    with pytest.raises(CommandError, match="--history-days"):
        call_command("load_demo", "--history-days", days)


def test_load_demo_takes_no_history_and_a_reset_at_once(demo):
    with pytest.raises(CommandError, match="not allowed with"):
        call_command("load_demo", "--no-history", "--reset-history")
