from django.urls import path

from chat.consumers.console import ConsoleConsumer
from chat.consumers.visitor import VisitorConsumer

websocket_urlpatterns = [
    path("ws/chat/<int:chat_id>/", VisitorConsumer.as_asgi()),
    path("ws/console/", ConsoleConsumer.as_asgi()),
]
