import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
# Set up Django (apps, models) before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.realtime.limits import ConnectionCapMiddleware, close_frames_on_protocol_errors  # noqa: E402
from chat.realtime.origins import SameOriginValidator  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": ConnectionCapMiddleware(
            SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)

# The ASGI module is imported by the server before it listens: under daphne, answer oversized
# frames and invalid UTF-8 with a close frame (1009, 1007) instead of dropping the connection.
close_frames_on_protocol_errors()
