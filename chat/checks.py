"""Checks of Tierline's own settings, run by `manage.py check --deploy`."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Error as CheckError
from django.core.checks import Warning as CheckWarning

from chat.attachments import KNOWN_TYPES


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


@register()
def check_attachment_types(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """ATTACHMENT_TYPES may only name types whose content Tierline can check; another one would
    be silently never allowed."""
    unknown = [t for t in settings.ATTACHMENT_TYPES if t not in KNOWN_TYPES]
    if not unknown:
        return []
    return [
        CheckError(
            f"ATTACHMENT_TYPES names types Tierline cannot check: {', '.join(unknown)}.",
            hint=f"Choose among {', '.join(KNOWN_TYPES)}.",
            id="tierline.E001",
        )
    ]
