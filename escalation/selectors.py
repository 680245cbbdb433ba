"""Reads of escalation configuration and state."""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db.models import (
    Count,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    Window,
)
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from chat.models import ChatSession, FlowEvent, Message
from escalation.estimates import WaitRange, estimate_wait
from escalation.messages import DEFAULT_TEXTS, render_text
from escalation.models import (
    Agent,
    AgentGroup,
    Assignment,
    ChatRoute,
    Escalation,
    EscalationReason,
    FallbackAction,
    MessageTemplate,
    Offer,
    OfflineMessage,
    QueueEntry,
    Stage,
)


def fallback_loop(
    *, stage: Stage, fallback_action: str, fallback_stage: Stage | None
) -> list[Stage]:
    """The stages of the loop that `stage` would close with this fallback, or [] if none.

    Only stage-to-stage fallbacks chain by configuration; "back to the previous tier" depends on
    the chat's history and is bounded at run time by MAX_FALLBACK_HOPS.
    """
    if fallback_action != FallbackAction.STAGE or fallback_stage is None:
        return []
    if fallback_stage.pk == stage.pk:
        return []  # Stage.clean says "cannot fall back to itself"
    path = [stage]
    seen = {stage.pk}
    current: Stage | None = fallback_stage
    while current is not None:
        if current.pk == stage.pk:
            return [*path, stage]
        if current.pk in seen:  # an older loop further down the chain
            return []
        path.append(current)
        seen.add(current.pk)
        current = (
            current.fallback_stage if current.fallback_action == FallbackAction.STAGE else None
        )
    return []


def get_agent_for_user(user: User | AnonymousUser) -> Agent:
    """The agent profile of a console user; PermissionDenied for anyone who is not an agent."""
    if (
        not user.is_authenticated
        or not user.is_active
        or not user.has_perm("escalation.use_console")
    ):
        raise PermissionDenied("Only agents can use the console.")
    try:
        return Agent.objects.get(user=user)
    except Agent.DoesNotExist:
        raise PermissionDenied("This account has no agent profile.") from None


def effective_capacity(agent: Agent) -> int:
    if agent.capacity:
        return agent.capacity
    group_default = agent.groups.aggregate(m=Max("default_capacity"))["m"]
    return int(group_default or 1)


def agent_load(agent: Agent) -> int:
    return Assignment.objects.filter(agent=agent, ended_at__isnull=True).count()


def open_entry_q() -> Q:
    return Q(left_at__isnull=True)


def stages_served_by(agent: Agent) -> QuerySet[Stage]:
    return Stage.objects.filter(groups__agents=agent).distinct()


def can_serve(*, agent: Agent, entry: QueueEntry) -> bool:
    """Whether `agent` may take the chat waiting in `entry` (membership, not presence or load)."""
    if entry.agents.exists():
        return entry.agents.filter(pk=agent.pk).exists()
    if entry.group_id is not None:
        return agent.groups.filter(pk=entry.group_id).exists()
    return agent.groups.filter(stages=entry.stage_id).exists()


def serving_group_for(*, agent: Agent, entry: QueueEntry) -> AgentGroup | None:
    groups = agent.groups.all()
    if entry.group_id is not None:
        return groups.filter(pk=entry.group_id).first()
    return groups.filter(stages=entry.stage_id).order_by("name").first()


def available_agents() -> QuerySet[Agent]:
    """Online, active agents under capacity, annotated with `load` and `free`."""
    load = (
        Assignment.objects.filter(agent=OuterRef("pk"), ended_at__isnull=True)
        .order_by()
        .values("agent")
        .annotate(n=Count("pk"))
        .values("n")
    )
    group_capacity = (
        AgentGroup.objects.filter(agents=OuterRef("pk"))
        .order_by("-default_capacity")
        .values("default_capacity")[:1]
    )
    return (
        Agent.objects.filter(presence=Agent.Presence.ONLINE, user__is_active=True)
        .annotate(
            load=Coalesce(Subquery(load, output_field=IntegerField()), Value(0)),
            cap=Coalesce("capacity", Subquery(group_capacity), Value(1)),
        )
        .annotate(free=F("cap") - F("load"))
        .filter(free__gt=0)
    )


def candidates_for(*, entry: QueueEntry, groups: QuerySet[AgentGroup]) -> QuerySet[Agent]:
    """Available agents who may take `entry`, restricted to `groups` (the automatic ones)."""
    agents = available_agents()
    narrowed = list(entry.agents.values_list("pk", flat=True))
    if narrowed:
        return agents.filter(pk__in=narrowed)
    if entry.group_id is not None:
        return agents.filter(groups=entry.group_id).distinct()
    return agents.filter(groups__in=groups).distinct()


