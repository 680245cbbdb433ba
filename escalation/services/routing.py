"""Routing: starting chats, queues, taking and assigning, presence, ending.

Every state change locks the chat row first (`lock_route`), then the agent row, and publishes its
realtime events after commit. Dispatching (automatic assignment) locks with SKIP LOCKED, so it
never waits on a row another transaction holds and two dispatchers cannot deadlock.
"""

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from chat import services as chat_services
from chat.events import (
    agent_group,
    chat_agents_group,
    chat_visitor_group,
    send_event_on_commit,
    stage_queue_group,
)
from chat.exceptions import ChatClosed
from chat.models import ChatSession, FlowEvent, Message
from escalation import selectors
from escalation.estimates import WaitRange
from escalation.exceptions import (
    AgentNotOnline,
    AlreadyTaken,
    AtCapacity,
    NotInYourQueues,
    NotYourChat,
    UnknownTopic,
)
from escalation.models import (
    OFFER_POLICIES,
    Agent,
    AgentGroup,
    Assignment,
    ChatRoute,
    Escalation,
    QueueEntry,
    RoutingPolicy,
    Stage,
    Topic,
    WaitEstimate,
)
from escalation.services import timers

AUTOMATIC_POLICIES = (RoutingPolicy.ROUND_ROBIN, RoutingPolicy.LEAST_BUSY)
ROUTED_POLICIES = (*AUTOMATIC_POLICIES, *OFFER_POLICIES)
QUEUE_PUBLISH_DELAY_SECONDS = 1.0


def lock_route(*, chat_id: int) -> tuple[ChatSession, ChatRoute]:
    """Lock the chat, then its route. Call inside a transaction."""
    chat = chat_services.lock_chat(chat_id=chat_id)
    route = (
        ChatRoute.objects.select_for_update(of=("self",))
        .select_related("stage", "tier", "agent", "entry")
        .get(chat=chat)
    )
    return chat, route


# --- Starting and queueing --------------------------------------------------------------------


@transaction.atomic
def start_chat(
    *,
    visitor_name: str,
    visitor_email: str,
    topic_name: str,
    first_message: str,
    visitor_context: dict[str, Any],
) -> ChatSession:
    topic = (
        Topic.objects.select_related("pipeline__entry_stage")
        .filter(name=topic_name, pipeline__is_active=True, pipeline__entry_stage__isnull=False)
        .first()
    )
    if topic is None or topic.pipeline.entry_stage is None:
        raise UnknownTopic()
    stage = topic.pipeline.entry_stage
    first_message = chat_services.clean_text(first_message)
    chat = chat_services.create_chat(
        visitor_name=visitor_name,
        visitor_email=visitor_email,
        topic=topic.name,
        visitor_context=visitor_context,
    )
    route = ChatRoute.objects.create(
        chat=chat, pipeline=topic.pipeline, stage=stage, tier=stage.tier
    )
    chat_services.append_message(
        chat=chat, kind=Message.Kind.VISITOR, text=first_message, author_name=visitor_name
    )
    entry = enqueue(chat=chat, route=route, stage=stage, reason=QueueEntry.Reason.START)
    notify_visitor(
        chat=chat,
        event="queued",
        stage=stage,
        team=selectors.team_name(entry),
        tier=stage.tier.name,
        position=str(selectors.queue_position(entry=entry)),
        wait=_wait_text(entry),
    )
    from escalation.services.transfer import fall_back_if_nobody_serves

    if not fall_back_if_nobody_serves(chat=chat, route=route, entry=entry):
        dispatch(stage_ids=[stage.pk])
    return chat


def notify_visitor(*, chat: ChatSession, event: str, stage: Stage | None, **values: str) -> Message:
    """Store a system notice from `event`'s template (the stage's override first) and publish it
    after commit. `{visitor}` is always filled in. Caller holds the chat row lock."""
    text = selectors.render_template(
        event=event, stage=stage, **{"visitor": chat.visitor_name, **values}
    )
    return chat_services.append_notice(chat=chat, event=event, text=text)


