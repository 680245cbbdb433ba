from django.urls import path

from chat import consumers

websocket_urlpatterns = [
    path("ws/chat/<int:chat_id>/", consumers.VisitorConsumer.as_asgi()),
    path("ws/console/", consumers.ConsoleConsumer.as_asgi()),
]
