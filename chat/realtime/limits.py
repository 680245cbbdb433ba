"""A cap on the websockets one client address may hold open on this daphne process.

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
