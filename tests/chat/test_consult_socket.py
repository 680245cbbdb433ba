"""Consults over the console socket, through the full ASGI stack on the configured channel layer:
the holder asks, the colleague is told at once, opens the chat read-only and answers, the holder
sees the answer; every consult action refused to whoever may not do it, with a clear error; and
the visitor's socket never carries any of it."""

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from escalation import services
from escalation.models import Agent, AgentGroup, Consult
from tests.chat.test_consumers import console_socket, frames_until, visitor_socket
from tests.factories import start_chat

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

QUESTION = "Can we refund after 40 days?"
ANSWER = "Yes, with a manager's OK."


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


def agent(username: str) -> Agent:
    return Agent.objects.get(user__username=username)


def setup_held_chat():
    """Alex holds Carol's chat; Sam, Kim (L2 Billing) and Taylor (L2 Technical) are online."""
    services.set_presence(agent=agent("alex"), presence="online")
    chat = start_chat(first_message="I want my money back")
    for name in ("sam", "kim", "taylor"):
        services.set_presence(agent=agent(name), presence="online")
    return chat


async def console(client, username: str):
    """`username`'s console, logged in with a client of its own (a second login on one client
    would log the first out, and its socket would be closed)."""
    del client
    user = await sync_to_async(lambda: agent(username).user)()
    ws = await console_socket(Client(), user, version=3)
    connected, _ = await ws.connect()
    assert connected
    await frames_until(ws, "hello")
    return ws


async def opened(ws, chat):
    await ws.send_json_to({"type": "subscribe", "chat": chat.pk})
    return await frames_until(ws, "replay.done")


async def error(ws, frame):
    await ws.send_json_to(frame)
    return (await frames_until(ws, "error"))[-1]


async def test_holder_asks_colleague_reads_and_answers_and_the_visitor_sees_nothing(demo, client):
    chat = await sync_to_async(setup_held_chat)()
    ids = await sync_to_async(lambda: {n: agent(n).pk for n in ("alex", "sam")})()
    visitor = await visitor_socket(chat, version=3)
    await visitor.connect()
    seen_by_visitor = await frames_until(visitor, "replay.done")
    alex = await console(client, "alex")
    await opened(alex, chat)
    sam = await console(client, "sam")

    await alex.send_json_to({"type": "consult.options", "chat": chat.pk})
    options = (await frames_until(alex, "consult.options"))[-1]
    assert {"id": ids["sam"], "name": "Sam", "handle": "sam"} in options["colleagues"]
    assert all(c["id"] != ids["alex"] for c in options["colleagues"])
    billing = next(g for g in options["groups"] if g["name"] == "L2 Billing")
    assert (billing["handle"], billing["online"]) == ("l2-billing", 2)

    await alex.send_json_to(
        {"type": "consult.open", "chat": chat.pk, "agent": ids["sam"], "text": QUESTION}
    )
    got = await frames_until(alex, "consult")
    question = next(f for f in got if f["type"] == "message")
    assert (question["kind"], question["event"], question["text"]) == (
        "internal",
        "consult",
        QUESTION,
    )
    alert = (await frames_until(sam, "consult"))[-1]
    assert (alert["status"], alert["asked_by"], alert["question"]) == ("open", "Alex", QUESTION)

    # Sam opens the chat: its header says he is consulted, and the transcript comes with it.
    replay = await opened(sam, chat)
    info = next(f for f in replay if f["type"] == "chat.info")
    assert (info["held"], info["consult"]["role"]) == (False, "consultant")
    assert QUESTION in [f.get("text") for f in replay]
    # Read-only: the visitor's composer is not his.
    refused = await error(sam, {"type": "message", "chat": chat.pk, "text": "Hi Carol"})
    assert refused["code"] == "not_your_chat"

    await sam.send_json_to(
        {"type": "consult.reply", "consult": alert["consult"], "text": ANSWER, "client_id": "s1"}
    )
    mine = (await frames_until(sam, "message"))[-1]
    assert (mine["text"], mine["client_id"]) == (ANSWER, "s1")  # his own stream acknowledges
    answered = await frames_until(alex, "message")
    assert [f["text"] for f in answered if f["type"] == "message"] == [ANSWER]
    assert [f["answered_by"] for f in answered if f["type"] == "consult"] == ["Sam"]
    # The chat goes on live for Sam: the visitor writes, he reads it.
    await visitor.send_json_to({"type": "message", "text": "Still there?", "client_id": "v1"})
    assert (await frames_until(sam, "message"))[-1]["text"] == "Still there?"

    # The holder writes to the visitor: the visitor's stream has that and nothing internal.
    await alex.send_json_to({"type": "message", "chat": chat.pk, "text": "Good news, Carol"})
    seen_by_visitor += await frames_until(visitor, "message")
    while seen_by_visitor[-1].get("text") != "Good news, Carol":
        seen_by_visitor += await frames_until(visitor, "message")
    texts = " ".join(str(f) for f in seen_by_visitor)
    assert QUESTION not in texts and ANSWER not in texts and "consult" not in texts
    assert [f["seq"] for f in seen_by_visitor if f["type"] == "message"] == list(
        range(1, len([f for f in seen_by_visitor if f["type"] == "message"]) + 1)
    )  # no gap where the thread's messages sit in the agents' stream

    # Alex closes the thread: Sam is told, stops following the chat and may not open it again.
    await alex.send_json_to({"type": "consult.close", "consult": alert["consult"]})
    gone = await frames_until(sam, "chat.removed")
    closed = next(f for f in gone if f["type"] == "consult")
    assert (closed["status"], closed["reason"], closed["closed_by"]) == ("closed", "closed", "Alex")
    assert gone[-1]["reason"] == "consult_closed"
    assert (await error(sam, {"type": "subscribe", "chat": chat.pk}))["code"] == "not_found"
    for ws in (alex, sam, visitor):
        await ws.disconnect()


