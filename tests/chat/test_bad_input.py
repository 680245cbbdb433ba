"""Bad input, one table: each case asserts the documented answer (docs/protocol.md,
"Errors") and that the socket, another chat and the stored history are untouched.

Through the real ASGI stack (origin check, session auth, connection cap) with
WebsocketCommunicator, on the channel layer and database the settings name (Redis and PostgreSQL
in CI)."""

import json
from urllib.parse import quote

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from chat.models import Message
from chat.selectors import make_visitor_token
from escalation import services
from helpdesk.asgi import application
from tests.chat.test_consumers import console_socket, frames_until, visitor_socket
from tests.factories import StageOptionFactory


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

LIMIT = settings.MESSAGE_MAX_CHARS


def start(name: str = "Carol"):
    return services.start_chat(
        visitor_name=name,
        visitor_email="",
        topic_name="Billing",
        first_message="Hello",
        visitor_context={},
    )


def history(chat) -> list[tuple[int, str]]:
    return list(Message.objects.filter(chat=chat).order_by("seq").values_list("seq", "text"))


def msg(text: str) -> str:
    return json.dumps({"type": "message", "text": text, "client_id": "case"})


# (case, raw frame sent by the visitor, error code or None when it is stored, text as stored)
VISITOR_CASES = [
    ("non-JSON", "not json", "bad_json", None),
    ("JSON but not an object", "[1, 2]", "bad_frame", None),
    ("no type", '{"text": "hi"}', "bad_frame", None),
    ("unknown type", '{"type": "launch"}', "unknown_type", None),
    ("wrong type of text", '{"type": "message", "text": 5}', "bad_frame", None),
    (
        "wrong type of client_id",
        '{"type": "message", "text": "a", "client_id": 7}',
        "bad_frame",
        None,
    ),
    ("boolean as a number", '{"type": "resume", "since": true}', "bad_frame", None),
    ("missing text", '{"type": "message"}', "bad_frame", None),
    ("extra field", '{"type": "message", "text": "a", "to": 2}', "bad_frame", None),
    ("empty text", msg(""), "invalid_message", None),
    ("whitespace-only text", msg(" \t\n\u3000 "), "invalid_message", None),
    ("just under the size limit", msg("x" * LIMIT), None, "x" * LIMIT),
    ("just over the size limit", msg("x" * (LIMIT + 1)), "invalid_message", None),
    ("10,000 newlines", msg("\n" * 10_000), "invalid_message", None),
    ("10,000 newlines between words", msg("a" + "\n" * 10_000 + "b"), "invalid_message", None),
    ("over the frame size", msg("y" * 40_000), "frame_too_large", None),
    ("NUL characters", msg("a\x00b"), None, "ab"),
    (
        "lone surrogate",
        '{"type": "message", "text": "a\\ud800b", "client_id": "case"}',
        None,
        "a\ufffdb",
    ),
    ("right-to-left override", msg("\u202egnp.exe"), None, "\u202egnp.exe"),
    ("zero-width characters", msg("pay\u200bpal\u200d\ufeff"), None, "pay\u200bpal\u200d\ufeff"),
    ("script tag", msg("<script>alert(1)</script>"), None, "<script>alert(1)</script>"),
    ("img onerror", msg('<img src=x onerror="alert(1)">'), None, '<img src=x onerror="alert(1)">'),
    ("javascript: link", msg("javascript:alert(1)"), None, "javascript:alert(1)"),
    ("agent-only: take", '{"type": "take", "chat": 1}', "unknown_type", None),
    (
        "agent-only: escalate",
        '{"type": "escalate", "chat": 1, "target": "x"}',
        "unknown_type",
        None,
    ),
    ("agent-only: subscribe", '{"type": "subscribe", "chat": 1}', "unknown_type", None),
    ("agent-only: presence", '{"type": "presence", "presence": "online"}', "unknown_type", None),
    (
        "a visitor's /escalate is only text",
        msg("/escalate billing now"),
        None,
        "/escalate billing now",
    ),
    ("since not a whole number", '{"type": "resume", "since": 1e400}', "bad_frame", None),
    ("since too big", '{"type": "resume", "since": 100000000000000000000}', "bad_frame", None),
]


@pytest.mark.parametrize(
    ("frame", "code", "stored_as"),
    [case[1:] for case in VISITOR_CASES],
    ids=[case[0] for case in VISITOR_CASES],
)
async def test_bad_visitor_input(alice_agent, frame, code, stored_as):
    chat, other = await sync_to_async(start)(), await sync_to_async(start)("Dan")
    await sync_to_async(services.take_chat)(chat_id=other.pk, agent=alice_agent)
    other_before = await sync_to_async(history)(other)
    before = await sync_to_async(history)(chat)
    ws = await visitor_socket(chat, since=99)
    await ws.connect()
    await frames_until(ws, "replay.done")
    await ws.send_to(text_data=frame)
    answer = (await frames_until(ws, "error" if code else "ack"))[-1]
    if code:
        assert answer["code"] == code, answer
        assert answer["message"]  # a sentence for a person, not just a code
        assert await sync_to_async(history)(chat) == before  # nothing stored
    else:
        assert await sync_to_async(history)(chat) == [*before, (answer["seq"], stored_as)]
    # The socket is still up and works; the other chat is untouched; the agent did not escalate.
    await ws.send_json_to({"type": "message", "text": "still works", "client_id": "next"})
    assert (await frames_until(ws, "ack"))[-1]["seq"] == len(await sync_to_async(history)(chat))
    assert await sync_to_async(history)(other) == other_before
    assert not await sync_to_async(chat.escalations.exists)()
    await ws.disconnect()