def require_holder(*, chat: ChatSession, route: ChatRoute, agent: Agent) -> None:
    """The chat is open and `agent` holds it. Caller holds the chat row lock."""
    if not chat.is_open:
        raise ChatClosed()
    if route.agent_id != agent.pk or chat.status != ChatSession.Status.ACTIVE:
        raise NotYourChat()


def _wait_text(entry: QueueEntry) -> str:
    _, estimate = shown_estimate(entry=entry, now=timezone.now())
    return estimate.as_text() if estimate else "wait not known yet"


def shown_estimate(*, entry: QueueEntry, now: datetime) -> tuple[int, WaitRange | None]:
    """The entry's place in line and wait estimate, stored as shown to the visitor (the
    predicted-vs-actual report compares it with the real wait)."""
    position = selectors.queue_position(entry=entry)
    estimate = selectors.wait_estimate(entry=entry, position=position, now=now)
    _record_estimate(entry=entry, position=position, estimate=estimate, now=now)
    return position, estimate


def enqueue(
    *,
    chat: ChatSession,
    route: ChatRoute,
    stage: Stage,
    reason: str,
    group: AgentGroup | None = None,
    agents: list[Agent] | None = None,
    priority: int = 0,
    waiting_since: datetime | None = None,
) -> QueueEntry:
    """Put the chat in `stage`'s queue with a deadline. Caller holds the chat row lock."""
    now = timezone.now()
    # A chat in a drop stage has lost its visitor: nobody to tell that we are still searching.
    notices = stage.still_searching_seconds > 0 and reason != QueueEntry.Reason.DROPPED
    entry = QueueEntry.objects.create(
        chat=chat,
        stage=stage,
        tier=group.tier if group is not None else stage.tier,
        group=group,
        reason=reason,
        priority=priority,
        waiting_since=waiting_since or now,
        entered_at=now,
        deadline=now + timedelta(seconds=stage.wait_timeout_seconds),
        next_notice_at=now + timedelta(seconds=stage.still_searching_seconds) if notices else None,
    )
    if agents:
        entry.agents.set(agents)
    route.stage, route.tier, route.entry, route.agent = stage, entry.tier, entry, None
    route.save(update_fields=["stage", "tier", "entry", "agent"])
    if chat.status != ChatSession.Status.QUEUED:
        chat_services.change_status(chat=chat, to=ChatSession.Status.QUEUED)
    arm_wait_timer(entry)
    arm_notice_timer(entry)
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.QUEUED,
        data={
            "stage": stage.name,
            "stage_id": stage.pk,
            "tier": entry.tier.level,
            "team": selectors.team_name(entry),
            "reason": reason,
            "deadline": entry.deadline.isoformat() if entry.deadline else None,
        },
    )
    queue_changed(stage_id=stage.pk)
    return entry


def arm_wait_timer(entry: QueueEntry) -> None:
    """After commit, schedule the wait-timeout task for the entry's deadline (see timers)."""
    from escalation.tasks import wait_timeout

    timers.arm(wait_timeout, entry.pk, deadline=entry.deadline)


def arm_notice_timer(entry: QueueEntry) -> None:
    """After commit, schedule the entry's next still-searching notice; the task carries the time
    it is for, so that only the task of the current schedule sends it."""
    if entry.next_notice_at is None:
        return
    from escalation.tasks import still_searching

    timers.arm(
        still_searching, entry.pk, entry.next_notice_at.isoformat(), deadline=entry.next_notice_at
    )