async def test_a_console_connecting_later_is_told_of_its_open_consults(demo, client):
    chat = await sync_to_async(setup_held_chat)()
    consult, _ = await sync_to_async(
        lambda: services.open_consult(
            chat_id=chat.pk,
            agent=agent("alex"),
            question=QUESTION,
            group_id=AgentGroup.objects.get(name="L2 Billing").pk,
        )
    )()
    user = await sync_to_async(lambda: agent("kim").user)()
    kim = await console_socket(Client(), user, version=3)
    await kim.connect()
    told = (await frames_until(kim, "consult"))[-1]
    assert (told["consult"], told["to"], told["status"]) == (consult.pk, "L2 Billing", "open")
    await kim.disconnect()


async def test_a_group_member_reading_stops_when_another_member_answers(demo, client):
    chat = await sync_to_async(setup_held_chat)()
    group_id = await sync_to_async(lambda: AgentGroup.objects.get(name="L2 Billing").pk)()
    alex = await console(client, "alex")
    await opened(alex, chat)
    sam = await console(client, "sam")
    kim = await console(client, "kim")
    await alex.send_json_to(
        {"type": "consult.open", "chat": chat.pk, "group": group_id, "text": QUESTION}
    )
    consult = (await frames_until(sam, "consult"))[-1]["consult"]
    await frames_until(kim, "consult")
    await opened(sam, chat)
    await opened(kim, chat)
    await kim.send_json_to({"type": "consult.reply", "consult": consult, "text": ANSWER})
    removed = await frames_until(sam, "chat.removed")
    assert removed[-1]["reason"] == "consult_closed"
    late = await error(sam, {"type": "consult.reply", "consult": consult, "text": "Me too"})
    assert (late["code"], late["message"]) == (
        "consult_closed",
        "Kim answered this consult: it goes on with them.",
    )
    for ws in (alex, sam, kim):
        await ws.disconnect()