# --- resume points -------------------------------------------------------------------------------
async def test_since_negative_replays_from_the_start(l1_setup):
    chat = await sync_to_async(start)()
    ws = await visitor_socket(chat, since=-5)
    await ws.connect()
    frames = await frames_until(ws, "replay.done")
    assert [f["seq"] for f in frames if f["type"] == "message"] == [1, 2]
    await ws.disconnect()


async def test_since_in_the_future_says_where_the_chat_really_ends(l1_setup):
    chat = await sync_to_async(start)()
    ws = await visitor_socket(chat, since=10**12)
    await ws.connect()
    frames = await frames_until(ws, "replay.done")
    assert not [f for f in frames if f["type"] == "message"]
    assert frames[-1]["last"] == 2 and frames[-1]["more"] is False  # not 10**12
    await ws.send_json_to({"type": "resume", "since": 10**15})
    assert (await frames_until(ws, "replay.done"))[-1]["last"] == 2
    await ws.disconnect()


async def test_since_zero_on_a_long_chat_replays_in_bounded_pages(alice_agent):
    chat = await sync_to_async(start)()
    await sync_to_async(services.take_chat)(chat_id=chat.pk, agent=alice_agent)

    @sync_to_async
    def long_chat() -> int:
        for i in range(450):
            services.post_agent_message(chat_id=chat.pk, agent=alice_agent, text=f"m{i}")
        chat.refresh_from_db()
        return chat.last_public_seq

    last = await long_chat()
    ws = await visitor_socket(chat, since=0)
    await ws.connect()
    await ws.receive_json_from()  # hello
    got: list[int] = []
    pages = 0
    since = 0
    while True:
        frames = await frames_until(ws, "replay.done")
        page = [f["seq"] for f in frames if f["type"] == "message"]
        assert len(page) <= settings.REPLAY_PAGE_SIZE  # bounded
        got += page
        pages += 1
        done = frames[-1]
        if not done["more"]:
            break
        since = done["last"]
        await ws.send_json_to({"type": "resume", "since": since})
    assert got == list(range(1, last + 1)) and pages == 3
    await ws.disconnect()


# --- tokens and other chats ----------------------------------------------------------------------
async def refused(ws: WebsocketCommunicator) -> int:
    connected, _ = await ws.connect()
    assert connected  # accepted only to say why
    return (await ws.receive_output())["code"]


async def test_a_token_for_one_chat_opens_no_other(l1_setup):
    chat, other = await sync_to_async(start)(), await sync_to_async(start)()
    token = await sync_to_async(make_visitor_token)(chat)
    path = f"/ws/chat/{other.pk}/?token={quote(token)}&since=0"
    ws = WebsocketCommunicator(
        application, path, headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")]
    )
    assert await refused(ws) == 4403


async def test_a_replayed_token_of_an_ended_chat_reads_but_cannot_act(alice_agent):
    """Someone who copies the token of an ended chat sees only that chat, and cannot write to it
    or reopen it."""
    chat = await sync_to_async(start)()
    token = await sync_to_async(make_visitor_token)(chat)
    await sync_to_async(services.end_chat_by_visitor)(chat_id=chat.pk)
    before = await sync_to_async(history)(chat)
    ws = await visitor_socket(chat, token=token, since=0)
    await ws.connect()
    hello = await ws.receive_json_from()
    assert hello["status"] == "abandoned"
    await frames_until(ws, "replay.done")
    await ws.send_json_to({"type": "message", "text": "let me back in", "client_id": "r"})
    assert (await frames_until(ws, "error"))[-1]["code"] == "chat_closed"
    await ws.send_json_to({"type": "end"})
    await ws.send_json_to({"type": "ping"})
    await frames_until(ws, "pong")
    assert await sync_to_async(history)(chat) == before
    await ws.disconnect()


# --- agents: targets, ended chats, other chats ---------------------------------------------------
@pytest.fixture
def held(alice_agent, l1_setup):
    StageOptionFactory(stage=l1_setup.l1, keyword="billing", target_stage=l1_setup.l2)
    # An option of another stage: not allowed from L1.
    StageOptionFactory(stage=l1_setup.l2, keyword="back", target_stage=l1_setup.l1)
    chat = start()
    services.take_chat(chat_id=chat.pk, agent=alice_agent)
    return chat