def leave_queue(*, entry: QueueEntry, outcome: str) -> None:
    """Close a waiting entry. Caller holds the chat row lock."""
    from escalation.services import offers

    entry.left_at = timezone.now()
    entry.outcome = outcome
    entry.next_notice_at = None
    entry.save(update_fields=["left_at", "outcome", "next_notice_at"])
    offers.withdraw_entry_offers(
        entry=entry, reason="taken" if outcome == QueueEntry.Outcome.TAKEN else "left"
    )
    escalation_outcome = {
        QueueEntry.Outcome.TAKEN: Escalation.Outcome.TAKEN,
        QueueEntry.Outcome.TIMED_OUT: Escalation.Outcome.TIMED_OUT,
        QueueEntry.Outcome.ABANDONED: Escalation.Outcome.ABANDONED,
        QueueEntry.Outcome.ENDED: Escalation.Outcome.ENDED,
    }.get(QueueEntry.Outcome(outcome))
    if escalation_outcome is not None:
        Escalation.objects.filter(entry=entry, outcome=Escalation.Outcome.WAITING).update(
            outcome=escalation_outcome
        )
    queue_changed(stage_id=entry.stage_id)


def queue_changed(*, stage_id: int) -> None:
    """After commit, tell the stage's agents at once (their consoles fetch fresh lists), and
    publish the waiting visitors' places at most about once a second per stage: the first change
    arms a delayed publish, later ones ride on it."""
    send_event_on_commit(stage_queue_group(stage_id), {"type": "queue.changed", "stage": stage_id})

    def arm() -> None:
        from escalation.tasks import publish_queue

        if cache.add(f"queue-publish:{stage_id}", 1, timeout=5):
            publish_queue.apply_async((stage_id,), countdown=QUEUE_PUBLISH_DELAY_SECONDS)

    transaction.on_commit(arm, robust=True)


def publish_queue_now(*, stage_id: int) -> int:
    """Tell every visitor waiting at `stage_id` its position and estimate, and the stage's agents
    that the queue changed. Returns how many visitors were told."""
    cache.delete(f"queue-publish:{stage_id}")
    now = timezone.now()
    told = 0
    entries = list(selectors.waiting_entries(stage_id=stage_id).select_related("stage"))
    for position, entry in enumerate(entries, start=1):
        estimate = selectors.wait_estimate(entry=entry, position=position, now=now)
        _record_estimate(entry=entry, position=position, estimate=estimate, now=now)
        send_event_on_commit(
            chat_visitor_group(entry.chat_id),
            selectors.queue_position_payload(entry=entry, position=position, estimate=estimate),
        )
        told += 1
    send_event_on_commit(stage_queue_group(stage_id), {"type": "queue.changed", "stage": stage_id})
    return told


def visitor_hello(*, chat: ChatSession) -> dict[str, Any]:
    """The snapshot a visitor's page gets on (re)connecting. The wait estimate in it is shown to
    the visitor, so it is stored like every other estimate shown (predicted vs actual wait)."""
    state = selectors.visitor_state(chat=chat)
    queue = state.get("queue")
    entry_id = ChatRoute.objects.filter(chat=chat).values_list("entry_id", flat=True).first()
    if queue and entry_id:
        estimate = queue.get("estimate") or {}
        WaitEstimate.objects.create(
            entry_id=entry_id,
            position=queue["position"],
            low_seconds=estimate.get("low_seconds"),
            high_seconds=estimate.get("high_seconds"),
            created_at=timezone.now(),
        )
    return state


def _record_estimate(
    *, entry: QueueEntry, position: int, estimate: WaitRange | None, now: datetime
) -> None:
    WaitEstimate.objects.create(
        entry=entry,
        position=position,
        low_seconds=estimate.low_seconds if estimate else None,
        high_seconds=estimate.high_seconds if estimate else None,
        created_at=now,
    )


# --- Taking and assigning ---------------------------------------------------------------------


@transaction.atomic
def take_chat(*, chat_id: int, agent: Agent) -> Assignment:
    """An agent picks a waiting chat. Exactly one of two agents taking at once wins."""
    chat, route = lock_route(chat_id=chat_id)
    if not chat.is_open:
        raise ChatClosed()
    entry = route.entry
    if chat.status != ChatSession.Status.QUEUED or entry is None:
        raise AlreadyTaken()
    if not selectors.can_serve(agent=agent, entry=entry):
        raise NotInYourQueues()
    locked_agent = Agent.objects.select_for_update().get(pk=agent.pk)
    if locked_agent.presence != Agent.Presence.ONLINE:
        raise AgentNotOnline()
    if selectors.agent_load(locked_agent) >= selectors.effective_capacity(locked_agent):
        raise AtCapacity()
    return assign(chat=chat, route=route, entry=entry, agent=locked_agent)


