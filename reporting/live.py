"""The live view: what is happening now, for managers (/reports/live/ and the /ws/live/ socket).

A snapshot is read from the primary (a replica may lag by seconds, and this page is about the
seconds), in the same few queries however many chats wait or agents work: the page and the
socket both send the whole of it, and the browser runs every age on from the timestamps in it,
so nothing needs to be sent while nothing changes.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, F, Min, OuterRef, Prefetch, Q, Subquery
from django.urls import reverse
from django.utils import timezone

from chat.models import ChatSession
from escalation.models import Agent, Assignment, Handover, Offer, QueueEntry, Stage
from escalation.selectors import revoked_logins, with_load_and_capacity
from reporting.models import LiveSettings
from reporting.periods import day_bounds, site_tz

# The waiting chats listed by name, oldest first; the rest are counted. The stages' counts are
# always complete.
WAITING_LISTED = 50
PRESENCE_ORDER = {Agent.Presence.ONLINE: 0, Agent.Presence.AWAY: 1, Agent.Presence.OFFLINE: 2}

# (user id, session key, password hash) of a manager's socket, checked again while it is open.
ManagerLogin = tuple[int, str, str]


@dataclass(frozen=True)
class ServiceLevel:
    """Of today's chats whose fate against the target is known, how many an agent joined in
    time (`met`) out of how many count (`counted`)."""

    target_seconds: int
    met: int
    counted: int

    @property
    def share(self) -> float | None:
        return self.met / self.counted if self.counted else None

    @property
    def percent(self) -> int | None:
        """The share in whole per cent, a half rounded up (the page and its script show this
        one number, so they never differ by a rounding)."""
        return (self.met * 200 + self.counted) // (self.counted * 2) if self.counted else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "target_seconds": self.target_seconds,
            "met": self.met,
            "counted": self.counted,
            "share": self.share,
            "percent": self.percent,
        }


def service_level_target_seconds() -> int:
    """The admin's target, read each time (no restart, no cache to expire); the default until
    an admin saves one."""
    saved = (
        LiveSettings.objects.filter(pk=LiveSettings.ONLY_ID)
        .values_list("service_level_target_seconds", flat=True)
        .first()
    )
    return saved or LiveSettings.DEFAULT_TARGET_SECONDS


def service_level_today(*, now: datetime, target_seconds: int) -> ServiceLevel:
    """Chats that started today (the site's time zone), in one query.

    Met: an agent joined within the target of the chat's start (exactly on it counts). Missed:
    an agent joined later; or none did and the chat has waited past the target, or ended (a
    fallback, the leave-a-message form) without one. Not counted: a chat still waiting within
    the target (it may still be met), and one whose visitor left within the target (they gave
    no agent the time the target allows)."""
    day = timezone.localtime(now, site_tz()).date()
    start, end = day_bounds(day, day, site_tz())
    target = timedelta(seconds=target_seconds)
    first_join = (
        Assignment.objects.filter(chat=OuterRef("pk")).order_by("started_at").values("started_at")
    )
    chats = ChatSession.objects.filter(created_at__gte=start, created_at__lt=end).annotate(
        joined_at=Subquery(first_join[:1])
    )
    unanswered = Q(joined_at__isnull=True)
    is_open = Q(status__in=ChatSession.OPEN_STATUSES)
    left_early = Q(status=ChatSession.Status.ABANDONED, ended_at__lte=F("created_at") + target)
    missed = (
        Q(joined_at__gt=F("created_at") + target)
        | (unanswered & is_open & Q(created_at__lt=now - target))
        | (unanswered & ~is_open & ~left_early)
    )
    counts = chats.aggregate(
        met=Count("pk", filter=Q(joined_at__lte=F("created_at") + target)),
        missed=Count("pk", filter=missed),
    )
    return ServiceLevel(
        target_seconds=target_seconds,
        met=counts["met"],
        counted=counts["met"] + counts["missed"],
    )


def _seconds(since: datetime, now: datetime) -> int:
    return max(0, int((now - since).total_seconds()))


def _chat_url(chat_id: int) -> str:
    return reverse("reporting:chat", args=[chat_id]) + "?tab=transcript"


def _stages(now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Every stage with its waiting count, oldest wait and pending offers; the oldest waiting
    chats; how many wait in all."""
    stages = list(Stage.objects.select_related("pipeline", "tier"))
    ids = [stage.pk for stage in stages]
    waiting = QueueEntry.objects.filter(stage_id__in=ids, left_at__isnull=True)
    counts = {
        row["stage_id"]: row
        for row in waiting.order_by()
        .values("stage_id")
        .annotate(n=Count("pk"), oldest=Min("entered_at"))
    }
    offers = dict(
        Offer.objects.filter(status=Offer.Status.PENDING, stage_id__in=ids)
        .order_by()
        .values("stage_id")
        .annotate(n=Count("pk"))
        .values_list("stage_id", "n")
    )
    rows: list[dict[str, Any]] = []
    for stage in stages:
        count = counts.get(stage.pk)
        oldest: datetime | None = count["oldest"] if count else None
        rows.append(
            {
                "id": stage.pk,
                "name": stage.name,
                "pipeline": stage.pipeline.name,
                "tier": stage.tier.name,
                "waiting": count["n"] if count else 0,
                "oldest_since": oldest.isoformat() if oldest else None,
                "oldest_seconds": _seconds(oldest, now) if oldest else None,
                "timeout_seconds": stage.wait_timeout_seconds,
                "offers": offers.get(stage.pk, 0),
            }
        )
    names = {stage.pk: stage.name for stage in stages}
    listed = [
        {
            "chat": entry["chat_id"],
            "visitor": entry["chat__visitor_name"],
            "stage": names[entry["stage_id"]],
            "since": entry["entered_at"].isoformat(),
            "seconds": _seconds(entry["entered_at"], now),
            "url": _chat_url(entry["chat_id"]),
        }
        for entry in waiting.order_by("entered_at", "pk").values(
            "chat_id", "chat__visitor_name", "stage_id", "entered_at"
        )[:WAITING_LISTED]
    ]
    return rows, listed, sum(row["waiting"] for row in rows)


def _agents(now: datetime) -> list[dict[str, Any]]:
    """Active agents, online first, each with its load, capacity and its chats: those it holds,
    then those it joined in a warm hand-over (they count against its capacity too)."""
    holding = Assignment.objects.filter(ended_at__isnull=True).select_related("chat")
    agents = with_load_and_capacity(Agent.objects.filter(user__is_active=True)).prefetch_related(
        Prefetch("assignments", queryset=holding.order_by("started_at", "pk"), to_attr="holding")
    )
    joined: dict[int, list[Handover]] = {}
    for handover in (
        Handover.objects.filter(status=Handover.Status.JOINED)
        .select_related("chat")
        .order_by("joined_at", "pk")
    ):
        if handover.receiver_id is not None:
            joined.setdefault(handover.receiver_id, []).append(handover)

    def chat_row(chat: ChatSession, since: datetime, *, is_joined: bool) -> dict[str, Any]:
        return {
            "chat": chat.pk,
            "visitor": chat.visitor_name,
            "since": since.isoformat(),
            "seconds": _seconds(since, now),
            "url": _chat_url(chat.pk),
            "joined": is_joined,
        }

    rows = [
        {
            "id": agent.pk,
            "name": agent.display_name,
            "presence": agent.presence,
            "presence_label": agent.get_presence_display(),
            "load": agent.load,  # type: ignore[attr-defined]
            "capacity": agent.cap,  # type: ignore[attr-defined]
            "chats": [
                chat_row(held.chat, held.started_at, is_joined=False) for held in agent.holding
            ]
            + [
                chat_row(h.chat, h.joined_at or h.deadline, is_joined=True)
                for h in joined.get(agent.pk, [])
            ],
        }
        for agent in agents
    ]
    rows.sort(key=lambda row: (PRESENCE_ORDER.get(row["presence"], 3), row["name"].casefold()))
    return rows


def live_snapshot(*, now: datetime | None = None) -> dict[str, Any]:
    """The whole live view, ready to send as JSON: `type` "live", the server's `now` (the page
    runs its clocks from it), stages, the oldest waiting chats, agents and today's service
    level."""
    now = now or timezone.now()
    stages, waiting, waiting_total = _stages(now)
    agents = _agents(now)
    level = service_level_today(now=now, target_seconds=service_level_target_seconds())
    return {
        "type": "live",
        "now": now.isoformat(),
        "day": timezone.localtime(now, site_tz()).date().isoformat(),
        "time_zone": settings.TIME_ZONE,
        "stages": stages,
        "waiting": waiting,
        "waiting_total": waiting_total,
        "agents": agents,
        "online": sum(1 for agent in agents if agent["presence"] == Agent.Presence.ONLINE),
        "offers": sum(stage["offers"] for stage in stages),
        "service_level": level.as_dict(),
    }


def may_watch_live(user: Any) -> bool:
    """Managers (and admins): the people the reports are for."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.has_perm("escalation.view_reports")
    )


def invalid_manager_logins(logins: set[ManagerLogin]) -> set[ManagerLogin]:
    """Of these sockets' logins, those that may no longer watch: the user was disabled, lost the
    reports role or changed password, or the session is gone (logged out) or expired. Two
    queries for any number of sockets, checked together every few seconds."""
    if not logins:
        return set()
    may_view = (
        Q(is_superuser=True)
        | Q(groups__permissions__codename="view_reports")
        | Q(user_permissions__codename="view_reports")
    )
    passwords = dict(
        get_user_model()
        .objects.filter(pk__in={login[0] for login in logins}, is_active=True)
        .filter(may_view)
        .values_list("pk", "password")
        .distinct()
    )
    return revoked_logins(logins, passwords)
