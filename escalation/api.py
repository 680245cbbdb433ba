"""REST API v1 for chats, queues, configuration and presence: the console's services, over HTTP.

One APIView per operation, with nested Input/Output serializers. Errors have one shape
(`helpdesk.api_errors`): {"error": {"code", "message", "fields"?}}.
"""

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.models import ChatSession, Message
from chat.selectors import messages_after
from escalation import selectors, services
from escalation.access import chats_visible_to_agent
from escalation.models import (
    Agent,
    AgentGroup,
    Escalation,
    Pipeline,
    Stage,
    Tier,
)
from escalation.services.transfer import escalation_choices
from helpdesk.api_errors import ERROR_RESPONSES

# Ids are 64-bit in the database: a larger number is refused as invalid input, not a crash.
MAX_ID = 2**63 - 1


class IsAgent(BasePermission):
    message = "Only agents can do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and user.has_perm("escalation.use_console")
            and Agent.objects.filter(user=user).exists()
        )


class CanReadChats(BasePermission):
    """Agents (their chats and queues), managers and admins (every chat)."""

    message = "Only agents, managers and admins can read chats."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return bool(
            user.is_superuser
            or user.has_perm("escalation.view_reports")
            or user.has_perm("escalation.use_console")
        )


def current_agent(request: Request) -> Agent:
    agent = Agent.objects.filter(user_id=request.user.pk or 0).first()
    if agent is None:
        raise PermissionDenied("This account has no agent profile.")
    return agent


def sees_every_chat(request: Request) -> bool:
    user = request.user
    return bool(user.is_superuser or user.has_perm("escalation.view_reports"))


def visible_chats(request: Request, *, include_past_queues: bool = False) -> QuerySet[ChatSession]:
    if sees_every_chat(request):
        return ChatSession.objects.all()
    return chats_visible_to_agent(
        agent=current_agent(request), include_past_queues=include_past_queues
    )


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


class MessageOutput(serializers.Serializer[Any]):
    seq = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Message.Kind.choices)
    event = serializers.CharField()
    author = serializers.CharField(source="author_name")
    text = serializers.CharField()
    at = serializers.DateTimeField(source="created_at")
    client_id = serializers.CharField(allow_null=True)


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
        # Any other chat, like a missing one, is "not found" (404): never 403 "not your queue",
        # which told an agent that the id exists.
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


# --- Configuration (read-only), queues, presence ---------------------------------------------


