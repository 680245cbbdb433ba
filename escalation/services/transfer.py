"""Agent escalations: the chat an agent holds goes to the target of one of its stage's
escalation options (a stage, a group, a named list of agents), with a reason and a hand-over note,
in one transaction (see `fallbacks.move_chat`)."""

from django.db import transaction

from chat import services as chat_services
from chat.models import FlowEvent
from escalation import selectors
from escalation.exceptions import NobodyAvailable, NoteRequired, UnknownReason, UnknownTarget
from escalation.models import (
    Agent,
    Assignment,
    Escalation,
    EscalationOption,
    EscalationReason,
    QueueEntry,
)
from escalation.services.dispatch import dispatch
from escalation.services.fallbacks import Origin, move_chat, run_fallback
from escalation.services.route import (
    end_assignment,
    lock_route,
    notify_visitor,
    require_holder,
    tell_removed,
)


def escalate_chat(
    *,
    chat_id: int,
    agent: Agent,
    keyword: str,
    note: str = "",
    reason: str = "",
    requested_by: str = Escalation.RequestedBy.COMMAND,
) -> Escalation:
    """Hand the chat the agent holds to the target of one of its stage's escalation options.

    Two transactions: the hand-over itself, whose commit tells the visitor and the target's
    consoles at once, then the dispatch of the target stage and of the stages the agent serves
    (the agent has a free place now). Dispatching locks what it assigns, with SKIP LOCKED, on its
    own; in the hand-over's transaction it only delayed those notices (about a third of the
    escalation's time, more with a longer queue)."""
    escalation = _hand_over(
        chat_id=chat_id,
        agent=agent,
        keyword=keyword,
        note=note,
        reason=reason,
        requested_by=requested_by,
    )
    with transaction.atomic():
        dispatch(stage_ids=[escalation.to_stage_id, *selectors.served_stage_ids(agent=agent)])
    return escalation


@transaction.atomic
def _hand_over(
    *,
    chat_id: int,
    agent: Agent,
    keyword: str,
    note: str,
    reason: str,
    requested_by: str,
) -> Escalation:
    chat, route = lock_route(chat_id=chat_id)
    require_holder(chat=chat, holder_id=route.agent_id, agent=agent)
    option = (
        route.stage.escalation_options.filter(
            keyword=chat_services.sanitize_text(keyword).strip().lower()[:30]
        )
        .select_related("target_stage__tier", "target_group__tier", "queue_stage__tier")
        .first()
    )
    if option is None:
        raise UnknownTarget(
            (f"Unknown target “{keyword}”. " if keyword else "")
            + selectors.keywords_help(route.stage)
        )
    note = chat_services.sanitize_text(note).strip()
    if option.note_required and not note:
        raise NoteRequired(
            f"A hand-over note is required: /escalate {option.keyword} <what the next agent "
            "should know>."
        )
    reason = chat_services.sanitize_text(reason).strip()
    if reason and not EscalationReason.objects.filter(label=reason, is_active=True).exists():
        raise UnknownReason()
    target = selectors.resolve_option(option)
    # Counted only where the option's rule depends on it (a count over the agents and groups).
    nobody = (
        option.no_agent_rule != EscalationOption.NoAgentRule.QUEUE
        and selectors.available_count(target) == 0
    )
    if nobody and option.no_agent_rule == EscalationOption.NoAgentRule.REFUSE:
        raise NobodyAvailable(
            f"Nobody in {target.label} is online with free capacity; the chat stays with you."
        )
    assignment = end_assignment(route=route, reason=Assignment.EndReason.ESCALATED)
    from_stage, from_tier = route.stage, route.tier  # before the move changes the route
    notify_visitor(
        chat=chat,
        event="agent_left",
        stage=from_stage,
        agent=agent.display_name,
        team=from_stage.public,
        tier=from_tier.public,
    )
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.AGENT_LEFT,
        actor=agent.user,
        data={"agent": agent.display_name, "why": "escalated"},
    )
    origin = Origin(
        stage=from_stage,
        tier=from_tier,
        reason_entered=QueueEntry.Reason.ESCALATION,
        requested_by=requested_by,
        agent=agent,
        group=assignment.group if assignment else None,
        option=option,
        reason=reason,
        note=note,
    )
    escalation = move_chat(chat=chat, route=route, target=target, origin=origin, notice="transfer")
    handed_over_to = f"{target.label} ({target.tier.name})"
    tell_removed(chat=chat, assignment=assignment, handed_over_to=handed_over_to)
    if nobody and option.no_agent_rule == EscalationOption.NoAgentRule.FALLBACK and route.entry:
        run_fallback(chat=chat, route=route, entry=route.entry, cause="no agent available")
    return escalation
