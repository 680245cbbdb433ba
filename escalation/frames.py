"""The websocket frames and snapshots escalation sends: what a visitor's page and an agent's
console are told (queue items, offers, hand-overs, a chat's header and timeline, the hello
snapshots). Reads only: services publish these after commit, consumers send them on request.
"""

from datetime import datetime
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from chat.events import (
    ChatInfo,
    ConsoleHello,
    ConsultChanged,
    ConsultOptions,
    EscalationOptions,
    HandoverChanged,
    HandoverOffered,
    OfferMade,
    QueuePosition,
    VisitorHello,
)
from chat.models import ChatSession, FlowEvent, Message
from chat.selectors import visitor_details
from escalation import selectors
from escalation.estimates import WaitRange
from escalation.exceptions import NotYourChat
from escalation.models import (
    Agent,
    Assignment,
    ChatRoute,
    ColleagueHandover,
    Consult,
    Escalation,
    EscalationReason,
    Handover,
    HandoverOffer,
    Offer,
    QueueEntry,
    Stage,
    Tier,
)


def visible_entries_q(agent: Agent) -> Q:
    """The waiting entries an agent may see: its groups' stages, and chats narrowed to it or to
    one of its groups (consoles apply the same rule to queue deltas, see `may_see_item`)."""
    return (
        Q(agents=agent)
        | Q(group__in=agent.groups.all())
        | Q(group__isnull=True, stage__groups__agents=agent) & ~Q(agents__isnull=False)
    )


def may_see_item(
    item: dict[str, Any], *, agent_id: int, group_ids: set[int], stage_ids: set[int]
) -> bool:
    """`visible_entries_q` for one queue item, without the database."""
    if item["agent_ids"]:
        return agent_id in item["agent_ids"]
    if item["group_id"] is not None:
        return item["group_id"] in group_ids
    return item["stage_id"] in stage_ids


def queue_item(
    entry: QueueEntry,
    *,
    position: int,
    path: list[str],
    handover: dict[str, Any] | None,
    agent_ids: list[int],
    now: datetime,
) -> dict[str, Any]:
    """A waiting chat as consoles list it; `entry`, `priority` and `waiting_since` are its place
    in the stage's queue order (priority first, then the longest waiting, then the entry)."""
    return {
        "chat": entry.chat_id,
        "entry": entry.pk,
        "visitor": entry.chat.visitor_name,
        "topic": entry.chat.topic,
        "stage": entry.stage.name,
        "stage_id": entry.stage_id,
        "tier": entry.tier.name,
        "team": selectors.team_name(entry),
        "priority": entry.priority,
        "waiting_since": entry.waiting_since.isoformat(),
        "waited_seconds": int((now - entry.waiting_since).total_seconds()),
        "tier_path": path,
        "position": position,
        "reason": entry.reason,
        "handover": handover,
        "group_id": entry.group_id,
        "agent_ids": agent_ids,
    }


def queue_item_for(
    entry: QueueEntry,
    *,
    handover: dict[str, Any] | None = None,
    agent_ids: list[int] | None = None,
) -> dict[str, Any]:
    """One queue item, read for a queue delta (once per change, not per console). A caller that
    has just written the entry may pass its hand-over and the agents it is narrowed to."""
    if handover is None and entry.reason != QueueEntry.Reason.START:
        handover = latest_handover(chat_id=entry.chat_id)
    if agent_ids is None:
        agent_ids = list(entry.agents.values_list("pk", flat=True))
    return queue_item(
        entry,
        position=selectors.queue_position(entry=entry),
        path=selectors.tier_path(chat_id=entry.chat_id),
        handover=handover,
        agent_ids=agent_ids,
        now=timezone.now(),
    )


