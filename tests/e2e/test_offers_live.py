"""Offers and the other exits of a stage, against real daphne, a real Celery worker with beat,
PostgreSQL and Redis, on the demo configuration (Orders: broadcast to Alex and Blair, drop stage
"Order follow-up"; Returns: round-robin hunt)."""

import datetime as dt
import itertools
from typing import Any
from urllib.parse import quote

import pytest
from asgiref.sync import sync_to_async

from chat.models import ChatSession, FlowEvent
from chat.selectors import make_visitor_token
from escalation import services
from escalation.models import Agent, ChatRoute, Offer, Stage
from tests.e2e.live import CeleryWorker, Daphne
from tests.e2e.test_live_chat import Peer, console_peer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SWEEP_SECONDS = "0.5"
ORDERS, RETURNS = "Where is my order?", "Return an item"


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


# One server and one worker with beat for the whole module: starting them is most of the cost.
# Per test, and after the test database fixture: the processes stop before the database is
# flushed at teardown (beat's sweeps running during the flush's TRUNCATE deadlocked it).
@pytest.fixture
def server(_flushed_test_redis, _django_db_helper, django_db_blocker):
    with django_db_blocker.unblock():
        daphne = Daphne()
        daphne.start()
    yield daphne
    daphne.stop()


@pytest.fixture
def worker(_flushed_test_redis, _django_db_helper, django_db_blocker):
    with django_db_blocker.unblock():
        celery = CeleryWorker(beat=True, name="offers", TIMER_SWEEP_SECONDS=SWEEP_SECONDS)
        celery.start()
    yield celery
    celery.stop()


def agent(username: str) -> Agent:
    return Agent.objects.select_related("user").get(user__username=username)


@sync_to_async
def go_online(*usernames: str) -> None:
    for name in usernames:
        services.set_presence(agent=agent(name), presence="online")


@sync_to_async
def configure(stage: str, **fields: Any) -> None:
    Stage.objects.filter(name=stage).update(**fields)


@sync_to_async
def start(topic: str) -> tuple[ChatSession, str]:
    chat = services.start_chat(
        visitor_name="Carol",
        visitor_email="",
        topic_name=topic,
        first_message="Hello?",
        visitor_context={},
    )
    return chat, make_visitor_token(chat)


def visitor_peer(server: Daphne, chat: ChatSession, token: str) -> Peer:
    peer = Peer("", server.base_url)
    peer.url_for = lambda: (  # type: ignore[attr-defined]
        f"{server.ws_url}/ws/chat/{chat.pk}/?token={quote(token)}&since={peer.last_seq}"
    )
    return peer


async def consoles(server: Daphne, *usernames: str) -> list[Peer]:
    peers = []
    for name in usernames:
        peer = await console_peer(server, await sync_to_async(agent)(name))
        await peer.connect()
        hello = await peer.frame()
        assert hello["type"] == "hello"
        peers.append(peer)
    return peers


def parse(at: str) -> dt.datetime:
    return dt.datetime.fromisoformat(at)


async def test_hunt_offer_lapses_to_the_next_agent_within_a_second(server, worker, demo):
    await configure("Returns", accept_timeout_seconds=2)
    await go_online("alex", "blair")
    alex, blair = await consoles(server, "alex", "blair")
    chat, _ = await start(RETURNS)
    # Round robin among agents never offered a chat: Alex (created first) is offered it first.
    first = await alex.until(lambda f: f["type"] == "offer")
    assert (first["chat"], first["policy"], first["team"]) == (chat.pk, "hunt", "Returns")
    assert first["accept_seconds"] <= 2
    # Alex does not answer: at the deadline the worker lapses it and Blair is offered it.
    closed = await alex.until(lambda f: f["type"] == "offer.closed", timeout=10)
    assert (closed["offer"], closed["status"]) == (first["offer"], "lapsed")
    second = await blair.until(lambda f: f["type"] == "offer", timeout=10)
    assert second["chat"] == chat.pk
    moved_after = parse(second["offered_at"]) - parse(first["deadline"])
    ms = moved_after.total_seconds() * 1000
    print(f"offer moved to the next agent {ms:.0f} ms after the deadline")
    assert dt.timedelta(0) <= moved_after < dt.timedelta(seconds=1)
    await blair.send(type="offer.accept", offer=second["offer"])
    taken = await blair.until(lambda f: f["type"] == "taken")
    assert (taken["chat"], taken["offer"]) == (chat.pk, second["offer"])
    route = await sync_to_async(ChatRoute.objects.select_related("agent").get)(chat=chat)
    assert route.agent.display_name == "Blair"
    kinds = await sync_to_async(list)(
        FlowEvent.objects.filter(chat=chat, kind__in=["offered", "lapsed", "accepted"])
        .order_by("pk")
        .values_list("kind", "data__agent")
    )
    assert kinds == [
        ("offered", "Alex"),
        ("lapsed", "Alex"),
        ("offered", "Blair"),
        ("accepted", "Blair"),
    ]
    for peer in (alex, blair):
        await peer.close()


