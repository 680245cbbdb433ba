"""Celery tasks: each takes ids and calls one service (the services arm them by name, see
escalation.services.timers)."""

from datetime import datetime

from celery import shared_task

from escalation import services


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
def handover_timeout(handover_id: int) -> str:
    return services.handle_handover_timeout(handover_id=handover_id)


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]
def still_searching(entry_id: int, due: str) -> str:
    return services.send_still_searching(entry_id=entry_id, due=datetime.fromisoformat(due))


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]
def send_email(email_id: int) -> str:
    return services.send_email_now(email_id=email_id)


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]
def sweep_overdue_timers() -> int:
    """Beat, every TIMER_SWEEP_SECONDS: the safety net for timer tasks that were lost
    (wait-timeouts, offer and hand-over accept timeouts, still-searching notices, e-mails)."""
    return (
        services.sweep_overdue_entries()
        + services.sweep_overdue_offers()
        + services.sweep_overdue_handovers()
        + services.sweep_due_notices()
        + services.sweep_due_emails()
    )


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]
def sweep_gone_visitors() -> int:
    """Beat: abandon waiting chats whose visitor's page stopped answering."""
    return services.sweep_gone_visitors()


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]
def sweep_gone_agents() -> int:
    """Beat: sign out agents whose every console is gone, and hand their chats back."""
    return services.sweep_gone_agents()


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]
def purge_expired_transcripts() -> int:
    """Beat, hourly: erase the transcripts past TRANSCRIPT_RETENTION_DAYS."""
    return services.purge_expired_transcripts()