def queue_for_agent(*, agent: Agent, now: datetime) -> list[dict[str, Any]]:
    """The waiting chats an agent may see, in queue order."""
    entries = list(
        QueueEntry.objects.filter(left_at__isnull=True)
        .filter(visible_entries_q(agent))
        .select_related("chat", "stage", "tier", "group")
        .distinct()
        .order_by(*selectors.QUEUE_ORDER)
    )
    chat_ids = [entry.chat_id for entry in entries]
    paths = selectors.tier_paths(chat_ids=chat_ids)
    positions = selectors.queue_positions(entries=entries)
    moved = [e.chat_id for e in entries if e.reason != QueueEntry.Reason.START]
    handovers = latest_handovers(chat_ids=moved)
    narrowed: dict[int, list[int]] = {}
    for entry_id, agent_id in QueueEntry.agents.through.objects.filter(
        queueentry_id__in=[e.pk for e in entries]
    ).values_list("queueentry_id", "agent_id"):
        narrowed.setdefault(entry_id, []).append(agent_id)
    return [
        queue_item(
            entry,
            # An entry that left between the two reads is placed on its own.
            position=positions.get(entry.pk) or selectors.queue_position(entry=entry),
            path=paths[entry.chat_id],
            handover=handovers.get(entry.chat_id),
            agent_ids=narrowed.get(entry.pk, []),
            now=now,
        )
        for entry in entries
    ]


def open_chats_for_agent(*, agent: Agent) -> list[dict[str, Any]]:
    """The chats the agent holds (`role` holder), then those it joined to take over (`role`
    receiver): a console follows both, and lists both in My chats."""
    return _held_chats(agent=agent) + _joined_chats(agent=agent)


def _held_chats(*, agent: Agent) -> list[dict[str, Any]]:
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
    paths = selectors.tier_paths(chat_ids=[a.chat_id for a in assignments])
    return [
        _chat_row(a.chat, a.stage, a.tier, a.started_at, a.unread, paths[a.chat_id], role="holder")
        for a in assignments
    ]


def _chat_row(
    chat: ChatSession,
    stage: Stage,
    tier: Tier,
    since: datetime | None,
    unread: int,
    tier_path: list[str],
    *,
    role: str,
) -> dict[str, Any]:
    """A chat as My chats lists it."""
    return {
        "chat": chat.pk,
        "visitor": chat.visitor_name,
        "email": chat.visitor_email,
        "topic": chat.topic,
        "stage": stage.name,
        "tier": tier.name,
        "since": since.isoformat() if since else None,
        "unread": unread,
        "last_seq": chat.last_seq,
        "context": chat.visitor_context,
        "tier_path": tier_path,
        "role": role,
    }


def _joined_chats(*, agent: Agent) -> list[dict[str, Any]]:
    """The receiver reads the chat without a turn of its own, so nothing counts its unread
    messages: the first agent's turn does."""
    joined = list(
        Handover.objects.filter(receiver=agent, status=Handover.Status.JOINED)
        .select_related("chat__route__stage", "chat__route__tier")
        .order_by("joined_at")
    )
    paths = selectors.tier_paths(chat_ids=[h.chat_id for h in joined])
    return [
        _chat_row(
            h.chat,
            h.chat.route.stage,
            h.chat.route.tier,
            h.joined_at,
            0,
            paths[h.chat_id],
            role="receiver",
        )
        for h in joined
    ]


def queue_position_payload(
    *, entry: QueueEntry, position: int, estimate: WaitRange | None
) -> QueuePosition:
    values = {
        "visitor": entry.chat.visitor_name,
        "team": selectors.public_team(entry),
        "tier": entry.tier.public,
        "position": str(position),
    }
    if estimate is None:
        text = selectors.render_template(event="position_no_estimate", stage=entry.stage, **values)
    else:
        # After a transfer the visitor is told the new team's wait ("new_wait").
        event = "position" if entry.reason == QueueEntry.Reason.START else "new_wait"
        text = selectors.render_template(
            event=event, stage=entry.stage, wait=estimate.as_text(), **values
        )
    return QueuePosition(
        chat=entry.chat_id,
        position=position,
        estimate=(
            {"low_seconds": estimate.low_seconds, "high_seconds": estimate.high_seconds}
            if estimate
            else None
        ),
        text=text,
    )


def visitor_state(*, chat: ChatSession) -> VisitorHello:
    """What the visitor's page shows on (re)connecting, besides the transcript."""
    route = (
        ChatRoute.objects.select_related("agent", "entry__stage", "entry__tier")
        .filter(chat=chat)
        .first()
    )
    queue = None
    if route is not None and chat.status == ChatSession.Status.QUEUED and route.entry is not None:
        entry = route.entry
        position = selectors.queue_position(entry=entry)
        estimate = selectors.wait_estimate(entry=entry, position=position, now=timezone.now())
        queue = queue_position_payload(entry=entry, position=position, estimate=estimate).to_dict()
    return VisitorHello(
        chat=chat.pk,
        status=chat.status,
        visitor=chat.visitor_name,
        topic=chat.topic,
        last_seq=chat.last_public_seq,
        queue=queue,
        agent=route.agent.display_name if route is not None and route.agent else None,
    )