def assign(*, chat: ChatSession, route: ChatRoute, entry: QueueEntry, agent: Agent) -> Assignment:
    """Give the waiting chat to `agent`. Caller holds the chat and agent row locks and has
    checked presence and capacity."""
    now = timezone.now()
    leave_queue(entry=entry, outcome=QueueEntry.Outcome.TAKEN)
    Escalation.objects.filter(entry=entry, taken_at__isnull=True).update(
        taken_at=now, taken_by=agent
    )
    group = selectors.serving_group_for(agent=agent, entry=entry)
    assignment = Assignment.objects.create(
        chat=chat, agent=agent, tier=entry.tier, stage=entry.stage, group=group, started_at=now
    )
    route.agent, route.entry = agent, None
    route.save(update_fields=["agent", "entry"])
    agent.last_assigned_at = now
    agent.lapses_in_a_row = 0
    agent.save(update_fields=["last_assigned_at", "lapses_in_a_row"])
    chat_services.change_status(chat=chat, to=ChatSession.Status.ACTIVE)
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.ASSIGNED,
        actor=agent.user,
        data={
            "agent": agent.display_name,
            "agent_id": agent.pk,
            "tier": entry.tier.level,
            "stage": entry.stage.name,
            "group": group.name if group else None,
            "waited_seconds": int((now - entry.entered_at).total_seconds()),
        },
    )
    notify_visitor(
        chat=chat,
        event="agent_joined",
        stage=entry.stage,
        agent=agent.display_name,
        team=group.name if group else selectors.team_name(entry),
        tier=entry.tier.name,
    )
    send_event_on_commit(agent_group(agent.pk), {"type": "chat.assigned", "chat": chat.pk})
    if selectors.agent_load(agent) >= selectors.effective_capacity(agent):
        from escalation.services import offers

        offers.withdraw_agent_offers(agent=agent, reason="full", except_chat_id=chat.pk)
    return assignment


def routing_of(entry: QueueEntry) -> tuple[str | None, QuerySet[AgentGroup]]:
    """How the waiting chat is routed: the policy and the groups that route it that way.

    A chat narrowed to one group follows that group's policy (a manual group picks its chats
    itself); otherwise the first routed group of the stage (by name) sets the policy, and its
    groups of that kind route it (assigning policies mix: round robin with least busy)."""
    if entry.group_id is not None:
        groups = AgentGroup.objects.filter(pk=entry.group_id, routing_policy__in=ROUTED_POLICIES)
    else:
        groups = entry.stage.groups.filter(routing_policy__in=ROUTED_POLICIES).order_by("name")
    policy = groups.values_list("routing_policy", flat=True).first()
    if policy in OFFER_POLICIES:
        return policy, groups.filter(routing_policy=policy)
    return policy, groups.filter(routing_policy__in=AUTOMATIC_POLICIES)


def dispatch(*, stage_ids: list[int]) -> int:
    """Assign waiting chats of these stages to available agents where a serving group routes
    automatically (round robin: the agent assigned longest ago; least busy: the fewest open
    chats), or offer them where it offers (broadcast, round-robin hunt). Runs inside the
    caller's transaction; returns how many chats were assigned."""
    from escalation.services import offers

    assigned = 0
    for stage in Stage.objects.filter(pk__in=stage_ids):
        for entry in list(selectors.waiting_entries(stage_id=stage.pk).select_related("stage")):
            policy, groups = routing_of(entry)
            if policy in OFFER_POLICIES:
                offers.offer_entry(entry_id=entry.pk, groups=groups, policy=policy)
            elif policy is not None and _dispatch_entry(
                entry_id=entry.pk, groups=groups, policy=policy
            ):
                assigned += 1
    return assigned


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


# --- Messages, presence, ending ----------------------------------------------------------------


