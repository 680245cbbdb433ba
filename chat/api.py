"""REST API v1 for chats and their messages: list, read, write as the holding agent, and the
holder's actions (take, end, give back, escalate), over escalation's services.

One APIView per operation, with nested Input/Output serializers. Errors have one shape
(`helpdesk.api_errors`): {"error": {"code", "message", "fields"?}}.
"""

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, HttpResponseBase
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.models import Attachment, ChatSession, Message
from chat.selectors import messages_after
from chat.views import attachment_response, body_too_large
from escalation import selectors, services
from escalation.models import Agent, Escalation
from escalation.permissions import CanReadChats, IsAgent, current_agent, sees_every_chat
from helpdesk.api_errors import ERROR_RESPONSES

# Ids are 64-bit in the database: a larger number is refused as invalid input, not a crash.
MAX_ID = 2**63 - 1


def visible_chats(request: Request, *, include_past_queues: bool = False) -> QuerySet[ChatSession]:
    """The chats the caller may read: every chat for managers and admins, else the agent's."""
    if sees_every_chat(request):
        return ChatSession.objects.all()
    agent = current_agent(request)
    return selectors.chats_visible_to(agent=agent, include_past_queues=include_past_queues)


def get_visible_chat(
    request: Request, chat_id: int, *, include_past_queues: bool = False
) -> ChatSession:
    """The chat, or 404 "not found" alike for a missing chat and one the caller may not see."""
    chats = visible_chats(request, include_past_queues=include_past_queues)
    return get_object_or_404(chats, pk=chat_id)


class ChatOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    visitor_name = serializers.CharField()
    visitor_email = serializers.CharField()
    topic = serializers.CharField()
    status = serializers.ChoiceField(choices=ChatSession.Status.choices)
    created_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    stage = serializers.CharField(source="route.stage.name", allow_null=True, default=None)
    tier = serializers.IntegerField(source="route.tier.level", allow_null=True, default=None)
    agent = serializers.CharField(source="route.agent.display_name", allow_null=True, default=None)
    last_seq = serializers.IntegerField()


class Page(LimitOffsetPagination):
    default_limit = 50
    max_limit = 200


