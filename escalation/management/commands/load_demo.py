from typing import Any

from django.core.management.base import BaseCommand

from escalation.demo import DEMO_PASSWORD, DEMO_SITE, load_demo_configuration
from escalation.models import Site


class Command(BaseCommand):
    help = "Create or refresh the demo configuration and demo users (safe to run again)."

    def handle(self, *args: Any, **options: Any) -> None:
        logins = load_demo_configuration()
        self.stdout.write(self.style.SUCCESS("Demo configuration loaded."))
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for login in logins:
            self.stdout.write(f"  {login.username:<8} {login.role:<8} {login.detail}")
        site = Site.objects.get(name=DEMO_SITE)
        self.stdout.write(
            f"Chat widget: the site “{site.name}” (key {site.key}) may be embedded from "
            "http://localhost:8080 (docs/widget.md)."
        )
