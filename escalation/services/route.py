"""The chat's route: its row locks, the holder check, visitor notices, ending an assignment and
closing the chat. The bottom of the escalation services: every other module builds on these.

Every state change locks the chat row first (`lock_route`), then the route, then agent rows, and
publishes its realtime events after commit.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone

from chat import services as chat_services
from chat.events import (
    ChatRemoved,
    ChatStatus,
    HandoverOfferClosed,
    agent_group,
    chat_agents_group,
    chat_visitor_group,
    send_event_on_commit,
)
from chat.exceptions import ChatClosed
from chat.models import ChatSession, FlowEvent, Message
from chat.realtime.reads import Read, table
from escalation import frames, selectors
from escalation.exceptions import NotYourChat
from escalation.models import (
    Agent,
    Assignment,
    ChatRoute,
    Escalation,
    Handover,
    HandoverOffer,
    Stage,
)
from escalation.services.consulting import close_consults_of_turn


def lock_route(*, chat_id: int) -> tuple[ChatSession, ChatRoute]:
    """Lock the chat, then its route. Call inside a transaction."""
    chat = chat_services.lock_chat(chat_id=chat_id)
    route = (
        ChatRoute.objects.select_for_update(of=("self",))
        .select_related("stage", "tier", "agent", "entry")
        .get(chat=chat)
    )
    return chat, route


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a chat, read under its route's lock: the agent, and whether that agent's turn
    has had its first reply (so that posting need not look again)."""

    agent_id: int | None
    replied: bool
    # The agent who joined to take the chat over (warm hand-over): it writes to the chat too.
    guest_id: int | None = None
    guest_user_id: int | None = None


_HOLDERS = (
    "SELECT r.chat_id, r.agent_id, "  # noqa: S608 - names from the models; values bound
    f"EXISTS (SELECT 1 FROM {table(Assignment)} a WHERE a.chat_id = r.chat_id "
    "AND a.ended_at IS NULL AND a.replied_at IS NOT NULL), "
    f"(SELECT h.receiver_id FROM {table(Handover)} h WHERE h.chat_id = r.chat_id "
    "AND h.status = %s LIMIT 1), "
    f"(SELECT g.user_id FROM {table(Handover)} h LEFT JOIN {table(Agent)} g "
    "ON h.receiver_id = g.id WHERE h.chat_id = r.chat_id AND h.status = %s LIMIT 1) "
    f"FROM {table(ChatRoute)} r WHERE r.chat_id = ANY(%s::bigint[]) ORDER BY r.chat_id "
    "FOR UPDATE OF r"
)


def lock_route_holders_read(chat_ids: Sequence[int]) -> Read[dict[int, Holder]]:
    """Lock the routes of these chats (the chats locked already), in chat order, as `lock_route`
    does: chat id -> who holds it."""
    ids = sorted(set(chat_ids))

    def query() -> QuerySet[Any, tuple[Any, ...]]:
        replied = Assignment.objects.filter(
            chat_id=OuterRef("chat_id"), ended_at__isnull=True, replied_at__isnull=False
        )
        joined = Handover.objects.filter(chat_id=OuterRef("chat_id"), status=Handover.Status.JOINED)
        return (
            ChatRoute.objects.select_for_update(of=("self",))
            .filter(chat_id__in=ids)
            .order_by("chat_id")
            .annotate(
                replied=Exists(replied),
                guest=Subquery(joined.values("receiver_id")[:1]),
                guest_user=Subquery(joined.values("receiver__user_id")[:1]),
            )
            .values_list("chat_id", "agent_id", "replied", "guest", "guest_user")
        )

    joined = str(Handover.Status.JOINED)
    return Read(
        query if ids else None,
        lambda rows: {row[0]: Holder(*row[1:]) for row in rows},
        _HOLDERS,
        [joined, joined, ids],
    )


def lock_route_holders(chat_ids: Sequence[int]) -> dict[int, Holder]:
    return lock_route_holders_read(chat_ids).run()


def require_writer(*, chat: ChatSession, holder: Holder | None, agent: Agent) -> None:
    """The chat is open and `agent` may write to it: it holds the chat, or joined it to take it
    over. Caller holds the chat row lock."""
    if holder is not None and holder.guest_id is not None and holder.guest_id == agent.pk:
        if not chat.is_open:
            raise ChatClosed()
        return
    require_holder(chat=chat, holder_id=holder.agent_id if holder else None, agent=agent)