async def test_the_consultant_stops_reading_when_the_chat_ends(demo, client):
    chat = await sync_to_async(setup_held_chat)()
    sam_id = await sync_to_async(lambda: agent("sam").pk)()
    alex = await console(client, "alex")
    await opened(alex, chat)
    sam = await console(client, "sam")
    await alex.send_json_to(
        {"type": "consult.open", "chat": chat.pk, "agent": sam_id, "text": QUESTION}
    )
    consult = (await frames_until(sam, "consult"))[-1]["consult"]
    await opened(sam, chat)
    await alex.send_json_to({"type": "end", "chat": chat.pk})
    # The consult's end (to Sam) and the chat's (to its followers) travel apart: whichever comes
    # first ends Sam's reading, with the chat's status or with `chat.removed` consult_closed.
    got = await frames_until(sam, "consult")
    closed = got[-1]
    assert (closed["status"], closed["reason"]) == ("closed", "chat_ended")
    if not any(f["type"] == "chat.status" for f in got):
        assert (await frames_until(sam, "chat.removed"))[-1]["reason"] == "consult_closed"
    assert (await error(sam, {"type": "subscribe", "chat": chat.pk}))["code"] == "not_found"
    late = await error(sam, {"type": "consult.reply", "consult": consult, "text": "Hello?"})
    assert late["code"] == "consult_closed"
    for ws in (alex, sam):
        await ws.disconnect()


async def test_every_consult_action_is_refused_to_whoever_may_not_take_it(demo, client, settings):
    chat = await sync_to_async(setup_held_chat)()
    ids = await sync_to_async(
        lambda: {n: agent(n).pk for n in ("alex", "sam", "taylor", "jordan")}
    )()
    alex = await console(client, "alex")
    sam = await console(client, "sam")
    taylor = await console(client, "taylor")
    big = "x" * (settings.MESSAGE_MAX_CHARS + 1)
    open_frame = {"type": "consult.open", "chat": chat.pk, "agent": ids["taylor"], "text": "Hm"}
    cases = [
        # Not the holder: neither another agent nor the colleague may open or list.
        (sam, {"type": "consult.options", "chat": chat.pk}, "not_your_chat"),
        (sam, open_frame, "not_your_chat"),
        (alex, {**open_frame, "agent": ids["alex"]}, "colleague_unavailable"),
        (alex, {**open_frame, "agent": ids["jordan"]}, "colleague_unavailable"),
        (alex, {**open_frame, "agent": 987654}, "unknown_colleague"),
        (alex, {**open_frame, "agent": None}, "unknown_colleague"),
        (alex, {**open_frame, "group": 1}, "unknown_colleague"),
        (alex, {**open_frame, "text": big}, "invalid_message"),
        (alex, {**open_frame, "text": "  "}, "invalid_message"),
        (alex, {**open_frame, "chat": 987654}, "not_found"),
        (alex, {**open_frame, "agent": "taylor"}, "bad_frame"),
        (alex, {**open_frame, "extra": 1}, "bad_frame"),
        (alex, {"type": "consult.reply", "consult": 987654, "text": "Hi"}, "consult_not_found"),
        (alex, {"type": "consult.close", "consult": 987654}, "consult_not_found"),
        (alex, {"type": "consult.close"}, "bad_frame"),
    ]
    for ws, frame, code in cases:
        got = await error(ws, frame)
        assert got["code"] == code, (frame, got)
        assert got["message"]
    await alex.send_json_to({**open_frame, "agent": ids["sam"], "text": QUESTION})
    consult = (await frames_until(sam, "consult"))[-1]["consult"]
    assert (await error(alex, {**open_frame, "agent": ids["taylor"]}))["code"] == "consult_open"
    # Taylor was not asked: the thread is not his to read, write or close.
    assert (await error(taylor, {"type": "subscribe", "chat": chat.pk}))["code"] == "not_found"
    for frame in (
        {"type": "consult.reply", "consult": consult, "text": "Hi"},
        {"type": "consult.close", "consult": consult},
    ):
        assert (await error(taylor, frame))["code"] == "consult_not_found"
    reply = {"type": "consult.reply", "consult": consult, "text": big}
    assert (await error(sam, reply))["code"] == "invalid_message"
    await sam.send_json_to({"type": "consult.close", "consult": consult})
    await frames_until(alex, "consult")
    for ws in (sam, alex):
        closed = await error(ws, {**reply, "text": "After"})
        assert closed["code"] == "consult_closed"
    for ws in (alex, sam, taylor):
        await ws.disconnect()