AGENT_CASES = [
    (
        "escalate to a target that does not exist",
        {"type": "escalate", "target": "nowhere"},
        "unknown_target",
    ),
    (
        "escalate to a target not allowed at this stage",
        {"type": "escalate", "target": "back"},
        "unknown_target",
    ),
    (
        "/escalate to a target that does not exist",
        {"type": "message", "text": "/escalate mars"},
        "unknown_target",
    ),
    (
        "escalate with a reason not configured",
        {"type": "escalate", "target": "billing", "reason": "bored"},
        "unknown_reason",
    ),
    ("unknown slash command", {"type": "message", "text": "/delete everything"}, "unknown_command"),
    ("chat id out of range", {"type": "message", "chat": 2**70, "text": "x"}, "bad_frame"),
    ("chat id of another chat", {"type": "message", "chat": "OTHER", "text": "x"}, "not_your_chat"),
    ("take a chat one holds already", {"type": "take"}, "already_taken"),
]


@pytest.mark.parametrize(
    ("frame", "code"), [c[1:] for c in AGENT_CASES], ids=[c[0] for c in AGENT_CASES]
)
async def test_bad_agent_input(held, alice_agent, client, frame, code):
    other = await sync_to_async(start)("Dan")
    before = await sync_to_async(history)(held)
    frame = {"chat": held.pk, **frame}
    if frame["chat"] == "OTHER":
        frame["chat"] = other.pk
    ws = await console_socket(client, alice_agent.user)
    await ws.connect()
    await ws.receive_json_from()
    await ws.send_json_to(frame)
    error = (await frames_until(ws, "error"))[-1]
    assert error["code"] == code, error
    assert await sync_to_async(history)(held) == before
    assert not await sync_to_async(held.escalations.exists)()
    await ws.send_json_to({"type": "message", "chat": held.pk, "text": "still mine"})
    assert (await frames_until(ws, "ack"))[-1]["seq"] == len(before) + 1
    await ws.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "message", "text": "late"}, "chat_closed"),
        ({"type": "escalate", "target": "billing"}, "chat_closed"),
        ({"type": "take"}, "chat_closed"),
        ({"type": "end"}, "chat_closed"),
    ],
    ids=["message", "escalate", "take", "end"],
)
async def test_actions_on_an_ended_chat_are_refused(held, alice_agent, client, frame, code):
    await sync_to_async(services.end_chat_by_agent)(chat_id=held.pk, agent=alice_agent)
    before = await sync_to_async(history)(held)
    ws = await console_socket(client, alice_agent.user)
    await ws.connect()
    await ws.receive_json_from()
    await ws.send_json_to({"chat": held.pk, **frame})
    assert (await frames_until(ws, "error"))[-1]["code"] == code
    assert await sync_to_async(history)(held) == before
    await ws.disconnect()


# --- flood ---------------------------------------------------------------------------------------
async def test_a_flood_from_one_client_is_throttled_and_others_are_unaffected(l1_setup):
    flooded, calm = await sync_to_async(start)(), await sync_to_async(start)("Dan")
    flooder = await visitor_socket(flooded, since=99)
    await flooder.connect()
    await frames_until(flooder, "replay.done")
    other = await visitor_socket(calm, since=99)
    await other.connect()
    await frames_until(other, "replay.done")
    frames = settings.WS_FRAME_BURST + 40
    for _ in range(frames):
        await flooder.send_json_to({"type": "ping"})
    await other.send_json_to({"type": "message", "text": "I am not spamming", "client_id": "c"})
    assert (await frames_until(other, "ack"))[-1]["seq"] == 3  # served while the flood runs
    answers = [(await flooder.receive_json_from()) for _ in range(frames)]
    codes = [a.get("code", a["type"]) for a in answers]
    assert codes.count("rate_limited") >= 20 and set(codes) == {"pong", "rate_limited"}
    # Past the limit a frame is refused, with an error that says so, never silently dropped.
    await flooder.send_json_to({"type": "message", "text": "spam", "client_id": "s"})
    answer = await flooder.receive_json_from()
    if answer.get("code") == "rate_limited":
        assert not await sync_to_async(Message.objects.filter(text="spam").exists)()
    else:
        assert answer["type"] == "ack"
    await flooder.disconnect()
    await other.disconnect()


# --- Host and Origin -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "origin",
    [
        b"http://" + b"a" * 10_000 + b".example",
        b"not a url",
        b"null",
        b"http://local\xffhost",
        b"",
    ],
    ids=["oversized", "not a URL", "null", "non-ASCII", "empty"],
)
async def test_a_malformed_or_oversized_origin_is_refused(l1_setup, origin):
    chat = await sync_to_async(start)()
    ws = await visitor_socket(chat, origin=(b"origin", origin))
    connected, _ = await ws.connect()
    assert not connected


@pytest.mark.parametrize(
    "host", ["a" * 10_000, "evil.example", "local host", "local\u00fchost", "[::1"]
)
def test_a_malformed_or_oversized_host_gets_400_not_500(client, db, host):
    assert client.get("/chat/", HTTP_HOST=host).status_code == 400
    assert client.get("/healthz").status_code == 200  # and the server goes on