class ChatListApi(APIView):
    """Chats you may see, newest first. Filters: state, tier, group, agent, created range."""

    permission_classes = [IsAuthenticated, CanReadChats]

    class ChatListQuery(serializers.Serializer[Any]):
        state = serializers.ChoiceField(choices=ChatSession.Status.choices, required=False)
        tier = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
        group = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
        agent = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
        created_after = serializers.DateTimeField(required=False)
        created_before = serializers.DateTimeField(required=False)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=200)
        offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID)

    @extend_schema(
        operation_id="v1_chats_list",
        parameters=[ChatListQuery],
        responses={
            200: inline_serializer(
                "ChatPage",
                {
                    "count": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": ChatOutput(many=True),
                },
            ),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request: Request) -> Response:
        filters = self.ChatListQuery(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        chats = visible_chats(request).select_related("route__stage", "route__tier", "route__agent")
        if "state" in data:
            chats = chats.filter(status=data["state"])
        if "tier" in data:
            chats = chats.filter(route__tier__level=data["tier"])
        if "group" in data:
            chats = chats.filter(assignments__group_id=data["group"]).distinct()
        if "agent" in data:
            chats = chats.filter(assignments__agent_id=data["agent"]).distinct()
        if "created_after" in data:
            chats = chats.filter(created_at__gte=data["created_after"])
        if "created_before" in data:
            chats = chats.filter(created_at__lt=data["created_before"])
        paginator = Page()
        page = paginator.paginate_queryset(chats.order_by("-created_at", "-pk"), request, view=self)
        return paginator.get_paginated_response(ChatOutput(page, many=True).data)


class FlowOutput(serializers.Serializer[Any]):
    kind = serializers.CharField()
    at = serializers.DateTimeField()
    details = serializers.DictField(source="data")


class ChatDetailApi(APIView):
    permission_classes = [IsAuthenticated, CanReadChats]

    class ChatDetailOutput(ChatOutput):
        flow = FlowOutput(many=True)
        tier_path = serializers.ListField(child=serializers.CharField())

    @extend_schema(responses={200: ChatDetailOutput, **ERROR_RESPONSES})
    def get(self, request: Request, chat_id: int) -> Response:
        chat = get_visible_chat(request, chat_id)
        data = dict(ChatOutput(chat).data)
        data["flow"] = FlowOutput(chat.flow.order_by("pk"), many=True).data
        data["tier_path"] = selectors.tier_path(chat_id=chat.pk)
        return Response(data)


class AttachmentOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    size = serializers.IntegerField(source="size_bytes")
    type = serializers.CharField(source="content_type")
    image = serializers.BooleanField(source="is_image")
    download_url = serializers.SerializerMethodField()

    def get_download_url(self, attachment: Attachment) -> str:
        return reverse("api-attachment", args=[attachment.chat_id, attachment.pk])


class MessageOutput(serializers.Serializer[Any]):
    seq = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Message.Kind.choices)
    event = serializers.CharField()
    author = serializers.CharField(source="author_name")
    text = serializers.CharField()
    at = serializers.DateTimeField(source="created_at")
    client_id = serializers.CharField(allow_null=True)
    attachment = AttachmentOutput(allow_null=True, read_only=True)


class ChatMessagesApi(APIView):
    """GET: messages after a sequence number (a page). POST: write as the agent holding it."""

    permission_classes = [IsAuthenticated, CanReadChats]

    class MessagePageQuery(serializers.Serializer[Any]):
        after = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID, default=0)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=200, default=100)

    class MessageInput(serializers.Serializer[Any]):
        text = serializers.CharField(trim_whitespace=False, max_length=100_000)
        internal = serializers.BooleanField(required=False, default=False)
        client_id = serializers.CharField(required=False, max_length=64)

    @extend_schema(
        parameters=[MessagePageQuery],
        responses={
            200: inline_serializer(
                "MessagePage",
                {
                    "messages": MessageOutput(many=True),
                    "last": serializers.IntegerField(),
                    "more": serializers.BooleanField(),
                },
            ),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request: Request, chat_id: int) -> Response:
        chat = get_visible_chat(request, chat_id)
        params = self.MessagePageQuery(data=request.query_params)
        params.is_valid(raise_exception=True)
        limit = params.validated_data["limit"]
        rows = messages_after(
            chat_id=chat.pk, after=params.validated_data["after"], for_visitor=False, limit=limit
        )
        last = rows[-1].seq if rows else params.validated_data["after"]
        return Response(
            {
                "messages": MessageOutput(rows, many=True).data,
                "last": last,
                "more": len(rows) >= limit,
            }
        )

    @extend_schema(request=MessageInput, responses={201: MessageOutput, **ERROR_RESPONSES})
    def post(self, request: Request, chat_id: int) -> Response:
        if not IsAgent().has_permission(request, self):
            raise PermissionDenied(IsAgent.message)
        data = self.MessageInput(data=request.data)
        data.is_valid(raise_exception=True)
        get_visible_chat(request, chat_id)
        message = services.post_agent_message(
            chat_id=chat_id,
            agent=current_agent(request),
            text=data.validated_data["text"],
            internal=data.validated_data["internal"],
            client_id=data.validated_data.get("client_id"),
        )
        return Response(MessageOutput(message).data, status=201)


class _ChatAction(APIView):
    permission_classes = [IsAuthenticated, IsAgent]

    def chat(self, request: Request, chat_id: int) -> Agent:
        get_visible_chat(request, chat_id)
        return current_agent(request)

    def state(self, chat_id: int) -> Response:
        chat = ChatSession.objects.select_related(
            "route__stage", "route__tier", "route__agent"
        ).get(pk=chat_id)
        return Response(ChatOutput(chat).data)


class ChatTakeApi(_ChatAction):
    @extend_schema(request=None, responses={200: ChatOutput, **ERROR_RESPONSES})
    def post(self, request: Request, chat_id: int) -> Response:
        # A chat someone else just took is gone from your queue, and you should hear "already
        # taken" (409), not "no such chat": so chats that once waited in your queues count too.
        # Any other chat, like a missing one, is "not found" (404).
        get_visible_chat(request, chat_id, include_past_queues=True)
        services.take_chat(chat_id=chat_id, agent=current_agent(request))
        return self.state(chat_id)


class ChatEndApi(_ChatAction):
    @extend_schema(request=None, responses={200: ChatOutput, **ERROR_RESPONSES})
    def post(self, request: Request, chat_id: int) -> Response:
        services.end_chat_by_agent(chat_id=chat_id, agent=self.chat(request, chat_id))
        return self.state(chat_id)


class ChatReturnApi(_ChatAction):
    """Give a chat you hold back to its queue (for another agent of the stage to take)."""

    @extend_schema(request=None, responses={200: ChatOutput, **ERROR_RESPONSES})
    def post(self, request: Request, chat_id: int) -> Response:
        services.return_to_queue(chat_id=chat_id, agent=self.chat(request, chat_id))
        return self.state(chat_id)


class ChatEscalateApi(_ChatAction):
    class EscalateInput(serializers.Serializer[Any]):
        target = serializers.CharField(max_length=30, help_text="An option's keyword.")
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=80)
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)

    class EscalationOutput(serializers.Serializer[Any]):
        id = serializers.IntegerField()
        target = serializers.CharField(source="target_label")
        tier = serializers.IntegerField(source="to_tier.level")
        reason = serializers.CharField()
        note = serializers.CharField()
        requested_at = serializers.DateTimeField()

    @extend_schema(request=EscalateInput, responses={201: EscalationOutput, **ERROR_RESPONSES})
    def post(self, request: Request, chat_id: int) -> Response:
        data = self.EscalateInput(data=request.data)
        data.is_valid(raise_exception=True)
        escalation = services.escalate_chat(
            chat_id=chat_id,
            agent=self.chat(request, chat_id),
            keyword=data.validated_data["target"],
            note=data.validated_data["note"],
            reason=data.validated_data["reason"],
            requested_by=Escalation.RequestedBy.API,
        )
        return Response(self.EscalationOutput(escalation).data, status=201)


