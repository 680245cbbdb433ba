"""Consulting a colleague: the agent holding a chat opens an internal thread on it with a
colleague or a group, both sides write to it, either side closes it. The thread's messages are
the chat's internal messages with event "consult": numbered in the agents' stream, never in the
visitor's, so the visitor is never sent them and the transcript keeps them in place.

Who may do what, checked under the chat's row lock on every call:

- only the agent holding the chat opens a consult, one at a time per chat, with an online
  colleague (not itself) or a group with a member online besides it;
- the colleague asked (for a group: every member until one answers, then that one alone) and the
  holder write to the thread and close it, while it is open; anyone else is told there is no
  such consult, as for a missing one.
"""

from django.db import transaction
from django.utils import timezone

from chat import services as chat_services
from chat.models import ChatSession, FlowEvent, Message
from chat.services import NewMessage
from escalation import selectors
from escalation.exceptions import (
    ColleagueUnavailable,
    ConsultAlreadyOpen,
    ConsultClosed,
    ConsultNotFound,
    UnknownColleague,
)
from escalation.models import Agent, AgentGroup, Consult
from escalation.services.consulting import close_consult_row, locked_open_consult, publish_consult
from escalation.services.route import lock_route, require_holder

CONSULT_EVENT = "consult"  # the event of a thread's messages


def _append_to_thread(
    *, chat: ChatSession, agent: Agent, text: str, client_id: str | None
) -> Message:
    """Store (and publish after commit) a message of the chat's consult thread: internal, so
    the visitor's stream never numbers it. Caller holds the chat row lock."""
    new = NewMessage(
        chat, Message.Kind.INTERNAL, text, agent.user_id, agent.display_name, client_id
    )
    new.event = CONSULT_EVENT
    [message] = chat_services.append_messages([new])
    return message


def _target(
    *, agent: Agent, colleague_id: int | None, group_id: int | None
) -> tuple[Agent | None, AgentGroup | None]:
    """The colleague or the group to ask, checked: it exists, is not the asker, is online."""
    if (colleague_id is None) == (group_id is None):
        raise UnknownColleague("Choose one colleague or one group to consult.")
    if colleague_id is not None:
        colleague = selectors.console_agent(agent_id=colleague_id)
        if colleague is None:
            raise UnknownColleague("There is no such colleague.")
        if colleague.pk == agent.pk:
            raise ColleagueUnavailable("You cannot consult yourself: choose a colleague.")
        if not colleague.is_online:
            raise ColleagueUnavailable(
                f"{colleague.display_name} is not online: choose a colleague who is."
            )
        return colleague, None
    group = AgentGroup.objects.filter(pk=group_id).first() if group_id is not None else None
    if group is None:
        raise UnknownColleague("There is no such group.")
    if not selectors.online_members(group=group, besides=agent):
        raise ColleagueUnavailable(f"Nobody in {group.name} is online besides you.")
    return None, group


@transaction.atomic
def open_consult(
    *,
    chat_id: int,
    agent: Agent,
    question: str,
    colleague_id: int | None = None,
    group_id: int | None = None,
) -> tuple[Consult, Message]:
    """The holder asks a colleague (`colleague_id`) or a group (`group_id`) about the chat; the
    question is the thread's first message. Returns the consult and that message."""
    chat, route = lock_route(chat_id=chat_id)
    require_holder(chat=chat, holder_id=route.agent_id, agent=agent)
    text = chat_services.clean_text(question)
    colleague, group = _target(agent=agent, colleague_id=colleague_id, group_id=group_id)
    if locked_open_consult(chat_id=chat.pk) is not None:
        raise ConsultAlreadyOpen()
    consult = Consult.objects.create(
        chat=chat, asked_by=agent, agent=colleague, group=group, question=text
    )
    message = _append_to_thread(chat=chat, agent=agent, text=text, client_id=None)
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.CONSULTED,
        actor=agent.user,
        data={"agent": agent.display_name, "to": consult.target_label},
    )
    publish_consult(consult, opening=True)
    return consult, message


def _locked_consult(*, consult_id: int, agent: Agent) -> tuple[ChatSession, Consult]:
    """The consult's chat and the consult, both rows locked, if `agent` asked it or is asked in it
    (ConsultNotFound otherwise, as for a missing one); ConsultClosed if it is closed, or closed
    to `agent` (a group's consult another member answered). Call inside a transaction."""
    chat_id = Consult.objects.filter(pk=consult_id).values_list("chat_id", flat=True).first()
    if chat_id is None:
        raise ConsultNotFound()
    chat, _ = lock_route(chat_id=chat_id)  # the chat first, as every change to it does
    consult = (
        Consult.objects.select_for_update(of=("self",))
        .select_related(*selectors.CONSULT_RELATED)
        .get(pk=consult_id)
    )
    asked = consult.asked_by_id == agent.pk
    member = consult.group is not None and consult.group.agents.filter(pk=agent.pk).exists()
    if not (asked or agent.pk in (consult.agent_id, consult.answered_by_id) or member):
        raise ConsultNotFound()
    if not consult.is_open:
        raise ConsultClosed()
    if not asked and consult.answered_by_id not in (None, agent.pk) and consult.agent_id is None:
        answered_by = consult.answered_by.display_name if consult.answered_by else ""
        raise ConsultClosed(f"{answered_by} answered this consult: it goes on with them.")
    return chat, consult


@transaction.atomic
def post_consult_message(
    *, consult_id: int, agent: Agent, text: str, client_id: str | None = None
) -> Message:
    """The holder or the colleague writes to an open consult's thread. A group's consult is
    answered by the first member who writes: from then on only that member reads the chat and
    the thread. A `client_id` sent again gives back the message already stored."""
    chat, consult = _locked_consult(consult_id=consult_id, agent=agent)
    if client_id:
        stored = chat_services.stored_by_client_id([(chat.pk, client_id)])
        if (chat.pk, client_id) in stored:
            return stored[(chat.pk, client_id)]
    text = chat_services.clean_text(text)
    if consult.asked_by_id != agent.pk and consult.answered_by_id is None:
        consult.answered_by = agent
        consult.answered_at = timezone.now()
        consult.save(update_fields=["answered_by", "answered_at"])
        chat_services.add_flow_event(
            chat=chat,
            kind=FlowEvent.Kind.CONSULT_ANSWERED,
            actor=agent.user,
            data={"agent": agent.display_name, "to": consult.asked_by.display_name},
        )
        publish_consult(consult)
    return _append_to_thread(chat=chat, agent=agent, text=text, client_id=client_id)


@transaction.atomic
def close_consult(*, consult_id: int, agent: Agent) -> Consult:
    """The holder or the colleague closes the consult: the colleague no longer reads the chat."""
    _, consult = _locked_consult(consult_id=consult_id, agent=agent)
    close_consult_row(consult=consult, reason=Consult.CloseReason.CLOSED, by=agent)
    return consult
