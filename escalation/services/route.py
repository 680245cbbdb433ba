"""The chat's route: its row locks, the holder check, visitor notices, ending an assignment and
closing the chat. The bottom of the escalation services: every other module builds on these.

Every state change locks the chat row first (`lock_route`), then the route, then agent rows, and
publishes its realtime events after commit.
"""

from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from chat import services as chat_services
from chat.events import agent_group, chat_agents_group, chat_visitor_group, send_event_on_commit
from chat.exceptions import ChatClosed
from chat.models import ChatSession, FlowEvent, Message
from escalation import selectors
from escalation.exceptions import NotYourChat
from escalation.models import Agent, Assignment, ChatRoute, Stage


def lock_route(*, chat_id: int) -> tuple[ChatSession, ChatRoute]:
    """Lock the chat, then its route. Call inside a transaction."""
    chat = chat_services.lock_chat(chat_id=chat_id)
    route = (
        ChatRoute.objects.select_for_update(of=("self",))
        .select_related("stage", "tier", "agent", "entry")
        .get(chat=chat)
    )
    return chat, route


def lock_route_holders(chat_ids: Sequence[int]) -> dict[int, int | None]:
    """Lock the routes of these chats (the chats locked already), in chat order, as `lock_route`
    does: chat id -> the id of the agent holding it, if any."""
    if not chat_ids:
        return {}
    routes = ChatRoute.objects.select_for_update().filter(chat_id__in=chat_ids).order_by("chat_id")
    return dict(routes.values_list("chat_id", "agent_id"))


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


def end_assignment(
    *, route: ChatRoute, reason: str, extra: dict[str, Any] | None = None
) -> Assignment | None:
    """End the chat's open assignment, if any, and tell the agent's consoles after commit."""
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
    status_event = {"type": "chat.status", "chat": chat.pk, "status": status}
    send_event_on_commit(chat_agents_group(chat.pk), status_event)
    send_event_on_commit(chat_visitor_group(chat.pk), status_event)
