from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from chat import api as chat_api
from escalation import api
from reporting.api import ReportApi

urlpatterns = [
    path("chats/", chat_api.ChatListApi.as_view(), name="api-chats"),
    path("chats/<id:chat_id>/", chat_api.ChatDetailApi.as_view(), name="api-chat"),
    path("chats/<id:chat_id>/messages/", chat_api.ChatMessagesApi.as_view(), name="api-messages"),
    path(
        "chats/<id:chat_id>/attachments/",
        chat_api.ChatAttachmentsApi.as_view(),
        name="api-attachments",
    ),
    path(
        "chats/<id:chat_id>/attachments/<id:attachment_id>/",
        chat_api.ChatAttachmentApi.as_view(),
        name="api-attachment",
    ),
    path("chats/<id:chat_id>/take/", chat_api.ChatTakeApi.as_view(), name="api-take"),
    path("chats/<id:chat_id>/end/", chat_api.ChatEndApi.as_view(), name="api-end"),
    path("chats/<id:chat_id>/escalate/", chat_api.ChatEscalateApi.as_view(), name="api-escalate"),
    path("chats/<id:chat_id>/return/", chat_api.ChatReturnApi.as_view(), name="api-return"),
    path("tiers/", api.TierListApi.as_view(), name="api-tiers"),
    path("groups/", api.GroupListApi.as_view(), name="api-groups"),
    path("agents/", api.AgentListApi.as_view(), name="api-agents"),
    path("pipelines/", api.PipelineListApi.as_view(), name="api-pipelines"),
    path("stages/", api.StageListApi.as_view(), name="api-stages"),
    path("queues/", api.QueueListApi.as_view(), name="api-queues"),
    path("me/presence/", api.PresenceApi.as_view(), name="api-presence"),
    path("me/offers/", api.OfferListApi.as_view(), name="api-offers"),
    path("offers/<id:offer_id>/accept/", api.OfferAcceptApi.as_view(), name="api-offer-accept"),
    path("offers/<id:offer_id>/decline/", api.OfferDeclineApi.as_view(), name="api-offer-decline"),
    path("reports/<slug:name>/", ReportApi.as_view(), name="api-report"),
]


@csrf_exempt  # it changes nothing; it only answers, in JSON, for any method
def api_not_found(request: HttpRequest, rest: str) -> JsonResponse:
    """Anything else under /api/v1/ (a mistyped path, an id that is not a number): JSON, in the
    API's error shape, not Django's HTML page."""
    return JsonResponse(
        {"error": {"code": "not_found", "message": "There is no such API endpoint."}}, status=404
    )


urlpatterns.append(re_path(r"^(?P<rest>.*)$", api_not_found))
