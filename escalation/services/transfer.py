"""Agent escalations: the chat an agent holds goes to the target of one of its stage's
escalation options (a stage, a group, a named list of agents), with a reason and a hand-over note,
in one transaction (see `fallbacks.move_chat`). A warm option, and a hand to a colleague, keep
the agent in the chat until a receiver accepts (see `handover`)."""

from django.db import transaction

from chat import services as chat_services
from chat.models import FlowEvent
from escalation import selectors
from escalation.exceptions import (
    ColleagueNotAllowed,
    HandoverPending,
    NobodyAvailable,
    NoteRequired,
    UnknownColleague,
    UnknownReason,
    UnknownTarget,
)
from escalation.models import (
    Agent,
    Assignment,
    ColleagueHandover,
    Escalation,
    EscalationOption,
    EscalationReason,
    Handover,
    QueueEntry,
    TargetKind,
    Tier,
)
from escalation.selectors import Target
from escalation.services.dispatch import dispatch
from escalation.services.fallbacks import Origin, move_chat, run_fallback
from escalation.services.handover import open_handover
from escalation.services.route import (
    end_assignment,
    lock_route,
    require_holder,
    tell_agent_left,
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
    if escalation.warm:
        return escalation  # the agent keeps the chat (and its place) until someone takes over
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
    reason = _checked_reason(reason)
    if Handover.objects.filter(chat=chat, status__in=Handover.OPEN).exists():
        raise HandoverPending()
    target = selectors.resolve_option(option)
    if option.is_warm:
        return open_handover(
            chat=chat,
            route=route,
            agent=agent,
            target=target,
            receivers=selectors.handover_receivers(target, exclude=agent),
            warm=True,
            to_colleague=False,
            timeout_seconds=option.accept_timeout_seconds,
            option=option,
            reason=reason,
            note=note,
            requested_by=requested_by,
        )
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
    tell_agent_left(chat=chat, route=route, name=agent.display_name)
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


def _checked_reason(reason: str) -> str:
    reason = chat_services.sanitize_text(reason).strip()
    if reason and not EscalationReason.objects.filter(label=reason, is_active=True).exists():
        raise UnknownReason()
    return reason


# How long a colleague has to accept a chat handed to them.
COLLEAGUE_ACCEPT_SECONDS = 60


@transaction.atomic
def hand_to_colleague(
    *,
    chat_id: int,
    agent: Agent,
    colleague_id: int | None = None,
    colleague_name: str = "",
    warm: bool | None = None,
    note: str = "",
    reason: str = "",
    requested_by: str = Escalation.RequestedBy.BUTTON,
) -> Escalation:
    """Offer the chat the agent holds to one online colleague of the same or a higher tier (by
    id, or by display name as in `/escalate @Dana`), where the chat's stage allows it; cold or
    warm as the stage allows (None: warm where allowed). The agent keeps the chat until the
    colleague accepts; a decline or no answer in time leaves it with the agent."""
    chat, route = lock_route(chat_id=chat_id)
    require_holder(chat=chat, holder_id=route.agent_id, agent=agent)
    stage = route.stage
    if not stage.allows_hand_to_colleague:
        raise ColleagueNotAllowed()
    allowed = {
        ColleagueHandover.COLD: (False,),
        ColleagueHandover.WARM: (True,),
        ColleagueHandover.EITHER: (True, False),
    }[ColleagueHandover(stage.colleague_handover)]
    if warm is None:
        warm = allowed[0]
    if warm not in allowed:
        raise ColleagueNotAllowed(
            "This stage allows only "
            + ("warm" if allowed == (True,) else "cold")
            + " hand-overs to a colleague."
        )
    colleagues = selectors.colleagues_for(agent=agent, tier=route.tier)
    if colleague_id is not None:
        found = [row for row in colleagues if row["pk"] == colleague_id]
    else:
        name = chat_services.sanitize_text(colleague_name).strip().lstrip("@")
        found = [row for row in colleagues if row["display_name"].casefold() == name.casefold()]
    if len(found) != 1:
        listed = ", ".join(f"@{row['display_name']}" for row in colleagues[:20])
        raise UnknownColleague(
            "Choose an online colleague of the same or a higher tier with free capacity"
            + (f": {listed}." if listed else "; nobody is available now.")
        )
    note = chat_services.sanitize_text(note).strip()
    reason = _checked_reason(reason)
    colleague = Agent.objects.get(pk=found[0]["pk"])
    tier = Tier.objects.get(level=found[0]["level"])
    target = Target(
        stage=stage,
        tier=tier,
        label=colleague.display_name,
        public_label=colleague.display_name,
        kind=TargetKind.AGENTS,
        agents=[colleague],
    )
    return open_handover(
        chat=chat,
        route=route,
        agent=agent,
        target=target,
        receivers=[colleague],
        warm=warm,
        to_colleague=True,
        timeout_seconds=COLLEAGUE_ACCEPT_SECONDS,
        option=None,
        reason=reason,
        note=note,
        requested_by=requested_by,
    )
