"""An escalation commits the hand-over, and so tells the visitor and the target's consoles, before
it dispatches: dispatching (the target stage, the stages the agent serves) is a transaction of its
own afterwards, which still runs within the same call."""

from typing import Any

import pytest
from django.db import connections, transaction

from chat import events
from escalation import frames, services
from escalation.models import Agent, ChatRoute, Escalation
from escalation.services import transfer
from tests.escalation.test_transfer import agent, start

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_the_hand_over_is_told_before_dispatching_which_still_follows(demo, monkeypatch):
    alex = agent("alex")
    Agent.objects.filter(pk=alex.pk).update(capacity=1)
    services.set_presence(agent=alex, presence=Agent.Presence.ONLINE)
    held = start().pk
    waiting = start().pk  # Alex is full: this one waits at L1, where Alex serves (round robin)
    assert ChatRoute.objects.get(chat_id=waiting).agent_id is None

    seen: list[Any] = []
    items: list[dict[str, Any]] = []
    real_publish, real_dispatch = events._publish, transfer.dispatch

    def publish(pairs: list[tuple[str, dict[str, Any]]]) -> None:
        seen.extend(("publish", payload.get("event") or payload["type"]) for _, payload in pairs)
        items.extend(p["item"] for _, p in pairs if p["type"] == "queue.item.added")
        real_publish(pairs)

    def dispatch(*, stage_ids: list[int]) -> int:
        # The hand-over is committed: another connection sees its escalation row.
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM escalation_escalation WHERE chat_id = %s", [held]
                )
                committed = cursor.fetchone()[0]
        finally:
            other.close()
        seen.append(("dispatch", committed, transaction.get_connection().in_atomic_block))
        return real_dispatch(stage_ids=stage_ids)

    monkeypatch.setattr(events, "_publish", publish)
    monkeypatch.setattr(transfer, "dispatch", dispatch)
    services.escalate_chat(chat_id=held, agent=alex, keyword="billing", note="over to you")

    assert ("dispatch", 1, True) in seen  # its own transaction, after the hand-over's commit
    at = seen.index(("dispatch", 1, True))
    assert ("publish", "transfer") in seen[:at]  # the visitor was told first
    assert ("publish", "queue.item.added") in seen[:at]  # and the L2 Billing consoles
    # ... and the dispatch did run: Alex's freed place went to the chat waiting at L1.
    assert ChatRoute.objects.get(chat_id=waiting).agent_id == alex.pk
    assert Escalation.objects.filter(chat_id=held).count() == 1
    # The new queue item carries the hand-over as the consoles read it back later.
    (item,) = [i for i in items if i["chat"] == held]
    assert item["handover"] == frames.latest_handover(chat_id=held)
    assert item["handover"]["note"] == "over to you"
    assert item["handover"]["from_agent"] == "Alex"
