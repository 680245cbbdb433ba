"""Websockets only from this site's own pages: the Origin must be the address the socket was
opened on (host and port), or one listed in CSRF_TRUSTED_ORIGINS.

Channels' AllowedHostsOriginValidator compares host names only, so a page on another port of the
same host (another program on localhost, a second site on one machine) could open a console
socket with the agent's cookies, which browsers send whatever the port. The Host header is taken
only from ALLOWED_HOSTS. When it carries no port (the default port, which is what a TLS proxy in
front sends), either scheme's default port is accepted for that host, since the proxy may speak
plain websockets to us while the page is on https.
"""

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import ParseResult, urlparse, urlsplit

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

Scope = dict[str, Any]
DEFAULT_PORTS = {"http": 80, "https": 443}


def normal_origin(value: str) -> str:
    """`scheme://host[:port]` as a browser sends it in an Origin header (lower case, no default
    port, nothing after), or "" if `value` is no http(s) origin. Sites' allowed origins, the
    widget's checks and this validator all compare origins in this one form."""
    parts = urlsplit(value.strip())
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return ""
    try:
        port = parts.port
    except ValueError:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    keep_port = port is not None and port != DEFAULT_PORTS[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if keep_port else "")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin1"))
    return None


# Given the scope and the (normalised) Origin, whether another origin may open this socket.
ExtraOrigin = Callable[[Scope, str], Awaitable[bool]]


class SameOriginValidator(OriginValidator):  # type: ignore[misc]
    """`also_allowed` may admit other origins for some sockets (a widget's site, for the visitor
    socket of a chat its widget started): a socket authenticated by a token it carries, not by
    the browser's cookies, has nothing a foreign page could ride on."""

    def __init__(self, application: Any, also_allowed: ExtraOrigin | None = None) -> None:
        super().__init__(application, allowed_origins=[])
        self.also_allowed = also_allowed

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator is for websocket connections")
        if self.allowed(scope) or await self.extra_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)

    async def extra_allowed(self, scope: Scope) -> bool:
        origin = normal_origin(_header(scope, b"origin") or "")
        if self.also_allowed is None or not origin:
            return False
        return await self.also_allowed(scope, origin)

    def allowed(self, scope: Scope) -> bool:
        origin_header = _header(scope, b"origin")
        host = _header(scope, b"host") or ""
        if not origin_header:
            return False
        origin = urlparse(origin_header)
        if origin.scheme not in ("http", "https") or origin.hostname is None:
            return False
        if any(
            self.match_allowed_origin(origin, trusted) for trusted in settings.CSRF_TRUSTED_ORIGINS
        ):
            return True
        return self.same_site(origin, host)

    def same_site(self, origin: ParseResult, host: str) -> bool:
        domain, port = split_domain_port(host.lower())
        if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            return False
        if port:
            return origin.hostname == domain and self.get_origin_port(origin) == int(port)
        return origin.hostname == domain and self.get_origin_port(origin) in (80, 443)