# A stage's queue order: priority first, then the longest waiting (queue_position counts by it).
QUEUE_ORDER = ("-priority", "waiting_since", "pk")


def waiting_entries(*, stage_id: int) -> QuerySet[QueueEntry]:
    """The open entries of a stage in queue order: priority first, then the longest waiting."""
    return (
        QueueEntry.objects.filter(stage_id=stage_id, left_at__isnull=True)
        .select_related("chat", "tier", "group")
        .order_by(*QUEUE_ORDER)
    )


def queue_position(*, entry: QueueEntry) -> int:
    ahead = QueueEntry.objects.filter(stage_id=entry.stage_id, left_at__isnull=True).filter(
        Q(priority__gt=entry.priority)
        | Q(priority=entry.priority, waiting_since__lt=entry.waiting_since)
        | Q(priority=entry.priority, waiting_since=entry.waiting_since, pk__lt=entry.pk)
    )
    return ahead.count() + 1


def recent_take_times(*, stage_id: int, now: datetime, window_seconds: int) -> list[datetime]:
    since = now - timedelta(seconds=window_seconds)
    taken = QueueEntry.objects.filter(
        stage_id=stage_id, outcome=QueueEntry.Outcome.TAKEN, left_at__gte=since
    ).values_list("left_at", flat=True)
    return [at for at in taken if at is not None]


def wait_estimate(*, entry: QueueEntry, position: int, now: datetime) -> WaitRange | None:
    window = settings.WAIT_ESTIMATE_WINDOW_SECONDS
    return estimate_wait(
        position=position,
        take_times=recent_take_times(stage_id=entry.stage_id, now=now, window_seconds=window),
        now=now,
        window_seconds=window,
    )


def template_text(*, event: str, stage: Stage | None) -> str:
    """The text for `event`: the stage's override, else its pipeline's, else the default."""
    rows = MessageTemplate.objects.filter(event=event)
    scope = Q(pipeline__isnull=True, stage__isnull=True)
    if stage is not None:
        scope |= Q(stage=stage) | Q(pipeline=stage.pipeline_id, stage__isnull=True)
    best: tuple[int, str] | None = None
    for row in rows.filter(scope):
        rank = 0 if row.stage_id else 1 if row.pipeline_id else 2
        if best is None or rank < best[0]:
            best = (rank, row.text)
    return best[1] if best else DEFAULT_TEXTS[event]


def render_template(*, event: str, stage: Stage | None, **values: str) -> str:
    return render_text(template_text(event=event, stage=stage), values)


def team_name(entry: QueueEntry) -> str:
    if entry.group_id is not None and entry.group is not None:
        return entry.group.name
    return entry.stage.name


def tier_path(*, chat_id: int) -> list[str]:
    """The tiers a chat has waited at, in order, without repeats in a row (e.g. L1 → L2)."""
    return tier_paths(chat_ids=[chat_id])[chat_id]


def tier_paths(*, chat_ids: list[int]) -> dict[int, list[str]]:
    """`tier_path` of many chats in one query."""
    paths: dict[int, list[str]] = {chat_id: [] for chat_id in chat_ids}
    rows = (
        QueueEntry.objects.filter(chat_id__in=chat_ids)
        .order_by("chat_id", "entered_at", "pk")
        .values_list("chat_id", "tier__name")
    )
    for chat_id, name in rows:
        path = paths[chat_id]
        if not path or path[-1] != name:
            path.append(name)
    return paths


def queue_positions(*, entries: list[QueueEntry]) -> dict[int, int]:
    """`queue_position` of many open entries (entry id -> place) in one query: each entry's
    row number in its stage's queue order."""
    stage_ids = {entry.stage_id for entry in entries}
    if not stage_ids:
        return {}
    wanted = {entry.pk for entry in entries}
    ranked = (
        QueueEntry.objects.filter(stage_id__in=stage_ids, left_at__isnull=True)
        .annotate(
            place=Window(
                RowNumber(),
                partition_by=[F("stage_id")],
                order_by=QUEUE_ORDER,
            )
        )
        .values_list("pk", "place")
    )
    return {pk: place for pk, place in ranked if pk in wanted}