@transaction.atomic
def post_agent_message(
    *, chat_id: int, agent: Agent, text: str, internal: bool = False, client_id: str | None = None
) -> Message:
    chat, route = lock_route(chat_id=chat_id)
    if client_id:
        existing = Message.objects.filter(chat=chat, client_id=client_id).first()
        if existing is not None:
            return existing
    require_holder(chat=chat, route=route, agent=agent)
    kind = Message.Kind.INTERNAL if internal else Message.Kind.AGENT
    first_reply = (
        not internal
        and not chat.messages.filter(kind=Message.Kind.AGENT, author=agent.user).exists()
    )
    message, _ = chat_services.append_message(
        chat=chat,
        kind=kind,
        text=text,
        author=agent.user,
        author_name=agent.display_name,
        client_id=client_id,
    )
    if first_reply:
        chat_services.add_flow_event(
            chat=chat,
            kind=FlowEvent.Kind.FIRST_AGENT_MESSAGE,
            actor=agent.user,
            data={"agent": agent.display_name},
        )
    return message


@transaction.atomic
def mark_read(*, chat_id: int, agent: Agent, seq: int) -> None:
    last_seq = ChatSession.objects.filter(pk=chat_id).values_list("last_seq", flat=True).first()
    seq = min(seq, last_seq or 0)  # never past what exists (and within the column's range)
    Assignment.objects.filter(
        chat_id=chat_id, agent=agent, ended_at__isnull=True, last_read_seq__lt=seq
    ).update(last_read_seq=seq)


@transaction.atomic
def set_presence(*, agent: Agent, presence: str, by_integration: bool = False) -> Agent:
    """Going online makes the agent's automatic queues dispatch to it. Going away or offline keeps
    the chats it holds (it can finish them); it is only left out of new assignments.

    `by_integration` (the API): the presence is kept by a program, not by a console, so the sweep
    of closed consoles leaves it alone until the agent opens the console again."""
    if presence not in Agent.Presence.values:
        raise ValueError(f"Unknown presence {presence!r}")
    from escalation.services import offers

    locked = Agent.objects.select_for_update().get(pk=agent.pk)
    if by_integration and locked.console_seen_at is not None:
        locked.console_seen_at = None
        locked.save(update_fields=["console_seen_at"])
    if locked.presence != presence:
        locked.presence = presence
        locked.presence_changed_at = timezone.now()
        if presence == Agent.Presence.ONLINE:
            locked.lapses_in_a_row = 0  # back at the desk: a fresh count for auto-away
        locked.save(update_fields=["presence", "presence_changed_at", "lapses_in_a_row"])
    send_event_on_commit(agent_group(locked.pk), {"type": "presence", "presence": presence})
    if presence == Agent.Presence.ONLINE:
        dispatch(stage_ids=selectors.stages_to_dispatch_for(agent=locked))
    else:
        offers.withdraw_agent_offers(agent=locked, reason=presence)
    return locked


def mark_console_seen(*, agent_id: int) -> None:
    Agent.objects.filter(pk=agent_id).update(console_seen_at=timezone.now())


@transaction.atomic
def sign_out_if_console_gone(*, agent_id: int, seen_before: datetime) -> bool:
    """Set offline an agent whose console has not been seen since `seen_before` (every console
    tab closed, or the network gone), so that no chat is routed to someone who is not there. The
    chats it holds stay with it, as with any change to offline."""
    agent = Agent.objects.select_for_update().get(pk=agent_id)
    if agent.presence == Agent.Presence.OFFLINE:
        return False
    if agent.console_seen_at is None or agent.console_seen_at >= seen_before:
        return False
    set_presence(agent=agent, presence=Agent.Presence.OFFLINE)
    return True


