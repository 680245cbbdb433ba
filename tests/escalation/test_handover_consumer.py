"""Hand-overs on real console sockets (WebsocketCommunicator through the full ASGI stack, on the
configured channel layer): who may do what (only the holder requests and cancels, only an offered
receiver accepts or declines, only the receiver who joined takes over), the frames each agent
gets, and clear errors for bad input."""

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from escalation import services
from escalation.models import ChatRoute, EscalationOption, Handover
from tests.chat.test_consumers import console_socket, frames_until
from tests.escalation.test_transfer import agent, online, start

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


@sync_to_async
def warm_chat():
    EscalationOption.objects.filter(keyword="billing").update(is_warm=True)
    online("alex", "sam", "kim")
    return start()


async def console(username: str):
    user = await sync_to_async(lambda: agent(username).user)()
    ws = await console_socket(Client(), user)
    connected, _ = await ws.connect()
    assert connected
    await frames_until(ws, "hello")
    return ws


async def error_of(ws, frame: dict) -> dict:
    await ws.send_json_to(frame)
    return (await frames_until(ws, "error"))[-1]


async def test_the_authorisation_matrix_of_a_warm_hand_over(demo):
    chat = await warm_chat()
    alex, sam, kim = await console("alex"), await console("sam"), await console("kim")

    # Only the holder asks, and gets the hand-over's state; the receivers get the offer.
    assert (
        await error_of(
            sam, {"type": "escalate", "chat": chat.pk, "target": "billing", "note": "Invoice"}
        )
    )["code"] == "not_your_chat"
    await alex.send_json_to(
        {"type": "escalate", "chat": chat.pk, "target": "billing", "note": "Invoice"}
    )
    said = (await frames_until(alex, "escalated"))[-1]
    assert said["text"].startswith("Asked L2 Billing to join")
    state = (await frames_until(alex, "handover"))[-1]
    assert (state["status"], state["warm"], state["to"]) == ("pending", True, "L2 Billing")
    offer = (await frames_until(sam, "handover.offer"))[-1]
    assert (offer["chat"], offer["from_agent"], offer["note"]) == (chat.pk, "Alex", "Invoice")
    handover_id = offer["handover"]
    await frames_until(kim, "handover.offer")

    # Nobody but the holder cancels; bad input is a clear error, never a crash.
    assert (await error_of(sam, {"type": "handover.cancel", "chat": chat.pk}))[
        "code"
    ] == "handover_not_found"
    assert (await error_of(sam, {"type": "handover.accept", "handover": "x"}))["code"] == (
        "bad_frame"
    )
    assert (await error_of(sam, {"type": "handover.accept", "handover": 10**9}))["code"] == (
        "handover_not_found"
    )
    # Not joined yet: nobody takes over.
    assert (await error_of(sam, {"type": "handover.take", "chat": chat.pk}))["code"] == (
        "not_receiver"
    )
    # The offered receiver may read the chat before answering.
    await sam.send_json_to({"type": "subscribe", "chat": chat.pk})
    info = (await frames_until(sam, "chat.info"))[-1]
    assert info["handover_state"]["role"] == "offered"

    await sam.send_json_to({"type": "handover.accept", "handover": handover_id})
    joined = (await frames_until(sam, "handover"))[-1]
    assert (joined["status"], joined["receiver"]) == ("joined", "Sam")
    assert (await frames_until(alex, "handover"))[-1]["status"] == "joined"
    closed = (await frames_until(kim, "handover.offer.closed"))[-1]
    assert (closed["status"], closed["reason"]) == ("withdrawn", "taken")
    assert (await error_of(kim, {"type": "handover.accept", "handover": handover_id}))[
        "code"
    ] == "handover_closed"

    # The receiver writes; Kim, who was not chosen, may not; nor take over.
    await sam.send_json_to(
        {"type": "message", "chat": chat.pk, "text": "Sam here", "client_id": "s1"}
    )
    posted = (await frames_until(sam, "message"))[-1]
    assert (posted["author"], posted["text"]) == ("Sam", "Sam here")
    assert (
        await error_of(
            kim, {"type": "message", "chat": chat.pk, "text": "me too", "client_id": "k"}
        )
    )["code"] in ("not_your_chat", "not_found")
    assert (await error_of(kim, {"type": "handover.take", "chat": chat.pk}))["code"] == (
        "not_receiver"
    )
    assert (await error_of(alex, {"type": "handover.take", "chat": chat.pk}))["code"] == (
        "not_receiver"
    )

    await sam.send_json_to({"type": "handover.take", "chat": chat.pk})
    removed = (await frames_until(alex, "chat.removed"))[-1]
    assert (removed["reason"], removed["handed_over_to"]) == ("escalated", "Sam")
    assert (await frames_until(sam, "chat.assigned"))[-1]["chat"] == chat.pk
    route = await sync_to_async(lambda: ChatRoute.objects.select_related("agent").get(chat=chat))()
    assert route.agent.display_name == "Sam"
    for ws in (alex, sam, kim):
        await ws.disconnect()


