from channels.generic.websocket import AsyncJsonWebsocketConsumer


class VisitorConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        await self.close(code=4403)


class ConsoleConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        await self.close(code=4403)
