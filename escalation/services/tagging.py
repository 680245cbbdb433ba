"""Tags on chats: what a chat was about, from the admins' list, set by the agent holding it."""

from collections.abc import Sequence

from django.db import transaction

from chat import services as chat_services
from chat.events import ChatTags, chat_agents_group, send_event_on_commit
from chat.models import ChatSession, FlowEvent
from escalation import selectors
from escalation.exceptions import TagRequired, UnknownTag
from escalation.models import Agent, ChatTag, Tag
from escalation.services.route import lock_route, require_holder

MAX_TAGS_PER_CHAT = 10


@transaction.atomic
def set_chat_tags(*, chat_id: int, agent: Agent, tag_ids: Sequence[int]) -> list[Tag]:
    """The chat's tags become `tag_ids` (active tags, at most MAX_TAGS_PER_CHAT), set by the
    agent holding it; the consoles that have it open are told after commit."""
    chat, route = lock_route(chat_id=chat_id)
    require_holder(chat=chat, holder_id=route.agent_id, agent=agent)
    wanted = list(dict.fromkeys(tag_ids))
    if len(wanted) > MAX_TAGS_PER_CHAT:
        raise UnknownTag(f"At most {MAX_TAGS_PER_CHAT} tags on a chat.")
    tags = list(Tag.objects.filter(pk__in=wanted, is_active=True))
    if len(tags) != len(wanted):
        raise UnknownTag()
    before = set(ChatTag.objects.filter(chat=chat).values_list("tag_id", flat=True))
    after = {tag.pk for tag in tags}
    if before == after:
        return selectors.chat_tags(chat_id=chat.pk)
    ChatTag.objects.filter(chat=chat).exclude(tag_id__in=after).delete()
    ChatTag.objects.bulk_create(
        [ChatTag(chat=chat, tag=tag, added_by=agent) for tag in tags if tag.pk not in before]
    )
    current = selectors.chat_tags(chat_id=chat.pk)
    names = [tag.name for tag in current]
    chat_services.add_flow_event(
        chat=chat,
        kind=FlowEvent.Kind.TAGGED,
        actor=agent.user,
        data={"tags": ", ".join(names) or "none", "agent": agent.display_name},
    )
    send_event_on_commit(
        chat_agents_group(chat.pk),
        ChatTags(
            chat=chat.pk,
            tags=[{"id": tag.pk, "name": tag.name} for tag in current],
            by=agent.display_name,
        ),
    )
    return current


def require_tag_to_end(*, chat: ChatSession, stage_requires: bool) -> None:
    """Raise TagRequired if the stage asks for a tag at the end and the chat has none. Caller
    holds the chat row lock."""
    if stage_requires and not ChatTag.objects.filter(chat=chat).exists():
        raise TagRequired()