def hand_back_chats_of_gone_agent(*, agent_id: int, seen_before: datetime) -> int:
    """Return to their queues (keeping their places) the chats an agent whose console has not
    been seen since `seen_before` still holds, so that their visitors are served by someone who is
    there. Each in its own transaction, after the agent is offline; it stops if the agent's
    console comes back meanwhile, and skips a chat that ended or moved."""
    agent = Agent.objects.get(pk=agent_id)
    returned = 0
    seen = Agent.objects.filter(pk=agent_id).values_list("console_seen_at", flat=True)
    for chat_id in selectors.open_assignment_chat_ids(agent=agent):
        last_seen = seen.first()
        if last_seen is None or last_seen >= seen_before:
            break  # back at the console (or never used one): the chats stay
        try:
            return_to_queue(chat_id=chat_id, agent=agent, why="the agent's console closed")
        except (ChatClosed, NotYourChat):
            continue
        returned += 1
    return returned


def end_assignment(
    *, route: ChatRoute, reason: str, extra: dict[str, Any] | None = None
) -> Assignment | None:
    assignment = Assignment.objects.filter(chat_id=route.chat_id, ended_at__isnull=True).first()
    if assignment is None:
        return None
    assignment.ended_at = timezone.now()
    assignment.end_reason = reason
    assignment.save(update_fields=["ended_at", "end_reason"])
    send_event_on_commit(
        agent_group(assignment.agent_id),
        {"type": "chat.removed", "chat": route.chat_id, "reason": reason, **(extra or {})},
    )
    return assignment


@transaction.atomic
def end_chat_by_agent(*, chat_id: int, agent: Agent) -> None:
    """The agent resolved the chat."""
    chat, route = lock_route(chat_id=chat_id)
    require_holder(chat=chat, route=route, agent=agent)
    end_assignment(route=route, reason=Assignment.EndReason.RESOLVED)
    close_chat(
        chat=chat,
        route=route,
        status=ChatSession.Status.ENDED,
        actor=agent.user,
        data={"by": "agent", "agent": agent.display_name, "resolution": "resolved"},
    )
    dispatch(stage_ids=selectors.stages_to_dispatch_for(agent=agent))


@transaction.atomic
def end_chat_by_visitor(*, chat_id: int) -> None:
    """The visitor closed the chat: a waiting chat goes to its stage's drop stage or is
    abandoned, an active one ends."""
    chat, route = lock_route(chat_id=chat_id)
    if not chat.is_open:
        return  # ending twice is not an error for the visitor: the chat is over either way
    _visitor_leaves(chat=chat, route=route, why="visitor ended the chat")


def _visitor_leaves(*, chat: ChatSession, route: ChatRoute, why: str) -> None:
    if chat.status == ChatSession.Status.QUEUED and route.entry is not None:
        if _drop(chat=chat, route=route, entry=route.entry, why=why):
            return
        leave_queue(entry=route.entry, outcome=QueueEntry.Outcome.ABANDONED)
        chat_services.add_flow_event(
            chat=chat, kind=FlowEvent.Kind.ABANDONED, data={"stage": route.stage.name, "why": why}
        )
        close_chat(
            chat=chat,
            route=route,
            status=ChatSession.Status.ABANDONED,
            actor=None,
            data={"by": "visitor", "why": why},
        )
        return
    assignment = end_assignment(route=route, reason=Assignment.EndReason.VISITOR_LEFT)
    close_chat(
        chat=chat,
        route=route,
        status=ChatSession.Status.ENDED,
        actor=None,
        data={"by": "visitor", "why": why},
    )
    if assignment is not None:
        dispatch(stage_ids=selectors.stages_to_dispatch_for(agent=assignment.agent))


def close_chat(
    *,
    chat: ChatSession,
    route: ChatRoute,
    status: str,
    actor: User | None,
    data: dict[str, Any],
    notice: str = "ended",
    notice_values: dict[str, str] | None = None,
) -> None:
    """End the chat with `status` and tell both sides. Caller holds the chat row lock."""
    agent_name = route.agent.display_name if route.agent else ""
    route.agent, route.entry = None, None
    route.save(update_fields=["agent", "entry"])
    chat_services.change_status(chat=chat, to=status)
    chat_services.add_flow_event(
        chat=chat, kind=FlowEvent.Kind.ENDED, actor=actor, data={**data, "status": status}
    )
    notify_visitor(
        chat=chat, event=notice, stage=route.stage, agent=agent_name, **(notice_values or {})
    )
    send_event_on_commit(
        chat_agents_group(chat.pk), {"type": "chat.status", "chat": chat.pk, "status": status}
    )
    send_event_on_commit(
        chat_visitor_group(chat.pk), {"type": "chat.status", "chat": chat.pk, "status": status}
    )