def queue_for_agent(*, agent: Agent, now: datetime) -> list[dict[str, Any]]:
    """The waiting chats an agent may see: its groups' stages, and chats narrowed to it."""
    entries = (
        QueueEntry.objects.filter(left_at__isnull=True)
        .filter(
            Q(agents=agent)
            | Q(group__in=agent.groups.all())
            | Q(group__isnull=True, stage__groups__agents=agent) & ~Q(agents__isnull=False)
        )
        .select_related("chat", "stage", "tier", "group")
        .distinct()
        .order_by(*QUEUE_ORDER)
    )
    entries_list = list(entries)
    chat_ids = [entry.chat_id for entry in entries_list]
    paths = tier_paths(chat_ids=chat_ids)
    positions = queue_positions(entries=entries_list)
    moved = [e.chat_id for e in entries_list if e.reason != QueueEntry.Reason.START]
    handovers = latest_handovers(chat_ids=moved)
    return [
        {
            "chat": entry.chat_id,
            "visitor": entry.chat.visitor_name,
            "topic": entry.chat.topic,
            "stage": entry.stage.name,
            "stage_id": entry.stage_id,
            "tier": entry.tier.name,
            "team": team_name(entry),
            "waiting_since": entry.waiting_since.isoformat(),
            "waited_seconds": int((now - entry.waiting_since).total_seconds()),
            "tier_path": paths[entry.chat_id],
            # An entry that left between the two reads is placed on its own.
            "position": positions.get(entry.pk) or queue_position(entry=entry),
            "reason": entry.reason,
            "handover": handovers.get(entry.chat_id),
        }
        for entry in entries_list
    ]


