"""The end of consults and what their participants are told: the bottom half of consults, below
`route`, so that ending the holder's turn with a chat (`route.end_assignment`) closes the chat's
open consult whatever ended it. Opening, answering and closing by hand are in `consults`."""

from django.utils import timezone

from chat import services as chat_services
from chat.events import agent_group, send_event_on_commit
from chat.models import FlowEvent
from escalation import frames, selectors
from escalation.models import Agent, Assignment, Consult

# A turn that ended for these reasons ended the chat; any other handed it on (escalated,
# returned to the queue, the agent's console gone).
CHAT_ENDED_BY = (Assignment.EndReason.RESOLVED, Assignment.EndReason.VISITOR_LEFT)


def publish_consult(consult: Consult, *, opening: bool = False) -> None:
    """After commit, tell the consult's participants: the agent who asked, and the colleague or
    the group's members (when it opens, only the members online then: they are the ones
    alerted; later news goes to every member, so that any console still showing it drops it)."""
    recipients = {consult.asked_by_id}
    if consult.agent_id is not None:
        recipients.add(consult.agent_id)
    elif consult.group is not None:
        members = consult.group.agents.all()
        if opening:
            members = members.filter(presence=Agent.Presence.ONLINE)
        recipients.update(members.values_list("pk", flat=True))
    if consult.answered_by_id is not None:
        recipients.add(consult.answered_by_id)
    event = frames.consult_event(consult)
    for agent_id in sorted(recipients):
        send_event_on_commit(agent_group(agent_id), event)


def close_consult_row(*, consult: Consult, reason: str, by: Agent | None) -> None:
    """Close an open consult (its row locked), record it in the chat's flow and tell its
    participants. Caller holds the chat row lock."""
    consult.status = Consult.Status.CLOSED
    consult.close_reason = reason
    consult.closed_by = by
    consult.closed_at = timezone.now()
    consult.save(update_fields=["status", "close_reason", "closed_by", "closed_at"])
    why = {
        Consult.CloseReason.CLOSED: f"closed by {by.display_name if by else 'a participant'}",
        Consult.CloseReason.CHAT_ENDED: "the chat ended",
        Consult.CloseReason.HANDED_OVER: "the chat was handed over",
    }[Consult.CloseReason(reason)]
    chat_services.add_flow_event(
        chat=consult.chat,
        kind=FlowEvent.Kind.CONSULT_CLOSED,
        actor=by.user if by is not None else None,
        data={"to": consult.target_label, "why": why},
    )
    publish_consult(consult)


def locked_open_consult(*, chat_id: int) -> Consult | None:
    """The chat's open consult, its row locked (the chat's is already). Call inside a
    transaction."""
    return (
        Consult.objects.select_for_update(of=("self",))
        .filter(chat_id=chat_id, status=Consult.Status.OPEN)
        .select_related(*selectors.CONSULT_RELATED)
        .first()
    )


def close_consults_of_turn(*, chat_id: int, end_reason: str) -> None:
    """The holder's turn with the chat ended (`end_reason`, an assignment's): its open consult
    closes, as the chat ended or was handed over. Caller holds the chat row lock."""
    consult = locked_open_consult(chat_id=chat_id)
    if consult is None:
        return
    reason = (
        Consult.CloseReason.CHAT_ENDED
        if end_reason in CHAT_ENDED_BY
        else Consult.CloseReason.HANDED_OVER
    )
    close_consult_row(consult=consult, reason=reason, by=None)
