"""A flow event's details in words for the Flow tab's event list (the stored data keeps its
machine keys: ids, ISO deadlines, snake_case values, which reports and the API read)."""

import re
from datetime import datetime
from typing import Any

from django.utils import timezone

LABELS = {
    "agent": "agent",
    "by": "by",
    "why": "why",
    "stage": "stage",
    "tier": "tier",
    "group": "group",
    "team": "team",
    "topic": "topic",
    "action": "action",
    "from_stage": "from stage",
    "from_tier": "from tier",
    "from_agent": "from agent",
    "to": "to",
    "to_stage": "to stage",
    "to_tier": "to tier",
    "reason": "reason",
    "policy": "routing",
    "deadline": "deadline",
    "status": "status",
    "resolution": "resolution",
    "offer": "offered",
    "rating": "rating",
    "chars": "characters",
    "note": "note",
    "set_away": "set away",
    "late_ms": "fired late by",
    "waited_seconds": "waited",
    "seconds_to_accept": "time to accept",
    "seconds_to_answer": "time to answer",
}


def duration(seconds: float | None) -> str:
    """120 → "2 min 0 s"; None → "–"."""
    if seconds is None:
        return "–"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


SNAKE = re.compile(r"^[a-z]+(_[a-z]+)+$")
ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    timed = key.endswith("_seconds") or key.startswith("seconds_")
    if timed and isinstance(value, int | float):
        return duration(value)
    if key == "late_ms" and isinstance(value, int | float):
        return f"{value:,.0f} ms"
    if isinstance(value, str) and ISO_TIME.match(value):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        return f"{timezone.localtime(moment):%H:%M:%S}"
    if isinstance(value, str) and SNAKE.match(value):
        return value.replace("_", " ")
    return str(value)


def flow_details(data: Any) -> list[tuple[str, str]]:
    """(label, value) pairs to show: ids are left out (each comes with its name), empty values
    too, and unknown keys are shown in words."""
    if not isinstance(data, dict):
        return []
    return [
        (LABELS.get(key, key.replace("_", " ")), _value(key, value))
        for key, value in data.items()
        if value not in (None, "") and not key.endswith("_id")
    ]
