"""The websocket edge from outside: hostile frames get an answer and never a crash, a socket we
close leaves its groups first, and only this site's own pages (host and port) may open one."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from escalation import services
from helpdesk.asgi import application
from tests.chat.test_consumers import ORIGIN, console_socket, frames_until, start, visitor_socket

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


@pytest.mark.parametrize("depth", [16_000, 100_000])
async def test_deeply_nested_json_is_bad_json_and_the_socket_lives_on(l1_setup, depth):
    chat = await sync_to_async(start)()
    ws = await visitor_socket(chat, since=99)
    await ws.connect()
    await frames_until(ws, "replay.done")
    await ws.send_to(text_data="[" * depth + "]" * depth)
    error = await ws.receive_json_from()
    assert error["code"] in ("bad_json", "frame_too_large")
    await ws.send_json_to({"type": "ping"})
    assert (await ws.receive_json_from())["type"] == "pong"
    await ws.disconnect()


async def test_a_nested_frame_on_the_console_is_bad_json_too(alice_agent, client):
    ws = await console_socket(client, alice_agent.user)
    await ws.connect()
    await frames_until(ws, "hello")
    await ws.send_to(text_data='{"type": "ping", "x": ' + "[" * 16_000 + "]" * 16_000 + "}")
    assert (await ws.receive_json_from())["code"] == "bad_json"
    await ws.send_json_to({"type": "ping"})
    assert (await ws.receive_json_from())["type"] == "pong"
    await ws.disconnect()


async def test_a_flooding_socket_leaves_its_groups_before_it_is_closed(l1_setup, settings):
    from channels.layers import get_channel_layer

    from chat.events import chat_visitor_group

    settings.WS_FRAMES_PER_SECOND = 1
    settings.WS_FRAME_BURST = 1
    chat = await sync_to_async(start)()
    ws = await visitor_socket(chat, since=99)
    await ws.connect()
    await frames_until(ws, "replay.done")
    closed = None
    for _ in range(200):
        await ws.send_json_to({"type": "ping"})
        output = await ws.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            closed = output
            break
    assert closed is not None and closed["code"] == 4429
    layer = get_channel_layer()
    group = chat_visitor_group(chat.pk)
    assert hasattr(layer, "_groups"), "the test reads the fan-out layer's local groups"
    members = layer._groups
    assert not members.get(group), "the closed socket still follows its chat"
    # An event for the chat now reaches nobody: nothing is sent to the closed socket.
    await sync_to_async(services.end_chat_by_visitor)(chat_id=chat.pk)
    assert await ws.receive_nothing(timeout=0.3)


def socket_from(origin: bytes, host: bytes) -> WebsocketCommunicator:
    return WebsocketCommunicator(
        application, "/ws/console/", headers=[(b"origin", origin), (b"host", host)]
    )


@pytest.mark.parametrize(
    ("origin", "host", "opens"),
    [
        (b"http://localhost:8000", b"localhost:8000", True),
        (b"http://localhost:9999", b"localhost:8000", False),  # another program's page
        (b"http://127.0.0.1:8000", b"localhost:8000", False),
        (b"https://localhost", b"localhost", True),  # behind a TLS proxy: no port in Host
        (b"http://localhost", b"localhost", True),
        (b"http://localhost:8443", b"localhost", False),
        (b"https://evil.example", b"localhost", False),
        (b"null", b"localhost", False),
        (b"http://localhost:8000", b"evil.example:8000", False),  # a host not allowed
    ],
)
async def test_only_this_sites_own_pages_open_a_socket(alice_agent, client, origin, host, opens):
    ws = socket_from(origin, host)
    connected, code = await ws.connect()
    if opens:
        # Anonymous here (no cookie): the consumer itself answers 4403, after the origin check.
        assert (connected and code is None) or (await ws.receive_output())["code"] == 4403
    else:
        assert not connected
    await ws.disconnect()


async def test_a_trusted_origin_may_open_one(alice_agent, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://support.example.com"]
    ws = socket_from(b"https://support.example.com", b"localhost:8000")
    connected, _ = await ws.connect()
    assert connected
    await ws.disconnect()
    assert ORIGIN  # the tests' own origin stays valid (http://localhost, Host localhost)