async def test_a_receiver_declines_and_a_colleague_request_is_checked(demo):
    chat = await warm_chat()
    await sync_to_async(
        lambda: services.escalate_chat(
            chat_id=chat.pk, agent=agent("alex"), keyword="billing", note="Invoice"
        )
    )()
    handover = await sync_to_async(Handover.objects.get)(chat=chat)
    alex, sam = await console("alex"), await console("sam")
    hello_again = await console("kim")
    await hello_again.send_json_to({"type": "queue"})
    lists = (await frames_until(hello_again, "queue"))[-1]
    assert [h["handover"] for h in lists["handovers"] if h["type"] == "handover.offer"] == [
        handover.pk
    ]
    await hello_again.send_json_to({"type": "handover.decline", "handover": handover.pk})
    await sam.send_json_to({"type": "handover.decline", "handover": handover.pk})
    told = (await frames_until(alex, "handover"))[-1]
    assert told["status"] == "declined"
    assert told["text"].endswith("declined the hand-over: the chat stays with you.")

    # This stage does not allow handing to a colleague.
    assert (await error_of(alex, {"type": "handover.request", "chat": chat.pk, "colleague": 1}))[
        "code"
    ] == "colleague_not_allowed"
    assert (
        await error_of(alex, {"type": "message", "chat": chat.pk, "text": "/escalate @Sam hi"})
    )["code"] == "colleague_not_allowed"
    assert (await error_of(sam, {"type": "handover.request", "chat": chat.pk, "colleague": 1}))[
        "code"
    ] == "not_your_chat"
    for ws in (alex, sam, hello_again):
        await ws.disconnect()


async def joined_by_sam(chat, alex, sam, kim=None):
    """Alex asks Billing in (warm); Sam joins. The `handover.offer` Sam got."""
    await alex.send_json_to(
        {"type": "escalate", "chat": chat.pk, "target": "billing", "note": "Invoice"}
    )
    offer = (await frames_until(sam, "handover.offer"))[-1]
    if kim is not None:
        await frames_until(kim, "handover.offer")
    await sam.send_json_to({"type": "handover.accept", "handover": offer["handover"]})
    assert (await frames_until(sam, "handover"))[-1]["status"] == "joined"
    while (await frames_until(alex, "handover"))[-1]["status"] != "joined":
        pass  # the request's own "pending" came first
    return offer


async def test_a_receiver_who_joined_follows_the_chat_again_after_reconnecting(demo):
    chat = await warm_chat()
    alex, sam = await console("alex"), await console("sam")
    await joined_by_sam(chat, alex, sam)
    await sam.disconnect()

    user = await sync_to_async(lambda: agent("sam").user)()
    again = await console_socket(Client(), user)
    await again.connect()
    hello = (await frames_until(again, "hello"))[-1]
    assert [(c["chat"], c["role"]) for c in hello["chats"]] == [(chat.pk, "receiver")]
    assert [(h["type"], h["status"]) for h in hello["handovers"]] == [("handover", "joined")]
    await alex.send_json_to(
        {"type": "message", "chat": chat.pk, "text": "Carol, Sam is here", "client_id": "a1"}
    )
    got = await frames_until(again, "message")
    assert got[-1]["text"] == "Carol, Sam is here"
    for ws in (alex, again):
        await ws.disconnect()


async def test_a_closed_hand_over_offer_stops_the_preview_it_opened(demo):
    chat = await warm_chat()
    alex, sam, kim = await console("alex"), await console("sam"), await console("kim")
    await alex.send_json_to(
        {"type": "escalate", "chat": chat.pk, "target": "billing", "note": "Invoice"}
    )
    offer = (await frames_until(kim, "handover.offer"))[-1]
    await frames_until(sam, "handover.offer")
    await kim.send_json_to({"type": "subscribe", "chat": chat.pk})
    await frames_until(kim, "replay.done")

    await sam.send_json_to({"type": "handover.accept", "handover": offer["handover"]})
    got = await frames_until(kim, "chat.removed")
    closed = next(f for f in got if f["type"] == "handover.offer.closed")
    assert closed["status"] == "withdrawn"
    assert got[-1]["reason"] == "no_longer_visible"
    # Kim may not subscribe again, and hears nothing of the chat any more.
    assert (await error_of(kim, {"type": "subscribe", "chat": chat.pk}))["code"] == "not_found"
    await frames_until(sam, "handover")
    await sam.send_json_to({"type": "handover.take", "chat": chat.pk})
    await frames_until(sam, "chat.assigned")
    await sam.send_json_to(
        {"type": "message", "chat": chat.pk, "text": "note", "internal": True, "client_id": "n"}
    )
    await frames_until(sam, "ack")
    assert await kim.receive_nothing(timeout=0.5)
    for ws in (alex, sam, kim):
        await ws.disconnect()


async def test_the_first_agent_cancels_a_joined_hand_over_and_the_receiver_is_told(demo):
    chat = await warm_chat()
    alex, sam = await console("alex"), await console("sam")
    await joined_by_sam(chat, alex, sam)
    await alex.send_json_to({"type": "handover.cancel", "chat": chat.pk})
    told = (await frames_until(alex, "handover"))[-1]
    assert (told["status"], told["text"]) == (
        "cancelled",
        "You cancelled the hand-over: Sam left the chat, which stays with you.",
    )
    got = await frames_until(sam, "chat.removed")
    said = next(f for f in got if f["type"] == "handover")
    assert said["text"] == "Alex cancelled the hand-over: you left the chat."
    assert "Sam left the chat." in [f.get("text") for f in got if f["type"] == "message"]
    assert got[-1]["reason"] == "handover_cancelled"
    for ws in (alex, sam):
        await ws.disconnect()
