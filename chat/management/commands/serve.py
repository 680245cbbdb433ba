from typing import Any

from daphne.cli import CommandLineInterface
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from helpdesk.embedded import EmbeddedCelery


def daphne_options() -> list[str]:
    """The daphne options Tierline runs with, wherever it starts daphne."""
    # No --proxy-headers: daphne would believe X-Forwarded-For from anyone. The application
    # reads it only from TRUSTED_PROXIES (helpdesk/asgi.py).
    return ["--websocket_connect_timeout", str(settings.WS_HANDSHAKE_TIMEOUT_SECONDS)]


class Command(BaseCommand):
    help = (
        "Run Tierline under daphne. With no REDIS_URL (the embedded default) this process also "
        "runs the Celery worker and beat; with REDIS_URL run them separately (see Procfile)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, bind: str, port: int, **options: Any) -> None:
        if settings.EMBEDDED_WORKER:
            EmbeddedCelery().start()
            self.stdout.write("Embedded Celery worker and beat started (in-memory broker).")
        CommandLineInterface().run(
            ["--bind", bind, "--port", str(port), *daphne_options(), "helpdesk.asgi:application"]
        )