async def test_the_consult_command(demo, client):
    chat = await sync_to_async(setup_held_chat)()
    alex = await console(client, "alex")
    await opened(alex, chat)
    usage = await error(alex, {"type": "message", "chat": chat.pk, "text": "/consult"})
    assert usage["code"] == "unknown_colleague"
    assert (
        "@sam (Sam)" in usage["message"]
        and "@l2-billing (L2 Billing, 2 online)" in usage["message"]
    )
    nobody = await error(alex, {"type": "message", "chat": chat.pk, "text": "/consult @zed Hi"})
    assert nobody["message"].startswith("Nobody is called @zed.")
    await alex.send_json_to(
        {"type": "message", "chat": chat.pk, "text": f"/consult @l2-billing {QUESTION}"}
    )
    result = (await frames_until(alex, "command.result"))[-1]
    assert result["text"] == "You asked L2 Billing."
    told = (await frames_until(alex, "consult"))[-1]
    assert (told["to"], told["question"]) == ("L2 Billing", QUESTION)
    await alex.disconnect()


async def test_a_consult_action_right_after_a_disable_is_refused(demo, client, settings):
    settings.AGENT_RECHECK_SECONDS = 60  # the tick is far off: the action itself re-checks
    settings.AGENT_ACTION_RECHECK_SECONDS = 0
    chat = await sync_to_async(setup_held_chat)()
    consult, _ = await sync_to_async(
        lambda: services.open_consult(
            chat_id=chat.pk, agent=agent("alex"), question=QUESTION, colleague_id=agent("sam").pk
        )
    )()
    sam = await console(client, "sam")
    user = await sync_to_async(lambda: agent("sam").user)()
    user.is_active = False
    await sync_to_async(user.save)()
    await sam.send_json_to({"type": "consult.reply", "consult": consult.pk, "text": ANSWER})
    while True:
        output = await sam.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            break
    assert output["code"] == 4403
    assert not await sync_to_async(lambda: chat.messages.filter(text=ANSWER).exists())()


@pytest.mark.parametrize(
    "text", ["/escalate billing She wants a refund", f"/consult @sam {QUESTION}"]
)
async def test_a_command_right_after_a_disable_is_refused(demo, client, settings, text):
    """Commands travel as messages, whose own re-check is made by the batch that stores a post;
    a command stores nothing, so it re-checks who is acting before it hands the chat over or
    lets a colleague read it."""
    settings.AGENT_RECHECK_SECONDS = 60
    settings.AGENT_ACTION_RECHECK_SECONDS = 0
    chat = await sync_to_async(setup_held_chat)()
    alex = await console(client, "alex")
    user = await sync_to_async(lambda: agent("alex").user)()
    user.is_active = False
    await sync_to_async(user.save)()
    await alex.send_json_to({"type": "message", "chat": chat.pk, "text": text})
    while True:
        output = await alex.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            break
    assert output["code"] == 4403
    assert not await sync_to_async(lambda: chat.escalations.exists())()
    assert not await sync_to_async(lambda: Consult.objects.filter(chat=chat).exists())()
    assert (
        await sync_to_async(lambda: chat.route.agent_id)()
        == await sync_to_async(lambda: agent("alex").pk)()
    )
