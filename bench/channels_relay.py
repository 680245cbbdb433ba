"""A plain Channels relay on channels-redis (see bench/relays.py): what a typical Django chat
does per message (group_send to the room, each member's consumer forwards it)."""

import os

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    # redis-py 8's asyncio pool refuses (rather than queues) past 100 connections
                    # in use: raised so that the relay survives a few hundred concurrent joins.
                    "hosts": [
                        {
                            "address": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11"),
                            "max_connections": 10000,
                        }
                    ],
                    "prefix": "bench-relay",
                },
            }
        },
        SECRET_KEY="bench-only",  # noqa: S106 - no sessions, nothing signed
    )
    django.setup()

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from django.urls import path


class RelayConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        self.room = f"room.{self.scope['url_route']['kwargs']['room']}"
        await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.room, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.channel_layer.group_send(
            self.room, {"type": "relay", "text": text_data, "sender": self.channel_name}
        )

    async def relay(self, event: dict[str, Any]) -> None:
        if event["sender"] != self.channel_name:
            await self.send(text_data=event["text"])


application = URLRouter([path("room/<str:room>/<str:side>", RelayConsumer.as_asgi())])
