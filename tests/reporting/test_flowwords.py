"""The Flow tab speaks words: durations under a minute in seconds, event details without ids,
machine keys or ISO times."""

import datetime as dt

import time_machine
from django.urls import reverse
from django.utils import timezone

from escalation import services
from escalation.models import Agent
from reporting.flowwords import duration, flow_details
from tests.factories import start_chat


def test_details_are_words() -> None:
    details = flow_details(
        {
            "stage": "L1 Support",
            "stage_id": 4,
            "deadline": "2026-11-29T10:15:30+00:00",
            "why": "no_agent_online",
            "waited_seconds": 7,
            "late_ms": 1234,
            "note": "",
            "set_away": True,
            "new_key": 3,
        }
    )
    local = timezone.localtime(dt.datetime(2026, 11, 29, 10, 15, 30, tzinfo=dt.UTC))
    assert details == [
        ("stage", "L1 Support"),
        ("deadline", f"{local:%H:%M:%S}"),
        ("why", "no agent online"),
        ("waited", "7 s"),
        ("fired late by", "1,234 ms"),
        ("set away", "yes"),
        ("new key", "3"),
    ]
    assert flow_details("not a dict") == []
    assert [duration(s) for s in (None, 0.4, 7, 65, 3725)] == [
        "–",
        "0 s",
        "7 s",
        "1 min 5 s",
        "1 h 2 min",
    ]


def test_a_short_chats_flow_reads_in_seconds(demo, client, manager_user) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        chat = start_chat()
    with time_machine.travel(start + dt.timedelta(seconds=7), tick=False):
        alex = Agent.objects.get(user__username="alex")
        services.set_presence(agent=alex, presence="online")  # round robin: Alex gets it
    chat.refresh_from_db()
    assert chat.status == "active"
    client.force_login(manager_user)
    page = client.get(reverse("reporting:chat", args=[chat.pk]), {"tab": "flow"})
    text = page.content.decode()
    assert "<td>7 s</td>" in text
    assert "0 minutes" not in text and "stage_id" not in text
    assert "deadline: <bdi>2026" not in text and "deadline: <bdi>" in text  # a local time
    assert "Queued" in text and "stage: <bdi>" in text
