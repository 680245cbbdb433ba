"""The console's offer frames through the real ASGI stack: the offer arrives, accept and decline
answer it, and bad frames get errors."""

import pytest
from asgiref.sync import sync_to_async

from escalation.models import Offer
from tests.chat.test_consumers import _close_thread_connections, console_socket  # noqa: F401
from tests.escalation.test_offers import offer_of, online, start

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


async def test_console_gets_offers_and_answers_them(desk, client):
    await sync_to_async(online)(desk.ann)
    ws = await console_socket(client, desk.ann.user)
    await ws.connect()
    hello = await ws.receive_json_from()
    assert hello["offers"] == []
    chat = await sync_to_async(start)("Orders")
    offered = await ws.receive_json_from(timeout=3)
    while offered["type"] != "offer":
        offered = await ws.receive_json_from(timeout=3)
    assert (offered["chat"], offered["policy"]) == (chat.pk, "broadcast")

    for frame in (
        {"type": "offer.accept"},
        {"type": "offer.accept", "offer": "1"},
        {"type": "offer.decline", "offer": 1, "chat": 2},
    ):
        await ws.send_json_to(frame)
        assert (await ws.receive_json_from())["code"] == "bad_frame"
    await ws.send_json_to({"type": "offer.accept", "offer": 2**62, "ref": "x"})
    error = await ws.receive_json_from()
    assert (error["code"], error["ref"]) == ("offer_not_found", "x")

    other = await sync_to_async(start)("Orders")
    await ws.send_json_to({"type": "offer.decline", "offer": offered["offer"]})
    await ws.send_json_to(
        {"type": "offer.accept", "offer": (await sync_to_async(offer_of)(other, desk.ann)).pk}
    )
    got = []
    while not any(f["type"] == "taken" for f in got):
        got.append(await ws.receive_json_from(timeout=3))
    assert {"type": "offer.closed", "chat": chat.pk, "status": "declined"}.items() <= next(
        f for f in got if f["type"] == "offer.closed" and f["chat"] == chat.pk
    ).items()
    assert got[-1]["chat"] == other.pk
    status = await sync_to_async(Offer.objects.get)(chat=other, agent=desk.ann)
    assert status.status == "accepted"
    await ws.disconnect()
