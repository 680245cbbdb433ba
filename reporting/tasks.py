"""Celery tasks of the reports."""

from celery import shared_task

from reporting import summaries


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]
def summarise_days() -> int:
    """Beat, every REPORT_SUMMARY_SECONDS: count the finished days into the daily summaries."""
    return summaries.summarise_pending()
