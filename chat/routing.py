from typing import Any, cast

from channels.auth import AuthMiddlewareStack
from django.urls import path, re_path

from chat.consumers.console import ConsoleConsumer
from chat.consumers.visitor import VisitorConsumer
from reporting.consumers import LiveConsumer

CLOSE_NOT_FOUND = 4404


async def unknown_path(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Any other websocket path: accepted only to be closed with 4404, so that the client learns
    why and the server logs nothing (without this route channels raises "No route found", which
    daphne logs with a traceback and answers with an HTTP 500: a log flood for anyone)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": CLOSE_NOT_FOUND})


websocket_urlpatterns = [
    # A visitor's socket is authorised by its chat token alone: no session or user is loaded
    # for it (each would stay in memory for as long as the socket is open).
    path("ws/chat/<int:chat_id>/", VisitorConsumer.as_asgi()),
    # The console's agent comes from the session cookie.
    path("ws/console/", AuthMiddlewareStack(ConsoleConsumer.as_asgi())),
    # The managers' live view: the manager, too, comes from the session cookie.
    path("ws/live/", AuthMiddlewareStack(LiveConsumer.as_asgi())),
    # Last: whatever the routes above did not match. (An ASGI app, as the consumers are.)
    re_path(r"", cast(Any, unknown_path)),
]