def console_state(*, agent: Agent) -> ConsoleHello:
    now = timezone.now()
    return ConsoleHello(
        agent={"id": agent.pk, "name": agent.display_name, "presence": agent.presence},
        queue=queue_for_agent(agent=agent, now=now),
        chats=open_chats_for_agent(agent=agent),
        offers=pending_offers_for(agent=agent, now=now),
        handovers=handovers_for(agent=agent, now=now),
    )


def offer_payload(
    *,
    offer: Offer,
    now: datetime,
    path: list[str] | None = None,
    handovers: dict[int, dict[str, Any]] | None = None,
) -> OfferMade:
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
        path = selectors.tier_path(chat_id=chat.pk)
    return OfferMade(
        offer=offer.pk,
        chat=chat.pk,
        policy=offer.policy,
        visitor=chat.visitor_name,
        topic=chat.topic,
        stage=entry.stage.name,
        tier=entry.tier.name,
        team=selectors.team_name(entry),
        tier_path=path,
        note=handover["note"] if handover else "",
        handover=handover,
        waiting_since=entry.waiting_since.isoformat(),
        waited_seconds=int((now - entry.waiting_since).total_seconds()),
        offered_at=offer.offered_at.isoformat(),
        deadline=offer.deadline.isoformat() if offer.deadline else None,
        accept_seconds=(
            max(0, round((offer.deadline - now).total_seconds(), 1)) if offer.deadline else None
        ),
    )


def pending_offers_for(*, agent: Agent, now: datetime) -> list[dict[str, Any]]:
    offers = (
        Offer.objects.filter(agent=agent, status=Offer.Status.PENDING)
        .select_related("chat", "entry__stage", "entry__tier", "entry__group")
        .order_by("offered_at", "pk")
    )
    offers_list = list(offers)
    paths = selectors.tier_paths(chat_ids=[offer.chat_id for offer in offers_list])
    handovers = latest_handovers(
        chat_ids=[o.chat_id for o in offers_list if o.entry.reason != QueueEntry.Reason.START]
    )
    return [
        offer_payload(
            offer=offer, now=now, path=paths[offer.chat_id], handovers=handovers
        ).to_dict()
        for offer in offers_list
    ]


def chat_info(*, chat_id: int, agent: Agent) -> ChatInfo:
    """The header of a chat in the console: visitor details, where it has been, its state, and
    whether `agent` holds it."""
    chat = ChatSession.objects.get(pk=chat_id)
    route = ChatRoute.objects.select_related("agent", "stage").filter(chat=chat).first()
    return ChatInfo(
        chat=chat.pk,
        status=chat.status,
        visitor=chat.visitor_name,
        email=chat.visitor_email,
        topic=chat.topic,
        context=chat.visitor_context,
        details=visitor_panel(chat=chat, agent=agent),
        created_at=chat.created_at.isoformat(),
        stage=route.stage.name if route else None,
        agent=route.agent.display_name if route and route.agent else None,
        agent_id=route.agent_id if route else None,
        tier_path=selectors.tier_path(chat_id=chat.pk),
        last_seq=chat.last_seq,
        handover=latest_handover(chat_id=chat.pk),
        flow=flow_summary(chat_id=chat.pk),
        held=route is not None and route.agent_id == agent.pk and chat.is_open,
        tags=[{"id": t.pk, "name": t.name} for t in selectors.chat_tags(chat_id=chat.pk)],
        tag_choices=[{"id": t.pk, "name": t.name} for t in selectors.tag_choices()],
        requires_tag=bool(route and route.stage.requires_tag_at_end),
        consult=consult_seen_by(agent=agent, chat_id=chat.pk),
        handover_state=handover_state_for(chat_id=chat.pk, agent=agent),
    )


def visitor_panel(*, chat: ChatSession, agent: Agent) -> dict[str, Any]:
    """The console's Visitor panel: what the visitor told and their browser sent, and their
    earlier chats (by e-mail) that `agent` may open, each with its report page."""
    previous = selectors.previous_chats_of_visitor(chat=chat, agent=agent)
    return {
        **visitor_details(chat),
        "previous": [
            {
                "chat": earlier.pk,
                "topic": earlier.topic,
                "status": earlier.get_status_display(),
                "created_at": earlier.created_at.isoformat(),
                "url": reverse("reporting:chat", args=[earlier.pk]),
            }
            for earlier in previous
        ],
    }


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
    return {chat_id: handover_payload(escalation) for chat_id, escalation in chosen.items()}


