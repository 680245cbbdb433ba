"""Which chats an agent may learn exist (issue 13: "404 for chats an agent may not see").

Every answer about a chat the agent may not see is the one a missing chat gets ("not found"),
so that ids cannot be probed: a 403 for another group's chat beside a 404 for a missing one
told an agent which ids exist."""

from django.db.models import Q, QuerySet

from chat.models import ChatSession
from escalation.models import Agent, Assignment, QueueEntry
from escalation.selectors import stages_served_by


def chats_visible_to_agent(
    *, agent: Agent, include_past_queues: bool = False
) -> QuerySet[ChatSession]:
    """Chats the agent holds or held, and chats waiting in a queue it serves (by the queue
    entry's narrowing: named agents, else a group, else the stage's groups). With
    `include_past_queues`, also chats that once waited in such a queue: the agent may have seen
    them there, so "already taken" (409) tells it nothing new."""
    entries = QueueEntry.objects.filter(
        Q(agents=agent)
        | Q(group__in=agent.groups.all())
        | (Q(group__isnull=True, agents__isnull=True) & Q(stage__in=stages_served_by(agent)))
    )
    if not include_past_queues:
        entries = entries.filter(left_at__isnull=True)
    return ChatSession.objects.filter(
        Q(pk__in=Assignment.objects.filter(agent=agent).values("chat_id"))
        | Q(pk__in=entries.values("chat_id"))
    )
