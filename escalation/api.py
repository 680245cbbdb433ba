"""REST API v1 for configuration (read-only), queues, presence and offers: the console's
services, over HTTP (chats and messages are in chat.api).

One APIView per operation, with nested Input/Output serializers. Errors have one shape
(`helpdesk.api_errors`): {"error": {"code", "message", "fields"?}}.
"""

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.api import ChatOutput
from chat.models import ChatSession
from escalation import frames, selectors, services
from escalation.models import (
    Agent,
    AgentGroup,
    Pipeline,
    Stage,
    Tier,
)
from escalation.permissions import CanReadChats, IsAgent, current_agent, sees_every_chat
from helpdesk.api_errors import ERROR_RESPONSES

# Ids are 64-bit in the database: a larger number is refused as invalid input, not a crash.
MAX_ID = 2**63 - 1


# --- Configuration (read-only), queues, presence ---------------------------------------------


class TierListApi(APIView):
    permission_classes = [IsAuthenticated, CanReadChats]

    class TierOutput(serializers.Serializer[Any]):
        id = serializers.IntegerField()
        level = serializers.IntegerField()
        name = serializers.CharField()
        public_name = serializers.CharField(source="public", help_text="What visitors are told.")

    @extend_schema(responses={200: TierOutput(many=True), **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        return Response(self.TierOutput(Tier.objects.order_by("level"), many=True).data)


class GroupListApi(APIView):
    permission_classes = [IsAuthenticated, CanReadChats]

    class GroupOutput(serializers.Serializer[Any]):
        id = serializers.IntegerField()
        name = serializers.CharField()
        public_name = serializers.CharField(source="public", help_text="What visitors are told.")
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
    public_name = serializers.CharField(help_text="What visitors are told.")
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
        "public_name": stage.public,
        "pipeline": stage.pipeline.name,
        "tier": stage.tier.level,
        "wait_timeout_seconds": stage.wait_timeout_seconds,
        "fallback_action": stage.fallback_action,
        "accept_timeout_seconds": stage.accept_timeout_seconds,
        "still_searching_seconds": stage.still_searching_seconds,
        "drop_stage": stage.drop_stage_id,
        "groups": [g.name for g in stage.groups.all()],
        "escalation_options": selectors.escalation_choices(stage=stage),
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
        rows = frames.pending_offers_for(agent=current_agent(request), now=timezone.now())
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