def handover_payload(escalation: Escalation) -> dict[str, Any]:
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
    "attachment": "File sent by {by} ({type}, {size})",
    "consulted": "{agent} consulted {to}",
    "consult_answered": "{agent} answered the consult",
    "consult_closed": "Consult with {to} over: {why}",
    "handover_requested": "{label} requested to {to}",
    "handover_joined": "{agent} joined",
    "handover_completed": "{agent} took over",
    "handover_failed": "{why}; stayed with {agent}",
}


def flow_summary(*, chat_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The chat's timeline in short sentences, for the console's compact view."""
    events = FlowEvent.objects.filter(chat_id=chat_id).order_by("pk")[:limit]
    return [
        {"kind": event.kind, "at": event.at.isoformat(), "text": flow_text(event)}
        for event in events
    ]


# The hand-over kinds, whose sentence the reports' Flow tab shows as the event's name.
HANDOVER_FLOW_KINDS = frozenset(
    {"handover_requested", "handover_joined", "handover_completed", "handover_failed"}
)


def flow_text(event: FlowEvent) -> str:
    """One flow event in a short sentence ("Sam took over")."""
    data = {k: v for k, v in event.data.items() if v is not None}
    if event.kind == "fell_back":
        data.setdefault("action", f"moved to {data.get('to', '?')}")
    template = FLOW_TEXT.get(event.kind, event.kind)
    try:
        return template.format_map(_Blank(data))
    except (KeyError, ValueError):
        return event.get_kind_display()


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def escalation_options_for(*, agent: Agent, chat_id: int) -> EscalationOptions:
    """What the Escalate dialog lists for a chat the agent holds."""
    route = ChatRoute.objects.select_related("stage").filter(chat_id=chat_id, agent=agent).first()
    if route is None:
        raise NotYourChat()
    reasons = list(EscalationReason.objects.filter(is_active=True).values_list("label", flat=True))
    options = selectors.escalation_choices(stage=route.stage)
    colleagues: list[dict[str, Any]] = []
    modes: list[str] = []
    if route.stage.allows_hand_to_colleague:
        modes = COLLEAGUE_MODES[ColleagueHandover(route.stage.colleague_handover)]
        tiers = {t.level: t.name for t in Tier.objects.all()}
        rows = selectors.colleagues_for(agent=agent, tier=route.tier)
        colleagues = [
            {
                "id": row["pk"],
                "name": row["display_name"],
                "tier": tiers.get(row["level"], ""),
                "load": row["chats"],
                "capacity": row["seats"],
            }
            for row in rows
        ]
    return EscalationOptions(
        chat=chat_id,
        options=options,
        reasons=reasons,
        colleagues=colleagues,
        colleague_modes=modes,
    )


# What a stage's colleague setting lets the agent choose, in the dialog's order.
COLLEAGUE_MODES = {
    ColleagueHandover.COLD: ["cold"],
    ColleagueHandover.WARM: ["warm"],
    ColleagueHandover.EITHER: ["warm", "cold"],
}


# --- Hand-overs the first agent stays in the chat for -------------------------------------------
def handover_changed(handover: Handover, *, text: str = "") -> HandoverChanged:
    """Where `handover` stands, as its first agent's and its receiver's consoles show it."""
    escalation = handover.escalation
    return HandoverChanged(
        handover=handover.pk,
        chat=handover.chat_id,
        status=handover.status,
        warm=handover.warm,
        from_agent=handover.from_agent.display_name,
        from_agent_id=handover.from_agent_id,
        receiver=handover.receiver.display_name if handover.receiver else "",
        receiver_id=handover.receiver_id,
        to=escalation.target_label,
        deadline=handover.deadline.isoformat(),
        text=text,
    )


def handover_offer_payload(offer: HandoverOffer, *, now: datetime) -> HandoverOffered:
    handover = offer.handover
    chat = handover.chat
    escalation = handover.escalation
    return HandoverOffered(
        handover=handover.pk,
        chat=chat.pk,
        warm=handover.warm,
        visitor=chat.visitor_name,
        topic=chat.topic,
        from_agent=handover.from_agent.display_name,
        to=escalation.target_label,
        tier_path=selectors.tier_path(chat_id=chat.pk),
        reason=escalation.reason,
        note=escalation.note,
        deadline=handover.deadline.isoformat(),
        accept_seconds=max(0.0, round((handover.deadline - now).total_seconds(), 1)),
    )


def handovers_for(*, agent: Agent, now: datetime) -> list[dict[str, Any]]:
    """What a console shows of hand-overs on (re)connecting: those offered to the agent and
    still open, then the open ones it asked for or joined."""
    offers = (
        HandoverOffer.objects.filter(
            agent=agent,
            status=HandoverOffer.Status.PENDING,
            handover__status=Handover.Status.PENDING,
        )
        .select_related("handover__chat", "handover__escalation", "handover__from_agent")
        .order_by("offered_at", "pk")
    )
    mine = (
        Handover.objects.filter(status__in=Handover.OPEN)
        .filter(Q(from_agent=agent) | Q(receiver=agent))
        .select_related("escalation", "from_agent", "receiver")
        .order_by("pk")
    )
    return [handover_offer_payload(o, now=now).to_dict() for o in offers] + [
        handover_changed(h).to_dict() for h in mine
    ]


def handover_state_for(*, chat_id: int, agent: Agent) -> dict[str, Any] | None:
    """The chat's open hand-over as `agent` sees it, with its `role`: holder (asked for it),
    receiver (joined it), offered (may accept it) or watcher."""
    handover = selectors.open_handover(chat_id=chat_id)
    if handover is None:
        return None
    if handover.from_agent_id == agent.pk:
        role = "holder"
    elif handover.receiver_id == agent.pk:
        role = "receiver"
    elif handover.offers.filter(agent=agent, status=HandoverOffer.Status.PENDING).exists():
        role = "offered"
    else:
        role = "watcher"
    return {**handover_changed(handover).to_dict(), "role": role}


# --- Consults -------------------------------------------------------------------------------------
def consult_event(consult: Consult) -> ConsultChanged:
    """A consult as the consoles of its participants show it (its related rows read with it)."""
    return ConsultChanged(
        consult=consult.pk,
        chat=consult.chat_id,
        status=consult.status,
        asked_by=consult.asked_by.display_name,
        asked_by_id=consult.asked_by_id,
        to=consult.target_label,
        agent_id=consult.agent_id,
        group_id=consult.group_id,
        answered_by=consult.answered_by.display_name if consult.answered_by else None,
        answered_by_id=consult.answered_by_id,
        question=consult.question,
        visitor=consult.chat.visitor_name,
        topic=consult.chat.topic,
        reason=consult.close_reason,
        closed_by=consult.closed_by.display_name if consult.closed_by else "",
        at=consult.created_at.isoformat(),
    )


def consult_seen_by(*, agent: Agent, chat_id: int) -> dict[str, Any] | None:
    """The chat's open consult as `chat.info` carries it for `agent` (who asked it, or is asked
    in it), with the agent's `role`; None if there is none for it."""
    consult = selectors.open_consult_seen_by(agent=agent, chat_id=chat_id)
    if consult is None:
        return None
    role = "asker" if consult.asked_by_id == agent.pk else "consultant"
    return {**consult_event(consult).to_dict(), "role": role}


def open_consults_for(*, agent: Agent) -> list[ConsultChanged]:
    """The open consults `agent` asked or is asked in (a console gets them on connect)."""
    return [consult_event(consult) for consult in selectors.open_consults_of(agent=agent)]


def consult_options_for(*, agent: Agent, chat_id: int) -> ConsultOptions:
    """What the Consult dialog lists for a chat the agent holds."""
    if not ChatRoute.objects.filter(chat_id=chat_id, agent=agent).exists():
        raise NotYourChat()
    colleagues = [
        {"id": a.pk, "name": a.display_name, "handle": a.user.username}
        for a in selectors.consultable_colleagues(agent=agent)
    ]
    groups = [
        {"id": g.pk, "name": g.name, "handle": selectors.handle_of(g.name), "online": online}
        for g, online in selectors.consultable_groups(agent=agent)
    ]
    return ConsultOptions(chat=chat_id, colleagues=colleagues, groups=groups)