def require_holder(*, chat: ChatSession, holder_id: int | None, agent: Agent) -> None:
    """The chat is open and `agent` holds it (`holder_id`: its route's agent). Caller holds the
    chat row lock."""
    if not chat.is_open:
        raise ChatClosed()
    if holder_id != agent.pk or chat.status != ChatSession.Status.ACTIVE:
        raise NotYourChat()


def notify_visitor(*, chat: ChatSession, event: str, stage: Stage | None, **values: str) -> Message:
    """Store a system notice from `event`'s template (the stage's override first) and publish it
    after commit. `{visitor}` is always filled in. Caller holds the chat row lock."""
    text = selectors.render_template(
        event=event, stage=stage, **{"visitor": chat.visitor_name, **values}
    )
    return chat_services.append_notice(chat=chat, event=event, text=text)


def tell_agent_left(*, chat: ChatSession, route: ChatRoute, name: str) -> Message:
    """The visitor's "{agent} left the chat" notice, in the words of the route's stage (read
    before a move changes the route). Caller holds the chat row lock."""
    return notify_visitor(
        chat=chat,
        event="agent_left",
        stage=route.stage,
        agent=name,
        team=route.stage.public,
        tier=route.tier.public,
    )


def notify_agents(*, chat: ChatSession, event: str, stage: Stage | None, **values: str) -> Message:
    """Store a notice from `event`'s template that only agents see (an internal message) and
    publish it after commit. Caller holds the chat row lock."""
    text = selectors.render_template(
        event=event, stage=stage, **{"visitor": chat.visitor_name, **values}
    )
    return chat_services.append_message(
        chat=chat, kind=Message.Kind.INTERNAL, text=text, event=event
    )


def end_assignment(*, route: ChatRoute, reason: str) -> Assignment | None:
    """End the chat's open assignment, if any. The caller tells the agent (`tell_removed`) once
    the chat's notices of the change are stored, so that the console shows them first."""
    assignment = Assignment.objects.filter(chat_id=route.chat_id, ended_at__isnull=True).first()
    if assignment is None:
        return None
    assignment.ended_at = timezone.now()
    assignment.end_reason = reason
    assignment.save(update_fields=["ended_at", "end_reason"])
    # A consult belongs to the holder's turn: the colleague stops reading when the turn ends.
    close_consults_of_turn(chat_id=route.chat_id, end_reason=reason)
    return assignment


def tell_removed(
    *, chat: ChatSession, assignment: Assignment | None, handed_over_to: str = ""
) -> None:
    """After commit, tell the agent of an ended assignment that it no longer holds the chat,
    numbered after the chat's last message so far (its consoles show everything up to it)."""
    if assignment is None:
        return
    event = ChatRemoved(
        chat=chat.pk,
        seq=chat.last_seq,
        reason=assignment.end_reason,
        handed_over_to=handed_over_to,
    )
    send_event_on_commit(agent_group(assignment.agent_id), event)


def _offer_after_agent(*, chat: ChatSession, stage: Stage, agent_name: str) -> Message | None:
    """What the stage offers the visitor when a chat an agent took ends there: the satisfaction
    survey or the "leave a message" form (a notice the page shows it with, and a flow event the
    offer is read from). The notice, or None when the stage offers nothing."""
    offer = stage.after_agent
    if offer == Stage.AfterAgent.NOTHING:
        return None
    chat_services.add_flow_event(chat=chat, kind=FlowEvent.Kind.AFTER_AGENT, data={"offer": offer})
    event = "survey" if offer == Stage.AfterAgent.SURVEY else "after_agent_message"
    return notify_visitor(chat=chat, event=event, stage=stage, agent=agent_name)


