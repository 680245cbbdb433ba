"""Issue 13 at the edge, against real servers: the client address behind (and without) trusted
proxies, seen by django-axes, and unknown websocket paths. `manage.py serve` is the command
`make run` and the Procfile use."""

import asyncio
import json
import re
import sys
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import requests
import websockets
from asgiref.sync import sync_to_async
from axes.models import AccessAttempt
from django.db import connection

from chat.models import ChatSession
from chat.selectors import make_visitor_token
from tests.e2e.live import Daphne
from tests.factories import PASSWORD, UserFactory, start_chat

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    """sync_to_async runs ORM calls on a worker thread: close its connection after each test so
    that the test database can be dropped at the end."""
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


class Serve(Daphne):
    """`manage.py serve` as `make run` starts it (REDIS_URL is set: no embedded Celery)."""

    def __init__(self, **env: str) -> None:
        super().__init__(**env)
        self.args = [sys.executable, "manage.py", "serve", "--bind", "127.0.0.1"]
        self.args += ["--port", str(self.port)]


@pytest.fixture
def server(request, _flushed_test_redis, _django_db_helper, django_db_blocker):
    """`manage.py serve`, or (parametrized) another server kind with its environment."""
    kind, env = getattr(request, "param", (Serve, {}))
    with django_db_blocker.unblock():
        process = kind(**env)
        process.start()
    yield process
    process.stop()


def login(base: str, username: str, password: str, forwarded_for: str) -> int:
    """One login through the real login form (CSRF and all); the answer's status."""
    session = requests.Session()
    form = session.get(f"{base}/accounts/login/", timeout=10).text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token, form
    response = session.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token[1]},
        headers={"X-Forwarded-For": forwarded_for},
        allow_redirects=False,
        timeout=10,
    )
    return response.status_code


def attempt_addresses() -> set[str]:
    return set(AccessAttempt.objects.values_list("ip_address", flat=True))


def test_a_forged_x_forwarded_for_is_ignored_when_no_proxy_is_trusted(server, settings):
    """The attack in the issue, on `manage.py serve` with the default TRUSTED_PROXIES (none):
    five bad passwords "from" 198.51.100.1, then the right one "from" 198.51.100.2. The header
    is ignored: every attempt is the peer's (127.0.0.1), so kim stays locked."""
    UserFactory(username="kim")
    base = server.base_url
    for attempt in range(1, settings.AXES_FAILURE_LIMIT + 1):
        status = login(base, "kim", "guess", forwarded_for="198.51.100.1")
        assert status == (429 if attempt == settings.AXES_FAILURE_LIMIT else 200)
    assert login(base, "kim", PASSWORD, forwarded_for="198.51.100.2") == 429
    assert attempt_addresses() == {"127.0.0.1"}
    assert not any("--proxy-headers" in line for line in server.lines)


@pytest.mark.parametrize(
    "server", [(Daphne, {"TRUSTED_PROXIES": "127.0.0.1,10.0.0.0/8"})], indirect=True
)
def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client(server, settings):
    """The peer (127.0.0.1) is a trusted proxy: the client is the right-most address of
    X-Forwarded-For that is not itself a trusted proxy. What a client puts at the left of the
    header (a proxy that appends keeps it) changes nothing."""
    UserFactory(username="kim")
    base = server.base_url
    for _ in range(settings.AXES_FAILURE_LIMIT):
        # the client forged "198.51.100.1"; a proxy appended the real address, and an inner
        # proxy (10.0.0.7, trusted) its own
        login(base, "kim", "guess", forwarded_for="198.51.100.1, 203.0.113.9, 10.0.0.7")
    assert attempt_addresses() == {"203.0.113.9"}
    # Whatever the client forges to the left, 203.0.113.9 stays locked ...
    assert login(base, "kim", PASSWORD, forwarded_for="198.51.100.2, 203.0.113.9") == 429
    # ... while another client behind the same proxy logs in.
    assert login(base, "kim", PASSWORD, forwarded_for="203.0.113.9, 198.51.100.10") == 302


async def test_an_unknown_websocket_path_closes_with_4404_and_logs_no_traceback(daphne_process):
    origin = daphne_process.base_url
    for path in ("/ws/nope/", "/ws/chat/not-a-number/", "/anything"):
        async with websockets.connect(
            daphne_process.ws_url + path, origin=origin, open_timeout=10
        ) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404, path
    await asyncio.sleep(0.3)  # let daphne write whatever it would log
    log = "\n".join(daphne_process.lines)
    assert "Traceback" not in log and "No route found" not in log


