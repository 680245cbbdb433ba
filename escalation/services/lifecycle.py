"""A chat's life outside escalation: starting it, ending it (by the agent or the visitor), the
visitor leaving while queued (the drop stage, or abandoned), and the holder giving it back to the
queue."""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat import services as chat_services
from chat.models import ChatSession, FlowEvent, Message
from escalation import selectors
from escalation.exceptions import UnknownTopic
from escalation.models import (
    Agent,
    Assignment,
    ChatRoute,
    Escalation,
    Handover,
    QueueEntry,
    Site,
    Stage,
)
from escalation.services.dispatch import dispatch
from escalation.services.fallbacks import fall_back_if_nobody_serves, offer_message_form
from escalation.services.queueing import enqueue, leave_queue, wait_text
from escalation.services.route import (
    close_chat,
    close_open_handover,
    end_assignment,
    joined_receiver,
    lock_route,
    notify_agents,
    notify_visitor,
    require_holder,
    tell_agent_left,
    tell_removed,
)
from escalation.services.tagging import require_tag_to_end

QUEUE_FULL = "queue full"


@transaction.atomic
def start_chat(
    *,
    visitor_name: str,
    visitor_email: str,
    topic_name: str,
    first_message: str,
    visitor_context: dict[str, Any],
    fields: dict[str, dict[str, Any]] | None = None,
    site: Site | None = None,
) -> ChatSession:
    """A visitor starts a chat (on Tierline's chat page, or through `site`'s widget, which
    offers only its pipeline's topics). `fields`: the answers to the pipeline's pre-chat
    questions, already checked by the start form (key -> {"label", "value"}); kept in the chat's
    visitor_context["fields"]."""
    topic = (
        selectors.start_topics(site=site)
        .select_related("pipeline__entry_stage")
        .filter(name=topic_name)
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
        visitor_context={**visitor_context, "fields": fields} if fields else visitor_context,
    )
    route = ChatRoute.objects.create(
        chat=chat, pipeline=topic.pipeline, stage=stage, tier=stage.tier, site=site
    )
    chat_services.append_message(
        chat=chat, kind=Message.Kind.VISITOR, text=first_message, author_name=visitor_name
    )
    if selectors.pipeline_queue_is_full(topic_name=topic.name):
        # Past MAX_WAITING_CHATS_PER_PIPELINE a new visitor is offered the "leave a message"
        # form at once, with what they wrote kept, instead of a place in a line that long.
        offer_message_form(chat=chat, route=route, cause=QUEUE_FULL)
        return chat
    entry = enqueue(chat=chat, route=route, stage=stage, reason=QueueEntry.Reason.START)
    if fall_back_if_nobody_serves(chat=chat, route=route, entry=entry):
        return chat  # the fallback's own notice says where the chat went
    dispatch(stage_ids=[stage.pk])
    # A place in line is announced only if there is one: a visitor whose chat an agent took
    # at once is told who joined, not that they are queued. (dispatch works on its own copy
    # of the chat row: read its numbering back before adding to it.)
    chat.refresh_from_db()
    if chat.status == ChatSession.Status.QUEUED:
        notify_visitor(
            chat=chat,
            event="queued",
            stage=stage,
            team=selectors.public_team(entry),
            tier=stage.tier.public,
            position=str(selectors.queue_position(entry=entry)),
            wait=wait_text(entry),
        )
    return chat


@transaction.atomic
def end_chat_by_agent(*, chat_id: int, agent: Agent) -> None:
    """The agent resolved the chat."""
    chat, route = lock_route(chat_id=chat_id)
    require_holder(chat=chat, holder_id=route.agent_id, agent=agent)
    require_tag_to_end(chat=chat, stage_requires=route.stage.requires_tag_at_end)
    assignment = end_assignment(route=route, reason=Assignment.EndReason.RESOLVED)
    closed = close_chat(
        chat=chat,
        route=route,
        status=ChatSession.Status.ENDED,
        actor=agent.user,
        data={"by": "agent", "agent": agent.display_name, "resolution": "resolved"},
        by="agent",
        after_agent=True,
    )
    tell_removed(chat=chat, assignment=assignment)
    dispatch(stage_ids=_freed_stage_ids(agent, joined_receiver(closed)))