def close_chat(
    *,
    chat: ChatSession,
    route: ChatRoute,
    status: str,
    actor: User | None,
    data: dict[str, Any],
    by: str,
    notice: str = "ended",
    notice_values: dict[str, str] | None = None,
    after_agent: bool = False,
) -> Handover | None:
    """End the chat with `status` and tell both sides (`by`: agent, visitor, visitor_gone,
    timeout or fallback), each after the notice that ends their stream. With `after_agent` (a
    chat an agent took), what the chat's stage offers the visitor next comes before the status
    too: the page stops listening once it is told the chat is over. Caller holds the chat row
    lock. Returns the hand-over it closed, if one was open."""
    agent_name = route.agent.display_name if route.agent else ""
    route.agent, route.entry = None, None
    route.save(update_fields=["agent", "entry"])
    handover = close_open_handover(
        chat=chat,
        status=Handover.Status.ENDED,
        outcome=Escalation.Outcome.ENDED,
        reason="chat ended",
        text="The chat ended.",
    )
    chat_services.change_status(chat=chat, to=status)
    chat_services.add_flow_event(
        chat=chat, kind=FlowEvent.Kind.ENDED, actor=actor, data={**data, "status": status}
    )
    last = notify_visitor(
        chat=chat, event=notice, stage=route.stage, agent=agent_name, **(notice_values or {})
    )
    if after_agent:
        last = _offer_after_agent(chat=chat, stage=route.stage, agent_name=agent_name) or last
    send_event_on_commit(
        chat_agents_group(chat.pk), ChatStatus(chat=chat.pk, seq=last.seq, status=status, by=by)
    )
    send_event_on_commit(
        chat_visitor_group(chat.pk),
        ChatStatus(chat=chat.pk, seq=last.public_seq or 0, status=status, by=by),
    )
    return handover


def joined_receiver(handover: Handover | None) -> Agent | None:
    """The receiver of a closed hand-over who had joined the chat (and so took a place)."""
    if handover is None or handover.joined_at is None:
        return None
    return handover.receiver


# Where a hand-over's escalation ends up when the hand-over closes without a take-over.
def close_open_handover(
    *,
    chat: ChatSession,
    status: str,
    outcome: str,
    reason: str,
    text: str,
    receiver_text: str | None = None,
) -> Handover | None:
    """Close the chat's open hand-over (pending or joined) with `status`: its open offers are
    withdrawn, its escalation gets `outcome`, and the first agent and the receiver are told
    (`text`, in words; `receiver_text` for the receiver, when it is to read something else). A
    receiver who had joined loses the chat, after the notices so far, unless the chat is ending
    (its `chat.status` says so). Caller holds the chat row lock."""
    handover = (
        Handover.objects.select_related("escalation", "from_agent", "receiver")
        .filter(chat=chat, status__in=Handover.OPEN)
        .first()
    )
    if handover is None:
        return None
    now = timezone.now()
    was_joined = handover.status == Handover.Status.JOINED
    handover.status = status
    handover.closed_at = now
    handover.closed_reason = reason
    handover.save(update_fields=["status", "closed_at", "closed_reason"])
    withdraw_handover_offers(handover=handover, reason=reason, now=now)
    Escalation.objects.filter(pk=handover.escalation_id).update(outcome=outcome)
    handover.escalation.outcome = outcome
    tell_handover(handover, text=text, receiver_text=receiver_text)
    if was_joined and handover.receiver_id and status != Handover.Status.ENDED:
        send_event_on_commit(
            agent_group(handover.receiver_id),
            ChatRemoved(chat=chat.pk, seq=chat.last_seq, reason="handover_" + status),
        )
    return handover


def withdraw_handover_offers(*, handover: Handover, reason: str, now: datetime) -> None:
    """The hand-over's offers still open vanish from their consoles."""
    for offer in list(handover.offers.filter(status=HandoverOffer.Status.PENDING)):
        close_handover_offer(offer, status=HandoverOffer.Status.WITHDRAWN, reason=reason, now=now)


def close_handover_offer(offer: HandoverOffer, *, status: str, reason: str, now: datetime) -> None:
    offer.status = status
    offer.closed_at = now
    offer.save(update_fields=["status", "closed_at"])
    send_event_on_commit(
        agent_group(offer.agent_id),
        HandoverOfferClosed(
            handover=offer.handover_id,
            chat=offer.handover.chat_id,
            status=status,
            reason=reason,
        ),
    )


def tell_handover(handover: Handover, *, text: str = "", receiver_text: str | None = None) -> None:
    """After commit, where the hand-over stands, to its first agent and its receiver (in
    `receiver_text`'s words when given)."""
    event = frames.handover_changed(handover, text=text)
    send_event_on_commit(agent_group(handover.from_agent_id), event)
    if handover.receiver_id is not None:
        if receiver_text is not None:
            event = frames.handover_changed(handover, text=receiver_text)
        send_event_on_commit(agent_group(handover.receiver_id), event)