class ChatAttachmentsApi(APIView):
    """POST: send a file (multipart field `file`) as the agent holding the chat; `internal` keeps
    it in an internal note, never shown to the visitor."""

    permission_classes = [IsAuthenticated, IsAgent]
    parser_classes = [MultiPartParser]

    class AttachmentInput(serializers.Serializer[Any]):
        # Empty files pass here so that the service says why they are refused.
        file = serializers.FileField(allow_empty_file=True, max_length=1000)
        internal = serializers.BooleanField(required=False, default=False)

    @extend_schema(request=AttachmentInput, responses={201: MessageOutput, **ERROR_RESPONSES})
    def post(self, request: Request, chat_id: int) -> HttpResponseBase:
        get_visible_chat(request, chat_id)  # before the body is read: 404 for a chat not seen
        limits = selectors.attachment_limits(chat_id=chat_id)
        refused = body_too_large(request._request, limits)
        if refused is not None:
            return refused
        data = self.AttachmentInput(data=request.data)
        data.is_valid(raise_exception=True)
        message = services.post_attachment(
            chat_id=chat_id,
            upload=data.validated_data["file"],
            limits=limits,
            agent=current_agent(request),
            internal=data.validated_data["internal"],
        )
        return Response(MessageOutput(message).data, status=201)


class ChatAttachmentApi(APIView):
    """GET: download a file of a chat you may see (images inline, anything else as a download)."""

    permission_classes = [IsAuthenticated, CanReadChats]

    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY),
            **ERROR_RESPONSES,
        }
    )
    def get(self, request: Request, chat_id: int, attachment_id: int) -> FileResponse:
        chat = get_visible_chat(request, chat_id)
        attachment = get_object_or_404(Attachment, pk=attachment_id, chat=chat)
        return attachment_response(attachment)