async def test_broadcast_losers_consoles_drop_the_offer_at_once(server, worker, demo):
    await go_online("alex", "blair")
    alex, blair = await consoles(server, "alex", "blair")
    chat, token = await start(ORDERS)
    visitor = visitor_peer(server, chat, token)
    await visitor.connect(visitor.url_for())
    offers = [await peer.until(lambda f: f["type"] == "offer") for peer in (alex, blair)]
    assert {o["chat"] for o in offers} == {chat.pk}
    assert {o["policy"] for o in offers} == {"broadcast"}
    await alex.send(type="offer.accept", offer=offers[0]["offer"])
    await alex.until(lambda f: f["type"] == "taken")
    gone = await blair.until(lambda f: f["type"] == "offer.closed")
    assert (gone["offer"], gone["reason"]) == (offers[1]["offer"], "taken")
    await blair.send(type="offer.accept", offer=offers[1]["offer"], ref="late")
    error = await blair.until(lambda f: f["type"] == "error")
    assert (error["code"], error["ref"]) == ("already_taken", "late")
    joined = await visitor.until(lambda f: f.get("event") == "agent_joined")
    assert joined["text"] == "Alex from the orders team joined the chat."
    for peer in (alex, blair, visitor):
        await peer.close()


async def test_still_searching_notices_arrive_at_their_interval_and_replay(server, worker, demo):
    await configure("Orders", still_searching_seconds=1)
    chat, token = await start(ORDERS)  # Alex and Blair are offline: it waits
    visitor = visitor_peer(server, chat, token)
    await visitor.connect(visitor.url_for())
    notices = [
        await visitor.until(lambda f: f.get("event") == "still_searching", timeout=10)
        for _ in range(3)
    ]
    assert notices[0]["text"] == (
        "Still looking for an agent: you are number 1 in line, wait not known yet."
    )
    stamps = [parse(n["at"]) for n in notices]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    print(f"still-searching notices {gaps} s apart (interval 1 s)")
    assert all(0.5 <= gap < 2.0 for gap in gaps), gaps
    # The visitor drops; an agent watching the chat sees two more notices being stored.
    await visitor.close()
    seen = visitor.last_seq
    [alex] = await consoles(server, "alex")
    await alex.send(type="subscribe", chat=chat.pk, since=0)
    await alex.until(lambda f: f["type"] == "replay.done")
    for _ in range(2):
        await alex.until(lambda f: f.get("event") == "still_searching", timeout=10)
    await visitor.connect(visitor.url_for())
    await visitor.until(lambda f: f["type"] == "replay.done")
    missed = [m for m in visitor.messages if m["seq"] > seen]
    assert len(missed) >= 2 and all(m["event"] == "still_searching" for m in missed)
    assert [m["seq"] for m in visitor.messages] == list(range(1, visitor.last_seq + 1))
    for peer in (alex, visitor):
        await peer.close()


async def test_a_visitor_who_leaves_while_queued_lands_in_the_drop_stage(server, worker, demo):
    [alex] = await consoles(server, "alex")  # offline, in L1 Orders and L1 Follow-up
    chat, token = await start(ORDERS)
    visitor = visitor_peer(server, chat, token)
    await visitor.connect(visitor.url_for())
    await visitor.until(lambda f: f["type"] == "replay.done")
    await visitor.send(type="end")
    dropped = await visitor.until(lambda f: f.get("event") == "dropped")
    assert (
        dropped["text"] == "You left the queue. Someone from the orders team will get back to you."
    )
    added = await alex.until(
        lambda f: f["type"] == "queue.item.added" and f["item"]["stage"] == "Order follow-up"
    )
    item = added["item"]
    assert item["chat"] == chat.pk
    assert item["reason"] == "dropped"
    route = await sync_to_async(ChatRoute.objects.select_related("stage", "entry").get)(chat=chat)
    assert (route.stage.name, route.entry.reason) == ("Order follow-up", "dropped")
    event = await sync_to_async(FlowEvent.objects.get)(chat=chat, kind="dropped")
    assert (event.data["from_stage"], event.data["to_stage"]) == ("Orders", "Order follow-up")
    assert await sync_to_async(Offer.objects.filter(chat=chat).count)() == 0
    for peer in (alex, visitor):
        await peer.close()
