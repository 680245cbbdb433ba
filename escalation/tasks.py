"""Celery tasks: each takes ids, loads rows and calls one service."""

from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from chat.models import ChatSession
from escalation import services
from escalation.models import Agent, Assignment, QueueEntry
from escalation.services import retention


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]
def publish_queue(stage_id: int) -> None:
    services.publish_queue_now(stage_id=stage_id)


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]
def wait_timeout(entry_id: int) -> str:
    return services.handle_wait_timeout(entry_id=entry_id)


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]
def offer_timeout(offer_id: int) -> str:
    return services.handle_offer_timeout(offer_id=offer_id)


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]
def still_searching(entry_id: int, due: str) -> str:
    return services.send_still_searching(entry_id=entry_id, due=datetime.fromisoformat(due))


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]
def sweep_overdue_timers() -> int:
    """Beat, every TIMER_SWEEP_SECONDS: the safety net for timer tasks that were lost
    (wait-timeouts, offer accept timeouts, still-searching notices)."""
    return (
        services.sweep_overdue_entries()
        + services.sweep_overdue_offers()
        + services.sweep_due_notices()
    )


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]
def sweep_gone_visitors() -> int:
    """Abandon waiting chats whose visitor's page stopped answering (closed tab, lost network)."""
    seen_before = timezone.now() - timedelta(seconds=settings.VISITOR_GONE_SECONDS)
    chat_ids = (
        ChatSession.objects.filter(
            status=ChatSession.Status.QUEUED, visitor_seen_at__lt=seen_before
        )
        .exclude(route__entry__reason=QueueEntry.Reason.DROPPED)  # already left: a follow-up
        .values_list("pk", flat=True)[:500]
    )
    return sum(
        services.abandon_if_visitor_gone(chat_id=chat_id, seen_before=seen_before)
        for chat_id in list(chat_ids)
    )


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]
def sweep_gone_agents() -> int:
    """Beat: an agent none of whose console tabs has been seen for AGENT_GONE_SECONDS (a console
    pings every 20 s) is set offline, and the chats they still hold go back to their queues,
    keeping their places: no chat is routed to, or left with, someone who is not there. Returns
    how many agents were signed out or had chats handed back."""
    seen_before = timezone.now() - timedelta(seconds=settings.AGENT_GONE_SECONDS)
    holding = Assignment.objects.filter(agent=OuterRef("pk"), ended_at__isnull=True)
    agent_ids = list(
        Agent.objects.filter(console_seen_at__lt=seen_before)
        .filter(~Q(presence=Agent.Presence.OFFLINE) | Exists(holding))
        .values_list("pk", flat=True)[:500]
    )
    for agent_id in agent_ids:
        services.sign_out_if_console_gone(agent_id=agent_id, seen_before=seen_before)
        services.hand_back_chats_of_gone_agent(agent_id=agent_id, seen_before=seen_before)
    return len(agent_ids)


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]
def purge_expired_transcripts() -> int:
    """Beat, hourly: erase the transcripts past TRANSCRIPT_RETENTION_DAYS."""
    return retention.purge_expired_transcripts()