def open_chats_for_agent(*, agent: Agent) -> list[dict[str, Any]]:
    unread = (
        Message.objects.filter(
            chat_id=OuterRef("chat_id"), kind="visitor", seq__gt=OuterRef("last_read_seq")
        )
        .order_by()
        .values("chat_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    assignments = list(
        Assignment.objects.filter(agent=agent, ended_at__isnull=True)
        .select_related("chat", "tier", "stage")
        .annotate(unread=Coalesce(Subquery(unread, output_field=IntegerField()), Value(0)))
        .order_by("started_at")
    )
    paths = tier_paths(chat_ids=[a.chat_id for a in assignments])
    return [
        {
            "chat": a.chat_id,
            "visitor": a.chat.visitor_name,
            "email": a.chat.visitor_email,
            "topic": a.chat.topic,
            "stage": a.stage.name,
            "tier": a.tier.name,
            "since": a.started_at.isoformat(),
            "unread": a.unread,
            "last_seq": a.chat.last_seq,
            "context": a.chat.visitor_context,
            "tier_path": paths[a.chat_id],
        }
        for a in assignments
    ]


def agent_history(*, agent: Agent) -> QuerySet[Assignment]:
    """Every chat the agent held that is over for them, newest first."""
    return (
        Assignment.objects.filter(agent=agent, ended_at__isnull=False)
        .select_related("chat", "tier", "stage")
        .order_by("-ended_at", "-pk")
    )


def agent_may_view_chat(*, agent: Agent, chat_id: int) -> bool:
    """Agents see chats they hold or held, and chats waiting in their queues."""
    if Assignment.objects.filter(agent=agent, chat_id=chat_id).exists():
        return True
    entry = QueueEntry.objects.filter(chat_id=chat_id, left_at__isnull=True).first()
    return entry is not None and can_serve(agent=agent, entry=entry)


def queue_position_payload(
    *, entry: QueueEntry, position: int, estimate: WaitRange | None
) -> dict[str, Any]:
    values = {
        "visitor": entry.chat.visitor_name,
        "team": team_name(entry),
        "tier": entry.tier.name,
        "position": str(position),
    }
    if estimate is None:
        text = render_template(event="position_no_estimate", stage=entry.stage, **values)
    else:
        # After a transfer the visitor is told the new team's wait ("new_wait").
        event = "position" if entry.reason == QueueEntry.Reason.START else "new_wait"
        text = render_template(event=event, stage=entry.stage, wait=estimate.as_text(), **values)
    return {
        "type": "queue.position",
        "chat": entry.chat_id,
        "position": position,
        "estimate": (
            {"low_seconds": estimate.low_seconds, "high_seconds": estimate.high_seconds}
            if estimate
            else None
        ),
        "text": text,
    }


def visitor_state(*, chat: ChatSession) -> dict[str, Any]:
    """What the visitor's page shows on (re)connecting, besides the transcript."""
    state: dict[str, Any] = {
        "type": "hello",
        "chat": chat.pk,
        "status": chat.status,
        "visitor": chat.visitor_name,
        "topic": chat.topic,
        "last_seq": chat.last_public_seq,
        "queue": None,
        "agent": None,
    }
    route = (
        ChatRoute.objects.select_related("agent", "entry__stage", "entry__tier")
        .filter(chat=chat)
        .first()
    )
    if route is None:
        return state
    if route.agent is not None:
        state["agent"] = route.agent.display_name
    if chat.status == ChatSession.Status.QUEUED and route.entry is not None:
        entry = route.entry
        position = queue_position(entry=entry)
        estimate = wait_estimate(entry=entry, position=position, now=timezone.now())
        state["queue"] = queue_position_payload(entry=entry, position=position, estimate=estimate)
    return state


def console_state(*, agent: Agent) -> dict[str, Any]:
    now = timezone.now()
    return {
        "type": "hello",
        "agent": {"id": agent.pk, "name": agent.display_name, "presence": agent.presence},
        "queue": queue_for_agent(agent=agent, now=now),
        "chats": open_chats_for_agent(agent=agent),
        "offers": pending_offers_for(agent=agent, now=now),
    }


def offer_payload(
    *,
    offer: Offer,
    now: datetime,
    path: list[str] | None = None,
    handovers: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An offer as the agent's console shows it: who, about what, where it has been, the
    hand-over note, how long it has waited, and until when it may be accepted. `path` and
    `handovers` (chat id -> hand-over) may be passed in when they were read for many offers."""
    entry = offer.entry
    chat = offer.chat
    handover = None
    if entry.reason != QueueEntry.Reason.START:
        handover = (
            handovers.get(chat.pk) if handovers is not None else latest_handover(chat_id=chat.pk)
        )
    if path is None:
        path = tier_path(chat_id=chat.pk)
    return {
        "type": "offer",
        "offer": offer.pk,
        "chat": chat.pk,
        "policy": offer.policy,
        "visitor": chat.visitor_name,
        "topic": chat.topic,
        "stage": entry.stage.name,
        "tier": entry.tier.name,
        "team": team_name(entry),
        "tier_path": path,
        "note": handover["note"] if handover else "",
        "handover": handover,
        "waiting_since": entry.waiting_since.isoformat(),
        "waited_seconds": int((now - entry.waiting_since).total_seconds()),
        "offered_at": offer.offered_at.isoformat(),
        "deadline": offer.deadline.isoformat() if offer.deadline else None,
        "accept_seconds": (
            max(0, round((offer.deadline - now).total_seconds(), 1)) if offer.deadline else None
        ),
    }


def pending_offers_for(*, agent: Agent, now: datetime) -> list[dict[str, Any]]:
    offers = (
        Offer.objects.filter(agent=agent, status=Offer.Status.PENDING)
        .select_related("chat", "entry__stage", "entry__tier", "entry__group")
        .order_by("offered_at", "pk")
    )
    offers_list = list(offers)
    paths = tier_paths(chat_ids=[offer.chat_id for offer in offers_list])
    handovers = latest_handovers(
        chat_ids=[o.chat_id for o in offers_list if o.entry.reason != QueueEntry.Reason.START]
    )
    return [
        offer_payload(
            offer=offer,
            now=now,
            path=paths[offer.chat_id],
            handovers=handovers,
        )
        for offer in offers_list
    ]


def chat_info(*, chat_id: int) -> dict[str, Any]:
    """The header of a chat in the console: visitor details, where it has been, its state."""
    chat = ChatSession.objects.get(pk=chat_id)
    route = ChatRoute.objects.select_related("agent", "stage").filter(chat=chat).first()
    return {
        "type": "chat.info",
        "chat": chat.pk,
        "status": chat.status,
        "visitor": chat.visitor_name,
        "email": chat.visitor_email,
        "topic": chat.topic,
        "context": chat.visitor_context,
        "created_at": chat.created_at.isoformat(),
        "stage": route.stage.name if route else None,
        "agent": route.agent.display_name if route and route.agent else None,
        "agent_id": route.agent_id if route else None,
        "tier_path": tier_path(chat_id=chat.pk),
        "last_seq": chat.last_seq,
        "handover": latest_handover(chat_id=chat.pk),
        "flow": flow_summary(chat_id=chat.pk),
    }


def open_assignment_chat_ids(*, agent: Agent) -> list[int]:
    return list(
        Assignment.objects.filter(agent=agent, ended_at__isnull=True).values_list(
            "chat_id", flat=True
        )
    )


def served_stage_ids(*, agent: Agent) -> list[int]:
    return list(stages_served_by(agent).values_list("pk", flat=True))


def latest_handover(*, chat_id: int) -> dict[str, Any] | None:
    """The hand-over the receiving agent reads first: the last escalation of the chat."""
    return latest_handovers(chat_ids=[chat_id]).get(chat_id)


def latest_handovers(*, chat_ids: list[int]) -> dict[int, dict[str, Any]]:
    """`latest_handover` of many chats in one query (chats never moved are left out)."""
    if not chat_ids:
        return {}
    moves = (
        Escalation.objects.filter(chat_id__in=chat_ids)
        .select_related("from_agent", "from_stage", "from_tier", "to_tier")
        .order_by("chat_id", "-requested_at", "-pk")
    )
    chosen: dict[int, Escalation] = {}
    for move in moves:  # newest first within each chat
        held = chosen.get(move.chat_id)
        # The last agent's hand-over carries the note worth reading; fallback moves have none:
        # the newest move by an agent, else the newest move.
        if held is None or (held.from_agent_id is None and move.from_agent_id is not None):
            chosen[move.chat_id] = move
    return {chat_id: _handover_payload(escalation) for chat_id, escalation in chosen.items()}


def _handover_payload(escalation: Escalation) -> dict[str, Any]:
    return {
        "from_agent": escalation.from_agent.display_name if escalation.from_agent else None,
        "from_stage": escalation.from_stage.name,
        "from_tier": escalation.from_tier.name,
        "to": escalation.target_label,
        "to_tier": escalation.to_tier.name,
        "reason": escalation.reason,
        "note": escalation.note,
        "requested_by": escalation.get_requested_by_display(),
        "at": escalation.requested_at.isoformat(),
    }


FLOW_TEXT = {
    "created": "Chat started ({topic})",
    "queued": "Waiting at {stage}",
    "assigned": "{agent} took it at {stage}",
    "first_agent_message": "{agent} replied first",
    "escalated": "{from_agent} escalated to {to}",
    "agent_left": "{agent} left ({why})",
    "timed_out": "Timed out at {stage}",
    "fell_back": "Fallback: {action}",
    "left_message": "Visitor left a message",
    "abandoned": "Visitor left while waiting",
    "dropped": "Visitor left at {from_stage}: moved to {to_stage}",
    "offered": "Offered to {agent} ({policy})",
    "accepted": "{agent} accepted the offer",
    "declined": "{agent} declined the offer",
    "lapsed": "Offer to {agent} lapsed",
    "ended": "Ended ({status})",
}


def flow_summary(*, chat_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The chat's timeline in short sentences, for the console's compact view."""
    events = FlowEvent.objects.filter(chat_id=chat_id).order_by("pk")[:limit]
    rows = []
    for event in events:
        data = {k: v for k, v in event.data.items() if v is not None}
        if event.kind == "fell_back":
            data.setdefault("action", f"moved to {data.get('to', '?')}")
        template = FLOW_TEXT.get(event.kind, event.kind)
        try:
            text = template.format_map(_Blank(data))
        except (KeyError, ValueError):
            text = event.get_kind_display()
        rows.append({"kind": event.kind, "at": event.at.isoformat(), "text": text})
    return rows


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def escalation_options_for(*, agent: Agent, chat_id: int) -> dict[str, Any]:
    """What the Escalate dialog lists for a chat the agent holds."""
    from escalation.exceptions import NotYourChat
    from escalation.services.transfer import escalation_choices

    route = ChatRoute.objects.select_related("stage").filter(chat_id=chat_id, agent=agent).first()
    if route is None:
        raise NotYourChat()
    reasons = list(EscalationReason.objects.filter(is_active=True).values_list("label", flat=True))
    return {"chat": chat_id, "options": escalation_choices(stage=route.stage), "reasons": reasons}


def left_messages() -> QuerySet[OfflineMessage]:
    return OfflineMessage.objects.select_related("chat", "chat__route__stage").order_by(
        "-created_at", "-pk"
    )


def stages_to_dispatch_for(*, agent: Agent) -> list[int]:
    """Stages where a change in this agent's load or presence may let a waiting chat be assigned:
    the stages its groups serve, and those where a chat waits narrowed to its groups or to it."""
    served = set(stages_served_by(agent).values_list("pk", flat=True))
    narrowed = QueueEntry.objects.filter(left_at__isnull=True).filter(
        Q(group__in=agent.groups.all()) | Q(agents=agent)
    )
    return sorted(served | set(narrowed.values_list("stage_id", flat=True)))