async def new_visitor_socket_url(server: Daphne) -> str:
    """A new chat's visitor socket address on `server` (Carol, waiting at L1)."""
    chat = await sync_to_async(start_chat)(visitor_email="", first_message="Hello?")
    token = await sync_to_async(make_visitor_token)(chat)
    return f"{server.ws_url}/ws/chat/{chat.pk}/?token={quote(token)}&since=0"


async def open_visitor_socket(server: Daphne, url: str, forwarded_for: str) -> tuple[object, str]:
    """A visitor socket; what its first frame was: "hello", or the close code."""
    ws = await websockets.connect(
        url,
        origin=server.base_url,
        additional_headers={"X-Forwarded-For": forwarded_for},
        open_timeout=10,
    )
    try:
        return ws, json.loads(await asyncio.wait_for(ws.recv(), 10))["type"]
    except websockets.ConnectionClosed as closed:
        return ws, str(closed.rcvd.code if closed.rcvd else None)


@pytest.mark.parametrize(
    ("server", "forged", "answers"),
    [
        # No trusted proxy: the header is ignored; all three are the peer's, the third is over.
        (
            (Daphne, {"WS_MAX_CONNECTIONS_PER_ADDRESS": "2"}),
            ["198.51.100.1", "198.51.100.2", "198.51.100.3"],
            ["hello", "hello", "4429"],
        ),
        # Behind a trusted proxy: each client has its own count.
        (
            (Daphne, {"WS_MAX_CONNECTIONS_PER_ADDRESS": "2", "TRUSTED_PROXIES": "127.0.0.1"}),
            ["203.0.113.1", "203.0.113.2", "203.0.113.1", "203.0.113.1"],
            ["hello", "hello", "hello", "4429"],
        ),
    ],
    indirect=["server"],
    ids=["no-trusted-proxy", "behind-a-trusted-proxy"],
)
async def test_the_websocket_cap_counts_the_settled_address(l1_setup, server, forged, answers):
    """Issue 13: rotating a forged X-Forwarded-For bypassed the per-address websocket cap."""
    url = await new_visitor_socket_url(server)
    sockets, got = [], []
    for address in forged:
        ws, first = await open_visitor_socket(server, url, address)
        sockets.append(ws)
        got.append(first)
    assert got == answers
    for ws in sockets:
        await ws.close()


async def hold_table_until(table: str, until: Any) -> None:
    """Lock `table` against every read on a connection of its own, wait until a server's query
    is held by that lock, then keep it until `until` (an awaitable) is done."""
    db = connection.settings_dict
    async with await psycopg.AsyncConnection.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"] or None, port=db["PORT"] or None
    ) as lock:
        await lock.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        async with await psycopg.AsyncConnection.connect(
            dbname=db["NAME"],
            user=db["USER"],
            host=db["HOST"] or None,
            port=db["PORT"] or None,
            autocommit=True,
        ) as watch:
            while True:  # the server's connect is now waiting for the lock
                cursor = await watch.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND query LIKE %s",
                    (f"%{table}%",),
                )
                row = await cursor.fetchone()
                if row and row[0]:
                    break
                await asyncio.sleep(0.05)
        await until
        await lock.rollback()


@pytest.mark.parametrize(
    ("server", "outcome"),
    [((Serve, {}), "hello"), ((Serve, {"WS_HANDSHAKE_TIMEOUT_SECONDS": "2"}), "dropped")],
    indirect=["server"],
    ids=["default", "timeout-2s"],
)
async def test_serve_gives_a_slow_connect_its_handshake_timeout(l1_setup, server, outcome):
    """A socket's connect can wait seconds for the database on a busy server (a reconnect storm
    after a restart: the connects take their turn on one database thread). daphne's own default
    drops the handshake after 5 s; `manage.py serve` gives it WS_HANDSHAKE_TIMEOUT_SECONDS (30 by
    default). Here the visitor's connect is held by a lock on the chat table: for 7 s, which
    the default outlasts, or (with the timeout at 2 s) until daphne drops it."""
    url = await new_visitor_socket_url(server)

    async def first_frame() -> str:
        async with websockets.connect(url, origin=server.base_url, open_timeout=60) as ws:
            return str(json.loads(await asyncio.wait_for(ws.recv(), 60))["type"])

    visitor = asyncio.ensure_future(first_frame())
    if outcome == "hello":
        await hold_table_until(ChatSession._meta.db_table, asyncio.sleep(7))
        assert await asyncio.wait_for(visitor, 60) == "hello"
    else:
        await hold_table_until(ChatSession._meta.db_table, asyncio.wait({visitor}, timeout=60))
        with pytest.raises((websockets.InvalidHandshake, EOFError, OSError)):
            visitor.result()
