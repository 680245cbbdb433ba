"""/ws/live/ through the real ASGI stack (origin check, session auth) and the channel layer the
settings name (Redis when REDIS_URL is set): who may watch, the snapshot on connect, a fresh one
after each change a service commits, changes coalesced, and a manager who loses the role cut off
at the re-check."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction

from escalation import services
from helpdesk.asgi import application
from reporting import consumers
from tests.factories import start_chat

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

HOST = (b"host", b"localhost")
ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


async def live_socket(client, user=None, origin=ORIGIN) -> WebsocketCommunicator:
    headers = [origin, HOST]
    if user is not None:
        await sync_to_async(client.force_login)(user)
        cookie = (
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, "/ws/live/?v=3", headers=headers)


async def snapshot_where(ws, check, timeout: float = 5) -> dict:
    """The first `live` frame for which `check` holds (earlier ones may show part of a change)."""
    while True:
        frame = await ws.receive_json_from(timeout=timeout)
        if frame["type"] == "live" and check(frame):
            return frame


def agent_row(frame: dict, name: str) -> dict:
    return next(a for a in frame["agents"] if a["name"] == name)


async def test_a_manager_gets_a_snapshot_then_each_change(client, manager_user, alice_agent):
    ws = await live_socket(client, manager_user)
    assert (await ws.connect())[0]
    first = await ws.receive_json_from()
    assert (first["type"], first["waiting_total"]) == ("live", 0)
    assert agent_row(first, "Alice")["load"] == 0

    chat = await sync_to_async(start_chat)(visitor_name="Nia")
    arrived = await snapshot_where(ws, lambda f: f["waiting_total"] == 1)
    assert [w["visitor"] for w in arrived["waiting"]] == ["Nia"]

    await sync_to_async(services.take_chat)(chat_id=chat.pk, agent=alice_agent)
    taken = await snapshot_where(ws, lambda f: agent_row(f, "Alice")["load"] == 1)
    assert taken["waiting_total"] == 0
    assert [c["visitor"] for c in agent_row(taken, "Alice")["chats"]] == ["Nia"]
    assert taken["service_level"]["met"] == 1

    await ws.send_json_to({"type": "ping"})
    assert (await ws.receive_json_from())["type"] == "pong"
    await ws.disconnect()


async def test_changes_that_arrive_together_make_one_more_snapshot_not_one_each(
    client, manager_user, l1_setup, monkeypatch
):
    monkeypatch.setattr(consumers, "SNAPSHOT_EVERY_SECONDS", 2.0)
    ws = await live_socket(client, manager_user)
    await ws.connect()
    await ws.receive_json_from()

    def five_chats() -> None:
        with transaction.atomic():  # their nudges all follow the one commit
            for n in range(5):
                start_chat(visitor_name=f"V{n}")

    await sync_to_async(five_chats)()
    leading = await ws.receive_json_from(timeout=5)  # the first nudge, at once
    trailing = await ws.receive_json_from(timeout=5)  # every other nudge, together
    assert leading["waiting_total"] == trailing["waiting_total"] == 5
    assert await ws.receive_nothing(timeout=2.5)
    await ws.disconnect()


@pytest.mark.parametrize("who", ["anonymous", "agent"])
async def test_only_managers_may_watch(client, alice_agent, who):
    ws = await live_socket(client, alice_agent.user if who == "agent" else None)
    connected, _ = await ws.connect()
    assert connected  # accepted only to say why
    assert (await ws.receive_output())["code"] == 4403


async def test_a_page_of_another_origin_is_refused(client, manager_user):
    ws = await live_socket(client, manager_user, origin=(b"origin", b"http://evil.example"))
    connected, _ = await ws.connect()
    assert not connected


@pytest.mark.parametrize("how", ["no longer a manager", "disabled", "logged out"])
async def test_a_manager_who_may_no_longer_watch_is_cut_off(
    client, manager_user, l1_setup, settings, how
):
    settings.AGENT_RECHECK_SECONDS = 0.2
    ws = await live_socket(client, manager_user)
    await ws.connect()
    await ws.receive_json_from()
    if how == "no longer a manager":
        await sync_to_async(manager_user.groups.clear)()
    elif how == "disabled":
        manager_user.is_active = False
        await sync_to_async(manager_user.save)()
    else:
        await sync_to_async(client.logout)()
    while True:  # a snapshot may still come first; the close follows within a re-check
        output = await ws.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            assert output["code"] == 4403
            break
    # Gone from the group: a change after the close reaches nobody on this socket.
    await sync_to_async(start_chat)()
    assert await ws.receive_nothing(timeout=1)


async def test_a_manager_still_allowed_stays_connected_through_the_rechecks(
    client, manager_user, l1_setup, settings
):
    settings.AGENT_RECHECK_SECONDS = 0.1
    ws = await live_socket(client, manager_user)
    await ws.connect()
    await ws.receive_json_from()
    assert await ws.receive_nothing(timeout=1)  # ten re-checks, no close
    await sync_to_async(start_chat)()
    assert (await snapshot_where(ws, lambda f: f["waiting_total"] == 1))["type"] == "live"
    await ws.disconnect()


class TestNudges:
    """What tells the live view that something changed: the events of the changes it shows,
    published after commit, in the same round trip as the event itself."""

    pytestmark = pytest.mark.django_db

    def test_a_queue_change_an_assignment_and_a_presence_change_each_nudge_it(
        self, alice_agent, django_capture_on_commit_callbacks
    ):
        from chat.events import LIVE_CHANGED, LIVE_GROUP
        from tests.chat.test_events import Listener

        watcher = Listener(LIVE_GROUP)
        with django_capture_on_commit_callbacks(execute=True):
            chat = start_chat()
            assert watcher.receive_all() == []  # nothing before the commit
        assert {"type": LIVE_CHANGED} in watcher.receive_all()
        with django_capture_on_commit_callbacks(execute=True):
            services.take_chat(chat_id=chat.pk, agent=alice_agent)
        assert {"type": LIVE_CHANGED} in watcher.receive_all()
        with django_capture_on_commit_callbacks(execute=True):
            services.set_presence(agent=alice_agent, presence="away")
        assert watcher.receive_all() == [{"type": LIVE_CHANGED}]

    def test_a_message_does_not_nudge_it(self, alice_agent, django_capture_on_commit_callbacks):
        from chat.events import LIVE_GROUP
        from tests.chat.test_events import Listener

        chat = start_chat()
        watcher = Listener(LIVE_GROUP)
        with django_capture_on_commit_callbacks(execute=True):
            services.post_visitor_message(chat_id=chat.pk, text="Still there?")
        assert watcher.receive_all() == []
