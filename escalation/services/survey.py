"""The satisfaction survey a stage may ask for after the agent: one answer per chat, counted for
the last agent who held it."""

from django.db import transaction
from django.utils import timezone

from chat import services as chat_services
from chat.models import FlowEvent
from escalation import selectors
from escalation.exceptions import SurveyAlreadyAnswered, SurveyNotOffered
from escalation.models import Assignment, SurveyAnswer


@transaction.atomic
def answer_survey(*, chat_id: int, rating: int, comment: str = "") -> SurveyAnswer:
    """The visitor's rating (1 to 5, checked by the caller's form) and comment."""
    chat = chat_services.lock_chat(chat_id=chat_id)
    if SurveyAnswer.objects.filter(chat=chat).exists():
        raise SurveyAlreadyAnswered()
    if not selectors.offers_survey(chat):
        raise SurveyNotOffered()
    last = Assignment.objects.filter(chat=chat).order_by("-started_at", "-pk").first()
    answer = SurveyAnswer.objects.create(
        chat=chat,
        assignment=last,
        rating=rating,
        comment=comment.strip(),
        answered_at=timezone.now(),
    )
    chat_services.add_flow_event(
        chat=chat, kind=FlowEvent.Kind.SURVEY_ANSWERED, data={"rating": rating}
    )
    return answer
