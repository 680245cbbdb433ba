"""Checks of Tierline's own settings, run by `manage.py check --deploy`."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning


@register(Tags.mail, deploy=True)
def check_email_sender(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """With e-mail on, the sender must be a real address: most mail servers refuse mail from
    @localhost, and the refusals only show as failed e-mails after all their tries."""
    sender = settings.DEFAULT_FROM_EMAIL.strip().rstrip(">")
    if settings.EMAIL_ENABLED and sender.endswith("@localhost"):
        return [
            CheckWarning(
                f"DEFAULT_FROM_EMAIL is {settings.DEFAULT_FROM_EMAIL!r}, which mail servers "
                "refuse.",
                hint="Set DEFAULT_FROM_EMAIL to an address of your domain, e.g. "
                "'Support <support@example.com>'.",
                id="tierline.W001",
            )
        ]
    return []
