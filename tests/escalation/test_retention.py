"""Transcript retention (a periodic task) and per-visitor erasure (a management command)."""

import datetime as dt
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from chat.models import ChatSession, FlowEvent, Message
from escalation import services
from escalation.models import Escalation
from escalation.tasks import purge_expired_transcripts
from reporting import selectors as report_selectors
from reporting.selectors import ReportFilter
from tests.factories import StageOptionFactory

pytestmark = pytest.mark.django_db


def chat_of(email: str, name: str = "Carol") -> ChatSession:
    return services.start_chat(
        visitor_name=name,
        visitor_email=email,
        topic_name="Billing",
        first_message=f"My card number is 4111 ({name})",
        visitor_context={"page": "/account", "user_agent": "Firefox"},
    )


@pytest.fixture
def escalated_long_ago(alice_agent, l1_setup):
    """A chat escalated with a hand-over note quoting the visitor, ended 400 days ago."""
    StageOptionFactory(stage=l1_setup.l1, keyword="billing", target_stage=l1_setup.l2)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    with time_machine.travel(long_ago, tick=False):
        chat = chat_of("old@example.com", "Olga")
        services.take_chat(chat_id=chat.pk, agent=alice_agent)
        services.escalate_chat(
            chat_id=chat.pk, agent=alice_agent, keyword="billing", note="card 4111, angry"
        )
        services.end_chat_by_visitor(chat_id=chat.pk)
    chat.refresh_from_db()
    return chat


def report_numbers(day: dt.date) -> list:
    """The reports' numbers over the day (the escalated list names its visitor: left out here,
    as erasure replaces the name)."""
    f = ReportFilter(start=day - dt.timedelta(days=1), end=day + dt.timedelta(days=1))
    return [
        [{**row, "visitor": "…"} for row in report_selectors.escalated_rows(f, "-when")],
        report_selectors.handled_vs_escalated_over_time(f),
    ]


def test_the_periodic_task_erases_transcripts_past_retention_and_keeps_the_numbers(
    escalated_long_ago, settings
):
    settings.TRANSCRIPT_RETENTION_DAYS = 365
    recent = chat_of("new@example.com", "Nina")
    services.end_chat_by_visitor(chat_id=recent.pk)
    day = escalated_long_ago.ended_at.date()
    numbers_before = report_numbers(day)
    assert len(numbers_before[0]) == 1  # the report does show the old escalation

    assert purge_expired_transcripts() == 1  # the beat task, run as beat runs it

    old = ChatSession.objects.get(pk=escalated_long_ago.pk)
    assert (old.visitor_name, old.visitor_email, old.visitor_context) == ("(erased)", "", {})
    assert not Message.objects.filter(chat=old).exists()
    assert Escalation.objects.get(chat=old).note == ""
    assert all(e.data.get("note", "") == "" for e in FlowEvent.objects.filter(chat=old))
    assert FlowEvent.objects.filter(chat=old, kind="escalated").exists()  # the facts stay
    assert report_numbers(day) == numbers_before  # reports over that period are unchanged
    f = ReportFilter(start=day - dt.timedelta(days=1), end=day + dt.timedelta(days=1))
    assert [r["visitor"] for r in report_selectors.escalated_rows(f)] == ["(erased)"]
    # The recent chat is kept whole; a second run has nothing left to do.
    assert Message.objects.filter(chat=recent).count() >= 1
    assert ChatSession.objects.get(pk=recent.pk).visitor_email == "new@example.com"
    assert purge_expired_transcripts() == 0


def test_retention_zero_keeps_everything(escalated_long_ago, settings):
    settings.TRANSCRIPT_RETENTION_DAYS = 0
    assert purge_expired_transcripts() == 0
    assert Message.objects.filter(chat=escalated_long_ago).exists()


def test_retention_is_scheduled_by_beat(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["purge-expired-transcripts"]
    assert entry["task"] == purge_expired_transcripts.name


def test_erase_visitor_by_email_ends_and_erases_every_chat_of_that_visitor(l1_setup):
    open_chat = chat_of("Carol@Example.com")
    ended = chat_of("carol@example.com")
    services.end_chat_by_visitor(chat_id=ended.pk)
    someone_else = chat_of("dan@example.com", "Dan")
    out = StringIO()
    call_command("erase_visitor", "--email", "carol@example.com", stdout=out)
    assert "Erased 2 chat(s)" in out.getvalue()
    for chat in (open_chat, ended):
        chat.refresh_from_db()
        assert not chat.is_open and chat.visitor_name == "(erased)" and chat.visitor_email == ""
        assert not Message.objects.filter(chat=chat).exists()
    assert Message.objects.filter(chat=someone_else).exists()  # nobody else's data is touched
    assert ChatSession.objects.get(pk=someone_else.pk).visitor_name == "Dan"


def test_erase_visitor_by_chat_number_and_dry_run(l1_setup):
    chat = chat_of("")
    out = StringIO()
    call_command("erase_visitor", "--chat", str(chat.pk), "--dry-run", stdout=out)
    assert f"Would erase 1 chat(s): [{chat.pk}]" in out.getvalue()
    assert Message.objects.filter(chat=chat).exists()
    call_command("erase_visitor", "--chat", str(chat.pk), stdout=StringIO())
    assert not Message.objects.filter(chat=chat).exists()


def test_erase_visitor_needs_a_match(l1_setup):
    with pytest.raises(CommandError, match="Give --email or --chat"):
        call_command("erase_visitor")
    with pytest.raises(CommandError, match="No chat matches"):
        call_command("erase_visitor", "--email", "nobody@example.com")
