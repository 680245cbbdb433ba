"""Dispatching: the system gives waiting chats to agents where a serving group routes
automatically (round robin, least busy), or offers them where it offers (broadcast, hunt).

Dispatching locks with SKIP LOCKED, so it never waits on a row another transaction holds and two
dispatchers cannot deadlock; a chat skipped that way is dispatched by whoever holds it.
"""

from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet

from chat.models import ChatSession
from escalation import selectors
from escalation.models import (
    OFFER_POLICIES,
    Agent,
    AgentGroup,
    ChatRoute,
    QueueEntry,
    RoutingPolicy,
    Stage,
)
from escalation.services import offering
from escalation.services.assignment import assign


def dispatch(*, stage_ids: list[int], again_after_commit: bool = True) -> int:
    """Assign waiting chats of these stages to available agents where a serving group routes
    automatically (round robin: the agent assigned longest ago; least busy: the fewest open
    chats), or offer them where it offers (broadcast, round-robin hunt). Runs inside the
    caller's transaction; returns how many chats were assigned.

    And once more after that transaction commits, in a transaction of its own: a chat that
    starts while an agent comes online is otherwise lost between the two. Each transaction sees
    only its own change (the chat's start sees the agent still offline, the agent's change sees
    no chat yet), so neither assigns; whichever commits last, its second look sees both."""
    if again_after_commit and stage_ids and transaction.get_connection().in_atomic_block:
        stages = list(stage_ids)
        transaction.on_commit(lambda: _dispatch_again(stages), robust=True)
    assigned = 0
    for stage in Stage.objects.filter(pk__in=stage_ids):
        for entry in list(selectors.waiting_entries(stage_id=stage.pk).select_related("stage")):
            policy, groups = selectors.routing_of(entry)
            if policy in OFFER_POLICIES:
                offering.offer_entry(entry_id=entry.pk, groups=groups, policy=policy)
            elif policy is not None and _dispatch_entry(
                entry_id=entry.pk, groups=groups, policy=policy
            ):
                assigned += 1
    return assigned


def _dispatch_again(stage_ids: list[int]) -> None:
    with transaction.atomic():
        dispatch(stage_ids=stage_ids, again_after_commit=False)


def _dispatch_entry(*, entry_id: int, groups: QuerySet[AgentGroup], policy: str) -> bool:
    entry = QueueEntry.objects.filter(pk=entry_id, left_at__isnull=True).first()
    if entry is None:
        return False
    chat = ChatSession.objects.select_for_update(skip_locked=True).filter(pk=entry.chat_id).first()
    if chat is None:  # someone else is changing this chat right now; they will dispatch after
        return False
    route = ChatRoute.objects.select_for_update(of=("self",)).get(chat=chat)
    if route.entry_id != entry.pk or chat.status != ChatSession.Status.QUEUED:
        return False
    order = ["load", "last_assigned_at", "pk"]
    if policy == RoutingPolicy.ROUND_ROBIN:
        order = ["last_assigned_at", "load", "pk"]
    candidates = selectors.candidates_for(entry=entry, groups=groups)
    for candidate in candidates.order_by(*[_nulls_first(o) for o in order])[:5]:
        agent = Agent.objects.select_for_update(skip_locked=True).filter(pk=candidate.pk).first()
        if agent is None or agent.presence != Agent.Presence.ONLINE:
            continue
        if selectors.agent_load(agent) >= selectors.effective_capacity(agent):
            continue
        assign(chat=chat, route=route, entry=entry, agent=agent)
        return True
    return False


def _nulls_first(field: str) -> Any:
    return F(field).asc(nulls_first=True)
