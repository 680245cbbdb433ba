from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"

    def ready(self) -> None:
        # Connects the failed-login counter (per address, across usernames) at start-up, not
        # at the first login, when the authentication backends are first imported.
        from chat import throttles  # noqa: F401
