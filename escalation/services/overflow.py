"""A chat started while its pipeline's queues are full (escalation.limits): the visitor is offered
the "leave a message" form at once, with what they wrote kept, instead of a place in line.

Interim (issue 13, phase 1): `start_chat` in routing.py is not edited in this phase, so this
repeats its first steps. Once `start_chat` checks `pipeline_queue_is_full` itself (offering the
form right after the route is created, before `enqueue`), this module and the view's branch go.
"""

from typing import Any

from django.db import transaction

from chat import services as chat_services
from chat.models import ChatSession, Message
from escalation.exceptions import UnknownTopic
from escalation.models import ChatRoute, Topic
from escalation.services.transfer import _offer_message_form

QUEUE_FULL = "queue full"


@transaction.atomic
def start_chat_offering_message(
    *,
    visitor_name: str,
    visitor_email: str,
    topic_name: str,
    first_message: str,
    visitor_context: dict[str, Any],
) -> ChatSession:
    """The chat is stored with the visitor's first message and ends at once as missed, with the
    message form offered (flow: created, fell back "queue full", ended), as a fallback to "leave
    a message" would end it; it never joins a queue, so no queue or console is touched."""
    topic = (
        Topic.objects.select_related("pipeline__entry_stage__tier")
        .filter(name=topic_name, pipeline__is_active=True, pipeline__entry_stage__isnull=False)
        .first()
    )
    if topic is None or topic.pipeline.entry_stage is None:
        raise UnknownTopic()
    stage = topic.pipeline.entry_stage
    chat = chat_services.create_chat(
        visitor_name=visitor_name,
        visitor_email=visitor_email,
        topic=topic.name,
        visitor_context=visitor_context,
    )
    route = ChatRoute.objects.create(
        chat=chat, pipeline=topic.pipeline, stage=stage, tier=stage.tier
    )
    chat_services.append_message(
        chat=chat,
        kind=Message.Kind.VISITOR,
        text=chat_services.clean_text(first_message),
        author_name=visitor_name,
    )
    _offer_message_form(chat=chat, route=route, cause=QUEUE_FULL)
    return chat
