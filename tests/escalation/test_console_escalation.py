"""/escalate, /help and the Escalate button over the console socket (WebsocketCommunicator)."""

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from escalation import services
from escalation.models import Agent, Escalation
from helpdesk.asgi import application


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


async def console(client, username: str) -> WebsocketCommunicator:
    user = await sync_to_async(lambda: Agent.objects.get(user__username=username).user)()
    await sync_to_async(client.force_login)(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    ws = WebsocketCommunicator(
        application,
        "/ws/console/",
        headers=[
            (b"origin", b"http://localhost"),
            (b"host", b"localhost"),
            (b"cookie", cookie.encode()),
        ],
    )
    assert (await ws.connect())[0]
    await ws.receive_json_from()  # hello
    return ws


async def until(ws, frame_type: str) -> list[dict[str, Any]]:
    frames = []
    while True:
        frames.append(await ws.receive_json_from(timeout=3))
        if frames[-1]["type"] == frame_type:
            return frames


@sync_to_async
def chat_held_by_alex():
    services.set_presence(agent=Agent.objects.get(user__username="alex"), presence="online")
    return services.start_chat(
        visitor_name="Carol",
        visitor_email="",
        topic_name="Billing",
        first_message="Help",
        visitor_context={},
    )


async def send_text(ws, chat, text):
    await ws.send_json_to(
        {"type": "message", "chat": chat.pk, "text": text, "client_id": text[:20]}
    )


async def test_help_lists_the_commands_and_stores_nothing(demo, client):
    chat = await chat_held_by_alex()
    ws = await console(client, "alex")
    await send_text(ws, chat, "/help")
    result = (await until(ws, "command.result"))[-1]
    assert result["text"].startswith("Commands: /escalate <keyword> <hand-over note>")
    assert not await sync_to_async(chat.messages.filter(text__startswith="/").exists)()
    await ws.disconnect()


@pytest.mark.parametrize(
    ("text", "code", "says"),
    [
        (
            "/escalate",
            "unknown_target",
            "Targets: billing = Billing specialists (Level 2, 0 online and free)",
        ),
        ("/escalate nope please", "unknown_target", "Unknown target “nope”."),
        ("/escalate billing", "note_required", "A hand-over note is required: /escalate billing"),
        ("/escalate engineering Needs a developer", "nobody_available", "Nobody in L3 Engineering"),
        ("/frobnicate", "unknown_command", "Unknown command /frobnicate."),
    ],
)
async def test_bad_commands_answer_in_the_console(demo, client, text, code, says):
    chat = await chat_held_by_alex()
    ws = await console(client, "alex")
    await send_text(ws, chat, text)
    error = (await until(ws, "error"))[-1]
    assert error["code"] == code and says in error["message"]
    assert (
        await sync_to_async(lambda: chat.route.__class__.objects.get(chat=chat).agent_id)()
        is not None
    )
    await ws.disconnect()


async def test_escalate_command_hands_over_and_the_console_drops_the_chat(demo, client):
    chat = await chat_held_by_alex()
    ws = await console(client, "alex")
    await send_text(ws, chat, "/escalate billing Disputed invoice, already checked the account")
    frames = await until(ws, "escalated")
    assert frames[-1]["to"] == "L2 Billing"
    if not any(f["type"] == "chat.removed" for f in frames):
        frames += await until(ws, "chat.removed")  # the group event may come after the reply
    removed = [f for f in frames if f["type"] == "chat.removed"]
    assert removed == [
        {
            "type": "chat.removed",
            "v": 3,
            "chat": chat.pk,
            "seq": removed[0]["seq"],
            "reason": "escalated",
            "handed_over_to": "L2 Billing (Level 2)",
        }
    ]
    # The console saw the hand-over as the visitor did, then let go of the chat.
    notices = [f for f in frames if f["type"] == "message" and f["seq"] <= removed[0]["seq"]]
    assert [f["event"] for f in notices][-2:] == ["agent_left", "transfer"]
    assert frames.index(removed[0]) > frames.index(notices[-1])
    escalation = await sync_to_async(Escalation.objects.get)()
    assert escalation.requested_by == "command"
    assert escalation.note == "Disputed invoice, already checked the account"
    await ws.send_json_to({"type": "queue"})
    # The answer to the request has all the lists (a push after a queue change has `items` only).
    lists = (await until(ws, "queue"))[-1]
    while "chats" not in lists:
        lists = (await until(ws, "queue"))[-1]
    assert lists["chats"] == []
    await ws.disconnect()


async def test_escalate_button_with_options_reason_and_note(demo, client):
    chat = await chat_held_by_alex()
    ws = await console(client, "alex")
    await ws.send_json_to({"type": "escalation.options", "chat": chat.pk})
    options = (await until(ws, "escalation.options"))[-1]
    assert [o["keyword"] for o in options["options"]] == [
        "billing",
        "technical",
        "engineering",
        "seniors",
    ]
    assert options["options"][0] == {
        "keyword": "billing",
        "label": "Billing specialists",
        "kind": "stage",
        "team": "L2 Billing",
        "tier": "Level 2",
        "available": 0,
        "note_required": True,
        "no_agent_rule": "queue",
        "warm": False,
    }
    assert "Billing question" in options["reasons"]
    assert (options["colleagues"], options["colleague_modes"]) == ([], [])  # not allowed here
    await ws.send_json_to(
        {
            "type": "escalate",
            "chat": chat.pk,
            "target": "billing",
            "reason": "Billing question",
            "note": "Refund over limit",
        }
    )
    await until(ws, "escalated")
    escalation = await sync_to_async(Escalation.objects.get)()
    assert (escalation.requested_by, escalation.reason) == ("button", "Billing question")
    await ws.disconnect()


async def test_the_receiving_agent_sees_the_handover_note_and_the_path(demo, client):
    chat = await chat_held_by_alex()
    await sync_to_async(services.escalate_chat)(
        chat_id=chat.pk,
        agent=await sync_to_async(Agent.objects.get)(user__username="alex"),
        keyword="billing",
        note="Disputed invoice",
        reason="Billing question",
    )
    sam = await sync_to_async(Agent.objects.get)(user__username="sam")
    await sync_to_async(services.set_presence)(agent=sam, presence="online")
    ws = await console(client, "sam")
    await ws.send_json_to({"type": "queue"})
    [item] = (await until(ws, "queue"))[-1]["items"]
    assert item["tier_path"] == ["Level 1", "Level 2"]
    assert (item["handover"]["note"], item["handover"]["reason"]) == (
        "Disputed invoice",
        "Billing question",
    )
    await ws.send_json_to({"type": "take", "chat": chat.pk})
    await until(ws, "taken")
    await ws.send_json_to({"type": "subscribe", "chat": chat.pk, "since": 0})
    frames = await until(ws, "replay.done")
    info = next(f for f in frames if f["type"] == "chat.info")
    assert (
        info["handover"]["from_agent"] == "Alex" and info["handover"]["note"] == "Disputed invoice"
    )
    assert [f["text"] for f in info["flow"]][:3] == [
        "Chat started (Billing)",
        "Waiting at L1 General",
        "Alex took it at L1 General",
    ]
    texts = [f["text"] for f in frames if f["type"] == "message"]
    assert (
        texts[0] == "Help" and "Sam from the billing team joined the chat." in texts
    )  # full history
    await ws.disconnect()