def _drop(*, chat: ChatSession, route: ChatRoute, entry: QueueEntry, why: str) -> bool:
    """The visitor left before an agent connected: move the chat to its stage's drop stage, if
    it has one. Only once: a chat already dropped that loses its visitor again ends abandoned.
    Returns whether it moved. Caller holds the chat row lock."""
    drop_stage = (
        Stage.objects.select_related("tier").filter(pk=entry.stage.drop_stage_id).first()
        if entry.stage.drop_stage_id is not None
        else None
    )
    if drop_stage is None or entry.reason == QueueEntry.Reason.DROPPED:
        return False
    from escalation.services.transfer import fall_back_if_nobody_serves

    leave_queue(entry=entry, outcome=QueueEntry.Outcome.ABANDONED)
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.DROPPED,
        data={
            "from_stage": entry.stage.name,
            "from_stage_id": entry.stage_id,
            "to_stage": drop_stage.name,
            "to_stage_id": drop_stage.pk,
            "why": why,
            "waited_seconds": int((timezone.now() - entry.entered_at).total_seconds()),
        },
    )
    dropped = enqueue(chat=chat, route=route, stage=drop_stage, reason=QueueEntry.Reason.DROPPED)
    notify_visitor(
        chat=chat,
        event="dropped",
        stage=drop_stage,
        team=selectors.team_name(dropped),
        tier=dropped.tier.name,
    )
    if not fall_back_if_nobody_serves(chat=chat, route=route, entry=dropped):
        dispatch(stage_ids=[drop_stage.pk])
    return True


@transaction.atomic
def abandon_if_visitor_gone(*, chat_id: int, seen_before: datetime) -> bool:
    """Abandon (or drop) a waiting chat whose visitor has not been seen since `seen_before`."""
    chat, route = lock_route(chat_id=chat_id)
    if chat.status != ChatSession.Status.QUEUED:
        return False
    if route.entry is not None and route.entry.reason == QueueEntry.Reason.DROPPED:
        return False  # already dropped: it waits for a follow-up, not for its visitor
    if chat.visitor_seen_at is not None and chat.visitor_seen_at >= seen_before:
        return False
    _visitor_leaves(chat=chat, route=route, why="visitor left the page")
    return True


@transaction.atomic
def return_to_queue(*, chat_id: int, agent: Agent, why: str = "") -> QueueEntry:
    """The holding agent gives the chat back to its stage's queue, keeping its place (`why`, for
    the flow, when it was not the agent's own choice)."""
    chat, route = lock_route(chat_id=chat_id)
    require_holder(chat=chat, route=route, agent=agent)
    last = QueueEntry.objects.filter(chat=chat).order_by("-entered_at", "-pk").first()
    end_assignment(route=route, reason=Assignment.EndReason.RETURNED)
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.RETURNED,
        actor=agent.user,
        data={
            "agent": agent.display_name,
            "stage": route.stage.name,
            **({"why": why} if why else {}),
        },
    )
    notify_visitor(
        chat=chat,
        event="agent_left",
        stage=route.stage,
        agent=agent.display_name,
        team=route.stage.name,
        tier=route.tier.name,
    )
    entry = enqueue(
        chat=chat,
        route=route,
        stage=route.stage,
        reason=QueueEntry.Reason.RETURNED,
        group=last.group if last else None,  # an escalation to a group stays with that group
        agents=list(last.agents.all()) if last else None,
        priority=last.priority if last else 0,
        waiting_since=chat.created_at,
    )
    dispatch(stage_ids=[route.stage.pk])
    return entry