class TierListApi(APIView):
    permission_classes = [IsAuthenticated, CanReadChats]

    class TierOutput(serializers.Serializer[Any]):
        id = serializers.IntegerField()
        level = serializers.IntegerField()
        name = serializers.CharField()

    @extend_schema(responses={200: TierOutput(many=True), **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        return Response(self.TierOutput(Tier.objects.order_by("level"), many=True).data)


class GroupListApi(APIView):
    permission_classes = [IsAuthenticated, CanReadChats]

    class GroupOutput(serializers.Serializer[Any]):
        id = serializers.IntegerField()
        name = serializers.CharField()
        tier = serializers.IntegerField(source="tier.level")
        routing_policy = serializers.CharField()
        default_capacity = serializers.IntegerField()
        auto_away_after_lapses = serializers.IntegerField()

    @extend_schema(responses={200: GroupOutput(many=True), **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        groups = AgentGroup.objects.select_related("tier").order_by("tier__level", "name")
        return Response(self.GroupOutput(groups, many=True).data)


class AgentListApi(APIView):
    permission_classes = [IsAuthenticated, CanReadChats]

    class AgentOutput(serializers.Serializer[Any]):
        id = serializers.IntegerField()
        name = serializers.CharField(source="display_name")
        presence = serializers.CharField()
        groups = serializers.ListField(child=serializers.CharField())
        capacity = serializers.IntegerField()
        load = serializers.IntegerField()

    @extend_schema(responses={200: AgentOutput(many=True), **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        rows = [
            {
                "id": a.pk,
                "display_name": a.display_name,
                "presence": a.presence,
                "groups": [g.name for g in a.groups.all()],
                "capacity": selectors.effective_capacity(a),
                "load": selectors.agent_load(a),
            }
            for a in Agent.objects.prefetch_related("groups").filter(user__is_active=True)
        ]
        return Response(self.AgentOutput(rows, many=True).data)


class OptionOutput(serializers.Serializer[Any]):
    keyword = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    kind = serializers.CharField()
    team = serializers.CharField()
    tier = serializers.CharField()
    available = serializers.IntegerField()
    note_required = serializers.BooleanField()
    no_agent_rule = serializers.CharField()


class StageOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    pipeline = serializers.CharField()
    tier = serializers.IntegerField()
    wait_timeout_seconds = serializers.IntegerField()
    fallback_action = serializers.CharField()
    accept_timeout_seconds = serializers.IntegerField()
    still_searching_seconds = serializers.IntegerField()
    drop_stage = serializers.IntegerField(allow_null=True)
    groups = serializers.ListField(child=serializers.CharField())
    escalation_options = OptionOutput(many=True)


def stage_row(stage: Stage) -> dict[str, Any]:
    return {
        "id": stage.pk,
        "name": stage.name,
        "pipeline": stage.pipeline.name,
        "tier": stage.tier.level,
        "wait_timeout_seconds": stage.wait_timeout_seconds,
        "fallback_action": stage.fallback_action,
        "accept_timeout_seconds": stage.accept_timeout_seconds,
        "still_searching_seconds": stage.still_searching_seconds,
        "drop_stage": stage.drop_stage_id,
        "groups": [g.name for g in stage.groups.all()],
        "escalation_options": escalation_choices(stage=stage),
    }


class PipelineListApi(APIView):
    permission_classes = [IsAuthenticated, CanReadChats]

    class PipelineOutput(serializers.Serializer[Any]):
        id = serializers.IntegerField()
        name = serializers.CharField()
        is_active = serializers.BooleanField()
        entry_stage = serializers.CharField(
            source="entry_stage.name", allow_null=True, default=None
        )
        topics = serializers.ListField(child=serializers.CharField())

    @extend_schema(responses={200: PipelineOutput(many=True), **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        rows = [
            {
                "id": p.pk,
                "name": p.name,
                "is_active": p.is_active,
                "entry_stage": p.entry_stage,
                "topics": [t.name for t in p.topics.all()],
            }
            for p in Pipeline.objects.select_related("entry_stage").prefetch_related("topics")
        ]
        return Response(self.PipelineOutput(rows, many=True).data)


class StageListApi(APIView):
    permission_classes = [IsAuthenticated, CanReadChats]

    @extend_schema(responses={200: StageOutput(many=True), **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        stages = Stage.objects.select_related("pipeline", "tier").prefetch_related("groups")
        return Response(StageOutput([stage_row(s) for s in stages], many=True).data)


class QueueListApi(APIView):
    """Per stage, the waiting chats with their place in line and wait estimate."""

    permission_classes = [IsAuthenticated, CanReadChats]

    class QueueOutput(serializers.Serializer[Any]):
        stage = serializers.IntegerField()
        name = serializers.CharField()
        waiting = serializers.ListField(
            child=inline_serializer(
                "QueueItem",
                {
                    "chat": serializers.IntegerField(),
                    "visitor": serializers.CharField(),
                    "position": serializers.IntegerField(),
                    "waiting_since": serializers.DateTimeField(),
                    "estimate_low_seconds": serializers.IntegerField(allow_null=True),
                    "estimate_high_seconds": serializers.IntegerField(allow_null=True),
                },
            )
        )

    @extend_schema(responses={200: QueueOutput(many=True), **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        stages = Stage.objects.select_related("pipeline")
        agent = None
        if not sees_every_chat(request):
            agent = current_agent(request)
            stages = Stage.objects.filter(pk__in=selectors.stages_to_dispatch_for(agent=agent))
        now = timezone.now()
        rows = []
        for stage in stages.order_by("pk"):
            waiting = []
            for position, entry in enumerate(selectors.waiting_entries(stage_id=stage.pk), 1):
                if agent is not None and not selectors.can_serve(agent=agent, entry=entry):
                    continue  # narrowed to another group or other agents: not yours to see
                estimate = selectors.wait_estimate(entry=entry, position=position, now=now)
                waiting.append(
                    {
                        "chat": entry.chat_id,
                        "visitor": entry.chat.visitor_name,
                        "position": position,
                        "waiting_since": entry.waiting_since,
                        "estimate_low_seconds": estimate.low_seconds if estimate else None,
                        "estimate_high_seconds": estimate.high_seconds if estimate else None,
                    }
                )
            rows.append({"stage": stage.pk, "name": str(stage), "waiting": waiting})
        return Response(self.QueueOutput(rows, many=True).data)


class PresenceApi(APIView):
    """An agent sets its own presence."""

    permission_classes = [IsAuthenticated, IsAgent]

    class PresenceInput(serializers.Serializer[Any]):
        presence = serializers.ChoiceField(choices=Agent.Presence.choices)

    @extend_schema(request=PresenceInput, responses={200: PresenceInput, **ERROR_RESPONSES})
    def post(self, request: Request) -> Response:
        data = self.PresenceInput(data=request.data)
        data.is_valid(raise_exception=True)
        agent = services.set_presence(
            agent=current_agent(request),
            presence=data.validated_data["presence"],
            by_integration=True,
        )
        return Response({"presence": agent.presence})


class OfferOutput(serializers.Serializer[Any]):
    offer = serializers.IntegerField()
    chat = serializers.IntegerField()
    policy = serializers.CharField()
    visitor = serializers.CharField()
    topic = serializers.CharField()
    stage = serializers.CharField()
    tier = serializers.CharField()
    team = serializers.CharField()
    tier_path = serializers.ListField(child=serializers.CharField())
    note = serializers.CharField()
    waiting_since = serializers.DateTimeField()
    waited_seconds = serializers.IntegerField()
    offered_at = serializers.DateTimeField()
    deadline = serializers.DateTimeField(allow_null=True)
    accept_seconds = serializers.FloatField(allow_null=True)


class OfferListApi(APIView):
    """The offers waiting for your answer (broadcast and round-robin hunt groups)."""

    permission_classes = [IsAuthenticated, IsAgent]

    @extend_schema(responses={200: OfferOutput(many=True), **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        rows = selectors.pending_offers_for(agent=current_agent(request), now=timezone.now())
        return Response(OfferOutput(rows, many=True).data)


class OfferAcceptApi(APIView):
    """Accept one of your offers: the chat is yours (409 if another agent got it first or the
    offer lapsed)."""

    permission_classes = [IsAuthenticated, IsAgent]

    @extend_schema(request=None, responses={200: ChatOutput, **ERROR_RESPONSES})
    def post(self, request: Request, offer_id: int) -> Response:
        assignment = services.accept_offer(offer_id=offer_id, agent=current_agent(request))
        chat = ChatSession.objects.select_related(
            "route__stage", "route__tier", "route__agent"
        ).get(pk=assignment.chat_id)
        return Response(ChatOutput(chat).data)


class OfferDeclineApi(APIView):
    """Decline one of your offers (a round-robin hunt offers the chat to the next agent)."""

    permission_classes = [IsAuthenticated, IsAgent]

    @extend_schema(request=None, responses={204: None, **ERROR_RESPONSES})
    def post(self, request: Request, offer_id: int) -> Response:
        services.decline_offer(offer_id=offer_id, agent=current_agent(request))
        return Response(status=204)
