from django.apps import AppConfig

# Connects the failed-login counter (per address, across usernames) when the app registry loads,
# not at the first login, when the authentication backends are first imported. (Its module uses
# no model, so it can be imported this early.)
from chat import checks, throttles  # noqa: F401 - (checks: registers the deploy checks)


class ChatConfig(AppConfig):
    name = "chat"
