from typing import Any

from django.core.management.base import BaseCommand

from escalation.demo import DEMO_PASSWORD, load_demo_configuration


class Command(BaseCommand):
    help = "Create or refresh the demo configuration and demo users (safe to run again)."

    def handle(self, *args: Any, **options: Any) -> None:
        logins = load_demo_configuration()
        self.stdout.write(self.style.SUCCESS("Demo configuration loaded."))
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for login in logins:
            self.stdout.write(f"  {login.username:<8} {login.role:<8} {login.detail}")
