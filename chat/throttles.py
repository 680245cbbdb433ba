"""Rate limits on what anyone may do without an account: start chats, leave messages, guess
passwords.

Counted in the Django cache by django-ratelimit (fixed windows, each key's window offset by a hash
of the key): Redis, shared by every process, in services mode; this process's memory in the
embedded default, which is a single process. Every count is by the client's address as the ASGI
proxy middleware settled it (TRUSTED_PROXIES, helpdesk/asgi.py); visitors are counted by their
chat token as well, where they have one.
"""

import ipaddress
from dataclasses import dataclass
from typing import Any

from axes.exceptions import AxesBackendPermissionDenied
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest
from django_ratelimit.core import get_usage

LOGIN_FAILURES = "login-failures-per-address"


@dataclass(frozen=True)
class Refusal:
    retry_after_seconds: int

    @property
    def retry_after_minutes(self) -> int:
        return max(1, -(-self.retry_after_seconds // 60))


def client_key(group: str, request: HttpRequest) -> str:
    """The client's address; an IPv6 address by its /64, which one host usually holds whole."""
    address = request.META.get("REMOTE_ADDR") or ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an address (a Unix socket peer): counted as the string it is
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


def _count(request: HttpRequest, group: str, key: Any, rate: str) -> int | None:
    """Counts one more; returns the seconds until the window ends if that was over the rate."""
    usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
    if usage is None or not usage["should_limit"]:
        return None
    return max(1, int(usage["time_left"]))


def _refusal(
    request: HttpRequest, group: str, token: str, rates: tuple[str, str]
) -> Refusal | None:
    by_address, by_token = rates
    waits = [_count(request, f"{group}-address", client_key, by_address)]
    if token:
        waits.append(_count(request, f"{group}-visitor", lambda _g, _r: token, by_token))
    over = [wait for wait in waits if wait is not None]
    return Refusal(retry_after_seconds=max(over)) if over else None


def chat_start_refusal(request: HttpRequest, *, visitor_token: str) -> Refusal | None:
    """Counts a chat start for the client's address and, if the browser holds one, its visitor
    token; a Refusal when either is over its rate (CHAT_START_RATE_PER_*)."""
    rates = (settings.CHAT_START_RATE_PER_ADDRESS, settings.CHAT_START_RATE_PER_VISITOR)
    return _refusal(request, "chat-start", visitor_token, rates)


def left_message_refusal(request: HttpRequest, *, visitor_token: str) -> Refusal | None:
    """Likewise for a "leave a message" post (LEFT_MESSAGE_RATE_PER_*)."""
    rates = (settings.LEFT_MESSAGE_RATE_PER_ADDRESS, settings.LEFT_MESSAGE_RATE_PER_VISITOR)
    return _refusal(request, "left-message", visitor_token, rates)


def attachment_refusal(request: HttpRequest, *, visitor_token: str) -> Refusal | None:
    """Likewise for a file a visitor sends (ATTACHMENT_RATE_PER_*): each one is stored."""
    rates = (settings.ATTACHMENT_RATE_PER_ADDRESS, settings.ATTACHMENT_RATE_PER_VISITOR)
    return _refusal(request, "attachment", visitor_token, rates)


def transcript_email_refusal(request: HttpRequest, *, visitor_token: str) -> Refusal | None:
    """Likewise for a transcript asked for by e-mail (TRANSCRIPT_EMAIL_RATE_PER_*), and for the
    whole site (TRANSCRIPT_EMAIL_RATE_PER_SITE): the visitor picks the address and wrote part of
    the text, so many clients together must not turn the site's mail server into a relay."""
    site = _count(
        request,
        "transcript-email-site",
        lambda _g, _r: "site",
        settings.TRANSCRIPT_EMAIL_RATE_PER_SITE,
    )
    rates = (settings.TRANSCRIPT_EMAIL_RATE_PER_ADDRESS, settings.TRANSCRIPT_EMAIL_RATE_PER_VISITOR)
    refusal = _refusal(request, "transcript-email", visitor_token, rates)
    if site is not None:
        return Refusal(retry_after_seconds=max(site, refusal.retry_after_seconds if refusal else 0))
    return refusal


# --- Failed logins per address, across usernames --------------------------------------------------
# django-axes locks a username at an address (AXES_FAILURE_LIMIT); one limit serves all its lockout
# parameters, so it cannot also lock the address at a higher count. This does, in the same window
# (AXES_COOLOFF_MINUTES), and answers with axes's lockout page.


def _login_failure_usage(request: HttpRequest, *, increment: bool) -> dict[str, Any] | None:
    window_seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    rate = f"{settings.LOGIN_FAILURES_PER_ADDRESS}/{window_seconds}s"
    usage: dict[str, Any] | None = get_usage(
        request, group=LOGIN_FAILURES, key=client_key, rate=rate, increment=increment
    )
    return usage


def address_is_locked(request: HttpRequest) -> bool:
    usage = _login_failure_usage(request, increment=False)
    return usage is not None and usage["count"] >= settings.LOGIN_FAILURES_PER_ADDRESS


@receiver(user_login_failed, dispatch_uid="tierline-count-login-failure-per-address")
def count_login_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    if request is None:
        return
    usage = _login_failure_usage(request, increment=True)
    if usage is not None and usage["count"] >= settings.LOGIN_FAILURES_PER_ADDRESS:
        # The flag django-axes's own backend sets: AxesMiddleware turns the response into its
        # lockout page (429, registration/locked_out.html).
        request.axes_locked_out = True  # type: ignore[attr-defined]


class AddressLockoutBackend:
    """Refuses every login attempt from an address locked across usernames, before the password
    is checked (listed after axes's backend in AUTHENTICATION_BACKENDS). Authenticates no one."""

    def authenticate(self, request: HttpRequest | None, **credentials: Any) -> None:
        if request is not None and address_is_locked(request):
            request.axes_locked_out = True  # type: ignore[attr-defined]
            raise AxesBackendPermissionDenied("Too many failed logins from this address.")
        return None

    # No get_user(), on purpose: Django logs sessions in with the first backend that has one.
