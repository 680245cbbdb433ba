from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse

from chat.admin import ReadOnlyAdmin
from escalation.models import (
    Agent,
    AgentGroup,
    Assignment,
    CannedReply,
    Escalation,
    EscalationOption,
    EscalationReason,
    MessageTemplate,
    Offer,
    OfflineMessage,
    Pipeline,
    PreChatField,
    QueueEntry,
    Site,
    Stage,
    Tag,
    Tier,
    Topic,
)
from escalation.selectors import fallback_loop


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin[Tier]):
    list_display = ["level", "name", "public_name"]


@admin.register(AgentGroup)
class AgentGroupAdmin(admin.ModelAdmin[AgentGroup]):
    list_display = [
        "name",
        "public_name",
        "tier",
        "routing_policy",
        "default_capacity",
        "auto_away_after_lapses",
    ]
    list_filter = ["tier", "routing_policy"]


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin[Agent]):
    list_display = ["display_name", "user", "presence", "capacity"]
    list_filter = ["presence", "groups"]
    filter_horizontal = ["groups"]
    search_fields = ["display_name", "user__username"]
    readonly_fields = [
        "presence_changed_at",
        "last_assigned_at",
        "last_offered_at",
        "lapses_in_a_row",
    ]


class TopicInline(admin.TabularInline[Topic, Pipeline]):
    model = Topic
    extra = 1


class PreChatFieldInline(admin.StackedInline[PreChatField, Pipeline]):
    """The questions the start form asks for this pipeline's topics, besides name, e-mail and
    message."""

    model = PreChatField
    extra = 0
    fields = [
        ("label", "key", "kind"),
        ("is_required", "position"),
        "help_text",
        "choices",
        ("pattern", "pattern_error"),
    ]
    prepopulated_fields = {"key": ["label"]}
    verbose_name = "pre-chat field"
    verbose_name_plural = "pre-chat fields (asked on the start form for this pipeline's topics)"


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin[Pipeline]):
    list_display = ["name", "is_active", "entry_stage", "asks_name", "requires_email"]
    inlines = [TopicInline, PreChatFieldInline]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "entry_stage":
            kwargs["queryset"] = Stage.objects.select_related("pipeline")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class StageForm(forms.ModelForm[Stage]):
    wait_timeout_seconds = forms.IntegerField(
        min_value=1,
        initial=300,
        help_text=Stage._meta.get_field("wait_timeout_seconds").help_text,
        error_messages={"min_value": "The wait-timeout must be at least 1 second."},
    )
    accept_timeout_seconds = forms.IntegerField(
        min_value=1,
        initial=20,
        help_text=Stage._meta.get_field("accept_timeout_seconds").help_text,
        error_messages={"min_value": "The agent accept timeout must be at least 1 second."},
    )
    still_searching_seconds = forms.IntegerField(
        min_value=0,
        initial=0,
        help_text=Stage._meta.get_field("still_searching_seconds").help_text,
        error_messages={
            "min_value": "The still-searching interval is a number of seconds; 0 turns it off."
        },
    )

    class Meta:
        model = Stage
        fields = "__all__"  # noqa: DJ007 - the admin edits every field of a stage
        error_messages = {
            "groups": {"required": "A stage must be served by at least one agent group."}
        }

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        loop = fallback_loop(
            stage=self.instance,
            fallback_action=cleaned.get("fallback_action", ""),
            fallback_stage=cleaned.get("fallback_stage"),
        )
        if loop:
            names = " → ".join(stage.name or "this stage" for stage in loop)
            self.add_error("fallback_stage", f"This fallback makes a loop: {names}.")
        return cleaned


class EscalationOptionInline(admin.StackedInline[EscalationOption, Stage]):
    model = EscalationOption
    fk_name = "stage"
    extra = 0
    filter_horizontal = ["target_agents"]


class StageTemplateInline(admin.TabularInline[MessageTemplate, Stage]):
    model = MessageTemplate
    fk_name = "stage"
    fields = ["event", "text"]
    extra = 0
    verbose_name = "message override"
    verbose_name_plural = "message overrides for this stage"


@admin.register(Stage)
class StageAdmin(admin.ModelAdmin[Stage]):
    form = StageForm
    list_display = [
        "name",
        "public_name",
        "pipeline",
        "tier",
        "wait_timeout_seconds",
        "fallback_action",
        "accept_timeout_seconds",
        "still_searching_seconds",
        "drop_stage",
    ]
    list_filter = ["pipeline", "tier"]
    filter_horizontal = ["groups"]
    inlines = [EscalationOptionInline, StageTemplateInline]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin[Tag]):
    """The tags agents may put on chats; a used tag is switched off rather than deleted."""

    list_display = ["name", "is_active", "position"]
    list_editable = ["is_active", "position"]
    list_filter = ["is_active"]


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin[Site]):
    """Websites that embed the chat widget. The snippet to paste shows once a site is saved."""

    list_display = ["name", "key", "pipeline", "is_active"]
    list_filter = ["is_active"]
    readonly_fields = ["created_at", "updated_at"]
    change_form_template = "admin/escalation/site/change_form.html"

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Site | None = None,
    ) -> Any:
        # The snippet names this server as the browser reached it (behind a proxy, as the
        # proxy headers say: see TRUSTED_PROXIES).
        context["widget_script_url"] = request.build_absolute_uri(reverse("widget-script"))
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(EscalationReason)
class EscalationReasonAdmin(admin.ModelAdmin[EscalationReason]):
    list_display = ["label", "is_active", "position"]


@admin.register(CannedReply)
class CannedReplyAdmin(admin.ModelAdmin[CannedReply]):
    """Group and global replies (an agent's personal ones are theirs to keep in the console, and
    shown here too)."""

    list_display = ["shortcut", "title", "scope", "group", "owner", "uses", "last_used_at"]
    list_filter = ["group"]
    search_fields = ["shortcut", "title", "text"]
    readonly_fields = ["uses", "last_used_at"]
    fields = ["shortcut", "title", "text", "group", "owner", "uses", "last_used_at"]


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin[MessageTemplate]):
    list_display = ["event", "pipeline", "stage", "text"]
    list_filter = ["event", "pipeline"]


@admin.register(Escalation)
class EscalationAdmin(ReadOnlyAdmin):
    list_display = ["chat", "from_tier", "from_agent", "target_label", "requested_at", "outcome"]
    list_filter = ["outcome", "requested_by", "from_tier", "warm"]


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ["chat", "agent", "tier", "started_at", "ended_at", "end_reason"]


@admin.register(QueueEntry)
class QueueEntryAdmin(ReadOnlyAdmin):
    list_display = ["chat", "stage", "entered_at", "deadline", "left_at", "outcome"]


@admin.register(Offer)
class OfferAdmin(ReadOnlyAdmin):
    list_display = ["chat", "agent", "policy", "stage", "offered_at", "status", "closed_reason"]
    list_filter = ["status", "policy"]


@admin.register(OfflineMessage)
class OfflineMessageAdmin(ReadOnlyAdmin):
    list_display = ["chat", "email", "created_at"]
