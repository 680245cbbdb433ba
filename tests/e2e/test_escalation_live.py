"""Journeys 3 to 5 against real daphne, a real Celery worker with beat, PostgreSQL and Redis."""

import pytest
from asgiref.sync import sync_to_async

from chat.models import FlowEvent
from escalation import services
from escalation.models import Agent, Escalation, Stage
from tests.e2e.live import CeleryWorker
from tests.e2e.test_live_chat import console_peer, open_chat, texts


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SWEEP_SECONDS = "0.5"


@pytest.fixture
def worker_with_beat(_flushed_test_redis, _django_db_helper, django_db_blocker):
    with django_db_blocker.unblock():
        worker = CeleryWorker(beat=True, TIMER_SWEEP_SECONDS=SWEEP_SECONDS)
        worker.start()
    yield worker
    worker.stop()


def agent(username: str) -> Agent:
    return Agent.objects.select_related("user").get(user__username=username)


@sync_to_async
def go_online(*usernames: str) -> None:
    for name in usernames:
        services.set_presence(agent=agent(name), presence="online")


async def test_escalate_command_end_to_end(demo, daphne_process, worker_with_beat):
    await go_online("alex", "sam")
    chat, visitor, alex = await open_chat(daphne_process, await sync_to_async(agent)("alex"))
    sam = await console_peer(daphne_process, await sync_to_async(agent)("sam"))
    await visitor.connect(visitor.url_for())
    await visitor.until(lambda f: f["type"] == "replay.done")
    await alex.connect()
    hello = await alex.frame()
    assert [c["chat"] for c in hello["chats"]] == [chat.pk]  # round robin gave it to Alex
    await sam.connect()
    await sam.frame()

    await alex.send(
        type="message",
        chat=chat.pk,
        client_id="e1",
        text="/escalate billing Disputed invoice, already checked the account",
    )
    removed = await alex.until(lambda f: f["type"] == "chat.removed")
    assert removed["handed_over_to"] == "L2 Billing (Level 2)"
    notice = await visitor.until(lambda f: f.get("event") == "transfer")
    assert notice["text"].startswith(
        "You are being transferred to the billing team. Estimated wait:"
    )
    position = await visitor.until(lambda f: f["type"] == "queue.position")
    assert position["position"] == 1
    added = await sam.until(lambda f: f["type"] == "queue.item.added")
    item = added["item"]
    assert item["tier_path"] == ["Level 1", "Level 2"]
    assert item["handover"]["note"] == "Disputed invoice, already checked the account"

    await sam.send(type="take", chat=chat.pk)
    await sam.until(lambda f: f["type"] == "taken")
    await sam.send(type="subscribe", chat=chat.pk, since=0)
    info = await sam.until(lambda f: f["type"] == "chat.info")
    assert info["handover"]["from_agent"] == "Alex"
    await sam.until(lambda f: f["type"] == "replay.done")
    assert texts(sam)[0] == "Hello?"  # the whole history came along
    joined = await visitor.until(lambda f: f.get("event") == "agent_joined")
    assert joined["text"] == "Sam from the billing team joined the chat."
    escalation = await sync_to_async(Escalation.objects.get)(chat=chat)
    assert escalation.outcome == "taken" and escalation.taken_at is not None
    for peer in (visitor, alex, sam):
        await peer.close()


@sync_to_async
def short_timeout(seconds: int) -> None:
    Stage.objects.filter(name="L1 General").update(wait_timeout_seconds=seconds)


@sync_to_async
def timeout_events(chat) -> list[dict]:
    return list(
        FlowEvent.objects.filter(chat=chat, kind="timed_out").values_list("data", flat=True)
    )


async def test_a_timeout_fires_once_within_a_second_of_its_deadline(
    demo, daphne_process, worker_with_beat
):
    await short_timeout(2)
    chat, visitor, _ = await open_chat(daphne_process, await sync_to_async(agent)("alex"))
    await visitor.connect(visitor.url_for())
    offline = await visitor.until(lambda f: f.get("event") == "offline", timeout=10)
    assert offline["text"].startswith("Sorry, nobody is available right now.")
    [event] = await timeout_events(chat)
    print(f"timeout fired {event['late_ms']} ms after its deadline")
    assert 0 <= event["late_ms"] < 1000, event
    await visitor.close()


# The killed-worker test lives in test_faults.py, on a Redis of its own.
