import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
# Set up Django (apps, models) before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware  # noqa: E402

from chat.consumers.visitor import site_origin_allowed  # noqa: E402
from chat.realtime.limits import ConnectionCapMiddleware, close_frames_on_protocol_errors  # noqa: E402
from chat.realtime.origins import SameOriginValidator  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from helpdesk import gcpolicy  # noqa: E402

# Outermost: the client's address (scope["client"], hence REMOTE_ADDR) is the connection's peer,
# or, when that peer is one of TRUSTED_PROXIES, the right-most address in X-Forwarded-For that is
# not a trusted proxy (X-Forwarded-Proto likewise sets the scheme). Everything inside (the
# websocket cap, login throttling, the rate limits) counts by that one address. uvicorn's
# middleware is plain ASGI and does exactly this; daphne's own --proxy-headers trusts anyone.
application = ProxyHeadersMiddleware(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": ConnectionCapMiddleware(
                SameOriginValidator(
                    URLRouter(websocket_urlpatterns), also_allowed=site_origin_allowed
                )
            ),
        }
    ),
    trusted_hosts=settings.TRUSTED_PROXIES,
)

# The ASGI module is imported by the server before it listens: under daphne, answer oversized
# frames and invalid UTF-8 with a close frame (1009, 1007) instead of dropping the connection.
close_frames_on_protocol_errors()

# Every server process: shorter pauses of the garbage collector with thousands of sockets open.
gcpolicy.install(settings.GC_FREEZE_SECONDS)