def _freed_stage_ids(*agents: Agent | None) -> list[int]:
    """The stages to dispatch when these agents (the holder, a receiver who had joined) each
    have a place free again."""
    stage_ids: set[int] = set()
    for agent in agents:
        if agent is not None:
            stage_ids.update(selectors.stages_to_dispatch_for(agent=agent))
    return sorted(stage_ids)


@transaction.atomic
def end_chat_by_visitor(*, chat_id: int) -> None:
    """The visitor closed the chat: a waiting chat goes to its stage's drop stage or is
    abandoned, an active one ends."""
    chat, route = lock_route(chat_id=chat_id)
    if not chat.is_open:
        return  # ending twice is not an error for the visitor: the chat is over either way
    _visitor_leaves(chat=chat, route=route, why="visitor ended the chat")


def _visitor_leaves(*, chat: ChatSession, route: ChatRoute, why: str, by: str = "visitor") -> None:
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
            by=by,
        )
        return
    assignment = end_assignment(route=route, reason=Assignment.EndReason.VISITOR_LEFT)
    if assignment is not None:
        # The agent is told in the chat itself (an agents-only notice), as in the seed product.
        notify_agents(
            chat=chat, event="visitor_left", stage=route.stage, agent=assignment.agent.display_name
        )
    closed = close_chat(
        chat=chat,
        route=route,
        status=ChatSession.Status.ENDED,
        actor=None,
        data={"by": "visitor", "why": why},
        by=by,
        # What the stage offers after the agent; a page that is gone can answer nothing.
        after_agent=assignment is not None and by == "visitor",
    )
    tell_removed(chat=chat, assignment=assignment)
    freed = _freed_stage_ids(assignment.agent if assignment else None, joined_receiver(closed))
    if freed:
        dispatch(stage_ids=freed)


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
        team=selectors.public_team(dropped),
        tier=dropped.tier.public,
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
def end_if_visitor_gone(*, chat_id: int, seen_before: datetime) -> bool:
    """End an active chat whose visitor's page has not been seen since `seen_before`: the agent
    is told the visitor left and its place is free for the next chat."""
    chat, route = lock_route(chat_id=chat_id)
    if chat.status != ChatSession.Status.ACTIVE:
        return False
    if chat.visitor_seen_at is not None and chat.visitor_seen_at >= seen_before:
        return False
    _visitor_leaves(chat=chat, route=route, why="visitor left the page", by="visitor_gone")
    return True


def sweep_gone_visitors(*, limit: int = 500) -> int:
    """End the chats whose visitor's page stopped answering (closed tab, lost network) for
    VISITOR_GONE_SECONDS: waiting ones are abandoned or dropped, active ones end. Returns how
    many."""
    seen_before = timezone.now() - timedelta(seconds=settings.VISITOR_GONE_SECONDS)
    waiting = sum(
        abandon_if_visitor_gone(chat_id=chat_id, seen_before=seen_before)
        for chat_id in selectors.queued_chats_seen_before(seen_before=seen_before, limit=limit)
    )
    return waiting + sum(
        end_if_visitor_gone(chat_id=chat_id, seen_before=seen_before)
        for chat_id in selectors.active_chats_seen_before(seen_before=seen_before, limit=limit)
    )


@transaction.atomic
def return_to_queue(*, chat_id: int, agent: Agent, why: str = "") -> QueueEntry:
    """The holding agent gives the chat back to its stage's queue, keeping its place (`why`, for
    the flow, when it was not the agent's own choice)."""
    chat, route = lock_route(chat_id=chat_id)
    require_holder(chat=chat, holder_id=route.agent_id, agent=agent)
    last = QueueEntry.objects.filter(chat=chat).order_by("-entered_at", "-pk").first()
    handover = close_open_handover(
        chat=chat,
        status=Handover.Status.CANCELLED,
        outcome=Escalation.Outcome.CANCELLED,
        reason="returned",
        text="The chat went back to the queue: the hand-over is cancelled.",
    )
    assignment = end_assignment(route=route, reason=Assignment.EndReason.RETURNED)
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
    tell_agent_left(chat=chat, route=route, name=agent.display_name)
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
    tell_removed(chat=chat, assignment=assignment)
    dispatch(stage_ids=sorted({route.stage.pk, *_freed_stage_ids(joined_receiver(handover))}))
    return entry
