"""Limits at the websocket edge: a cap on the sockets one client address may hold open on this
daphne process, and close frames (not a dropped connection) for frames the server refuses.

Counted in memory per process (each process enforces its own cap; deployment.md adds nginx's
`limit_conn` in front for a cap across processes). Past the cap the socket is accepted only to be
closed with 4429, so that the client sees why rather than a bare HTTP 403.
"""

from collections import Counter
from typing import Any

from django.conf import settings

CLOSE_TOO_MANY_CONNECTIONS = 4429

Scope = dict[str, Any]


class ConnectionCapMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.open: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        client = scope.get("client") or ("unknown", 0)
        address = str(client[0])
        if self.open[address] >= settings.WS_MAX_CONNECTIONS_PER_ADDRESS:
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": CLOSE_TOO_MANY_CONNECTIONS})
            return None
        self.open[address] += 1
        try:
            return await self.app(scope, receive, send)
        finally:
            self.open[address] -= 1
            if self.open[address] <= 0:
                del self.open[address]


def close_frames_on_protocol_errors() -> None:
    """Under daphne: refuse an oversized frame (over daphne's 1 MiB) with close code 1009 and
    invalid UTF-8 with 1007, as RFC 6455 says, instead of autobahn's default of dropping the TCP
    connection (the client then sees 1006 and cannot tell why). Autobahn copies each option from
    the factory onto a connection only when the protocol class does not set it, so this class
    attribute is how daphne's connections get it (daphne exposes no option for it)."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # another ASGI server: it has its own behaviour
        return
    WebSocketProtocol.failByDrop = False
