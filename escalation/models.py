"""Where a chat waits and who holds it: tiers, groups, agents, pipelines, stages, escalation.

Configuration models (Tier ... MessageTemplate) are edited in Django admin; runtime models
(ChatRoute, QueueEntry, Assignment, Escalation, WaitEstimate, OfflineMessage) are written only by
`escalation.services`.
"""

import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from chat.models import ChatSession
from chat.realtime.origins import normal_origin
from escalation.messages import (
    placeholder_help_text,
    validate_reply_text,
    validate_template_text,
)

# A fallback chain is checked for loops in admin; at run time a chat stops after this many hops.
MAX_FALLBACK_HOPS = 5


PUBLIC_NAME_HELP = "What visitors are told, e.g. “Billing team”. Empty: the name above."


class Tier(models.Model):
    level = models.PositiveSmallIntegerField(unique=True, validators=[MinValueValidator(1)])
    name = models.CharField(max_length=60)
    public_name = models.CharField(max_length=60, blank=True, help_text=PUBLIC_NAME_HELP)

    class Meta:
        ordering = ["level"]

    def __str__(self) -> str:
        return f"{self.name} (Tier {self.level})"

    @property
    def public(self) -> str:
        return self.public_name or self.name


class RoutingPolicy(models.TextChoices):
    MANUAL = "manual", "Manual pick (agents take chats from the queue)"
    ROUND_ROBIN = "round_robin", "Round robin (assign to the agent idle longest)"
    LEAST_BUSY = "least_busy", "Least busy (assign to the agent with fewest chats)"
    BROADCAST = (
        "broadcast",
        "Broadcast (offer to every eligible agent; the first to accept gets it)",
    )
    HUNT = "hunt", "Round-robin hunt (offer to one agent at a time, in turn)"


# Policies that offer a chat to agents, who accept or decline it, instead of assigning it.
OFFER_POLICIES = (RoutingPolicy.BROADCAST, RoutingPolicy.HUNT)


class AgentGroup(models.Model):
    name = models.CharField(max_length=80, unique=True)
    public_name = models.CharField(max_length=80, blank=True, help_text=PUBLIC_NAME_HELP)
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="groups")
    routing_policy = models.CharField(
        max_length=20, choices=RoutingPolicy.choices, default=RoutingPolicy.MANUAL
    )
    default_capacity = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1)],
        help_text="Concurrent chats for a new member whose own capacity is not set.",
    )
    auto_away_after_lapses = models.PositiveSmallIntegerField(
        default=0,
        help_text=(
            "Round-robin hunt: set a member Away after this many offers in a row lapsed "
            "unanswered. 0: never."
        ),
    )

    class Meta:
        ordering = ["tier__level", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def public(self) -> str:
        return self.public_name or self.name

    def clean(self) -> None:
        if self.auto_away_after_lapses and self.routing_policy != RoutingPolicy.HUNT:
            raise ValidationError(
                {
                    "auto_away_after_lapses": (
                        "Only round-robin hunt offers lapse: choose that routing policy, or set "
                        "this to 0."
                    )
                }
            )


class Agent(models.Model):
    class Presence(models.TextChoices):
        ONLINE = "online", "Online"
        AWAY = "away", "Away"
        OFFLINE = "offline", "Offline"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent"
    )
    display_name = models.CharField(max_length=60, help_text="Shown to visitors, e.g. “Alex”.")
    groups = models.ManyToManyField(AgentGroup, related_name="agents", blank=True)
    capacity = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Maximum concurrent chats. Blank: the largest default capacity of its groups.",
    )
    presence = models.CharField(max_length=10, choices=Presence.choices, default=Presence.OFFLINE)
    presence_changed_at = models.DateTimeField(null=True, blank=True)
    # When a console socket of this agent was last seen (connect, ping, close); blank for agents
    # who never opened the console (API integrations), whom the sweep never signs out.
    console_seen_at = models.DateTimeField(null=True, blank=True)
    # Round robin gives the next chat to the eligible agent assigned longest ago.
    last_assigned_at = models.DateTimeField(null=True, blank=True)
    # Round-robin hunt offers the next chat to the eligible agent offered one longest ago.
    last_offered_at = models.DateTimeField(null=True, blank=True)
    # Offers that lapsed unanswered since this agent last accepted, declined or went online.
    lapses_in_a_row = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["display_name"]
        permissions = [("use_console", "Can work in the agent console")]

    def __str__(self) -> str:
        return self.display_name

    @property
    def is_online(self) -> bool:
        return self.presence == self.Presence.ONLINE


class Pipeline(models.Model):
    name = models.CharField(max_length=80, unique=True)
    is_active = models.BooleanField(default=True)
    asks_name = models.BooleanField(
        default=True,
        help_text="Ask the visitor's name on the start form (if not, the chat shows “Visitor”).",
    )
    requires_email = models.BooleanField(
        default=False, help_text="The visitor must give an e-mail address to start a chat."
    )
    entry_stage = models.ForeignKey(
        "Stage",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Where a new chat of this pipeline waits first (its Level 1 queue).",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.entry_stage is not None and self.entry_stage.pipeline_id != self.pk:
            raise ValidationError(
                {"entry_stage": "The entry stage must be a stage of this pipeline."}
            )
        if self.is_active and self.pk is not None and self.entry_stage_id is None:
            raise ValidationError({"entry_stage": "An active pipeline needs an entry stage."})


class Topic(models.Model):
    """What the visitor picks on the start form; it selects the pipeline."""

    name = models.CharField(max_length=80, unique=True)
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="topics")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


def new_site_key() -> str:
    """A site's public key: in the embed snippet for anyone to read, so it grants nothing by
    itself (the allowed origins do); random so that keys cannot be enumerated."""
    return secrets.token_urlsafe(12)


def parse_origins(text: str) -> list[str]:
    """Allowed origins, one per line, as `scheme://host[:port]` (kept as browsers send them: a
    default port dropped); ValueError names a bad line."""
    origins: list[str] = []
    for line in text.splitlines():
        line = line.strip().rstrip("/")
        if not line:
            continue
        parts = urlsplit(line)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path
            or parts.query
            or parts.fragment
            or parts.username
            or "*" in line
        ):
            raise ValueError(
                f"“{line}” is not an origin: write scheme and host, with a port if it is not "
                "the default, and nothing after, e.g. https://www.example.com"
            )
        origin = normal_origin(line)
        if not origin:
            raise ValueError(f"“{line}” has an invalid port.")
        if origin not in origins:
            origins.append(origin)
    return origins


class Site(models.Model):
    """A company website that embeds the chat widget: which pages may frame the visitor's chat
    (by their origins) and how the launcher looks there."""

    name = models.CharField(max_length=80, unique=True)
    key = models.CharField(
        max_length=32,
        unique=True,
        default=new_site_key,
        help_text="Goes in the embed snippet as data-site. Change it to revoke old snippets.",
    )
    allowed_origins = models.TextField(
        help_text="One per line, e.g. https://www.example.com (and http://localhost:8080 for "
        "testing). Only pages of these origins can show the chat; others get an error."
    )
    pipeline = models.ForeignKey(
        Pipeline,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sites",
        help_text="Chats started on this site go here (its topics are offered). Empty: every "
        "active pipeline's topics are offered.",
    )
    is_active = models.BooleanField(default=True)
    launcher_text = models.CharField(max_length=40, default="Chat with us")
    panel_title = models.CharField(max_length=60, default="Chat with us")
    colour = models.CharField(
        max_length=7,
        default="#1f5fbf",
        validators=[
            RegexValidator(r"^#[0-9a-fA-F]{6}$", "A colour is # and six hex digits, e.g. #1f5fbf.")
        ],
        help_text="The launcher's and the panel header's colour (white text goes on it).",
    )
    attachment_max_bytes = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Largest file a chat of this site may carry, in bytes. Empty: the server's "
        "ATTACHMENT_MAX_BYTES (which is also the most a site may allow).",
    )
    attachment_types = models.TextField(
        blank=True,
        help_text="The file types chats of this site may carry, one per line, e.g. image/png "
        "(some of the server's ATTACHMENT_TYPES). Empty: all of those.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def origins(self) -> list[str]:
        try:
            return parse_origins(self.allowed_origins)
        except ValueError:
            return []  # saved before validation existed or edited in SQL: nothing is allowed

    def clean(self) -> None:
        try:
            origins = parse_origins(self.allowed_origins)
        except ValueError as exc:
            raise ValidationError({"allowed_origins": str(exc)}) from None
        if not origins:
            raise ValidationError({"allowed_origins": "Give at least one origin."})
        self.allowed_origins = "\n".join(origins)
        if self.pipeline is not None and not self.pipeline.is_active:
            raise ValidationError({"pipeline": "This pipeline is not active."})
        errors: dict[str, str] = {}
        if self.attachment_max_bytes is not None and not (
            0 < self.attachment_max_bytes <= settings.ATTACHMENT_MAX_BYTES
        ):
            errors["attachment_max_bytes"] = (
                "Between 1 and the server's ATTACHMENT_MAX_BYTES "
                f"({settings.ATTACHMENT_MAX_BYTES:,} bytes)."
            )
        types = self.attachment_type_list
        unknown = [t for t in types if t not in settings.ATTACHMENT_TYPES]
        if unknown:
            allowed = ", ".join(settings.ATTACHMENT_TYPES)
            errors["attachment_types"] = f"Not among the server's types ({allowed}): {unknown[0]}"
        if errors:
            raise ValidationError(errors)
        self.attachment_types = "\n".join(types)

    @property
    def attachment_type_list(self) -> list[str]:
        return list(dict.fromkeys(t.strip().lower() for t in self.attachment_types.split() if t))


class PreChatField(models.Model):
    """A question a pipeline's start form asks besides name, e-mail and message; the answer is
    kept in the chat's `visitor_context["fields"]` under `key`."""

    class Kind(models.TextChoices):
        TEXT = "text", "Text"
        LONG_TEXT = "long_text", "Long text"
        EMAIL = "email", "E-mail"
        NUMBER = "number", "Number"
        CHOICE = "choice", "Choice from a list"
        CHECKBOX = "checkbox", "Checkbox"
        ORDER_NUMBER = "order_number", "Order number (text with a pattern)"
        DATE = "date", "Date"

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="prechat_fields")
    label = models.CharField(max_length=80)
    key = models.SlugField(
        max_length=40, help_text="Names the answer in the chat's data and exports (a-z, 0-9, -, _)."
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.TEXT)
    is_required = models.BooleanField(default=False)
    help_text = models.CharField(max_length=200, blank=True)
    choices = models.TextField(
        blank=True, help_text="Choice from a list: one option per line, in the order shown."
    )
    pattern = models.CharField(
        max_length=200,
        blank=True,
        help_text="Optional regular expression the whole answer must match, e.g. [A-Z]{2}-\\d{6}.",
    )
    pattern_error = models.CharField(
        max_length=200,
        blank=True,
        help_text="Shown when the answer does not match the pattern, e.g. “Like AB-123456”.",
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["pipeline", "position", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "key"],
                name="prechat_field_key_unique_per_pipeline",
                violation_error_message="This pipeline already has a field with this key.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.get_kind_display()})"

    @property
    def choice_list(self) -> list[str]:
        return [line.strip() for line in self.choices.splitlines() if line.strip()]

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.kind == self.Kind.CHOICE and not self.choice_list:
            errors["choices"] = "A choice field needs at least one option (one per line)."
        if self.pattern:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                errors["pattern"] = f"This is not a valid regular expression: {exc}."
        if self.kind == self.Kind.ORDER_NUMBER and not self.pattern:
            errors["pattern"] = "An order number field needs the pattern its numbers follow."
        if self.pattern and self.kind not in PATTERN_KINDS:
            errors["pattern"] = "Only text, e-mail and order number fields check a pattern."
        if errors:
            raise ValidationError(errors)


# The kinds whose answer is free text, which a pattern may constrain.
PATTERN_KINDS = (
    PreChatField.Kind.TEXT,
    PreChatField.Kind.LONG_TEXT,
    PreChatField.Kind.EMAIL,
    PreChatField.Kind.ORDER_NUMBER,
)


class FallbackAction(models.TextChoices):
    STAGE = "stage", "Move to another stage"
    GROUP = "group", "Wait for another agent group"
    PREVIOUS_TIER = "previous_tier", "Back to the previous tier"
    LEAVE_MESSAGE = "leave_message", "Offer the “leave a message” form"
    END = "end", "End the chat with a message (missed)"


class ColleagueHandover(models.TextChoices):
    COLD = "cold", "Cold only (the colleague takes the chat when accepting)"
    WARM = "warm", "Warm only (both agents in the chat until the colleague takes over)"
    EITHER = "either", "Cold or warm, as the agent chooses"


class Stage(models.Model):
    class AfterAgent(models.TextChoices):
        NOTHING = "nothing", "Nothing"
        SURVEY = "survey", "A satisfaction survey (1 to 5 and a comment)"
        LEAVE_MESSAGE = "leave_message", "The “leave a message” form"

    class NoAgentRule(models.TextChoices):
        QUEUE = "queue", "Queue anyway"
        FALLBACK = "fallback", "Fall back at once"

    class EscalatedOrder(models.TextChoices):
        ORIGINAL_WAIT = "original_wait", "Keep their place by original waiting time"
        PRIORITY = "priority", "Ahead of chats that were not escalated"

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(max_length=80)
    public_name = models.CharField(max_length=80, blank=True, help_text=PUBLIC_NAME_HELP)
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="stages")
    after_agent = models.CharField(
        max_length=20,
        choices=AfterAgent.choices,
        default=AfterAgent.NOTHING,
        help_text="What the visitor gets when a chat an agent took at this stage ends.",
    )
    requires_tag_at_end = models.BooleanField(
        default=False,
        help_text="An agent must tag a chat (what it was about) before ending it at this stage.",
    )
    groups = models.ManyToManyField(
        AgentGroup, related_name="stages", help_text="The agent groups that serve this queue."
    )
    position = models.PositiveSmallIntegerField(default=0)
    wait_timeout_seconds = models.PositiveIntegerField(
        default=300,
        validators=[MinValueValidator(1)],
        help_text="How long a chat may wait here before the fallback runs.",
    )
    fallback_action = models.CharField(
        max_length=20, choices=FallbackAction.choices, default=FallbackAction.LEAVE_MESSAGE
    )
    fallback_stage = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    fallback_group = models.ForeignKey(
        AgentGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    no_agent_rule = models.CharField(
        max_length=10,
        choices=NoAgentRule.choices,
        default=NoAgentRule.QUEUE,
        help_text="When a chat arrives and no agent of the serving groups is online.",
    )
    escalated_order = models.CharField(
        max_length=20, choices=EscalatedOrder.choices, default=EscalatedOrder.ORIGINAL_WAIT
    )
    accept_timeout_seconds = models.PositiveIntegerField(
        default=20,
        validators=[MinValueValidator(1)],
        help_text=(
            "Round-robin hunt: how long an agent has to accept an offer before it moves on to "
            "the next agent. (Broadcast offers stay open until someone accepts.)"
        ),
    )
    still_searching_seconds = models.PositiveIntegerField(
        default=0,
        help_text=(
            "While a chat waits here, tell the visitor the “still searching” message, with the "
            "place in line and wait, every this many seconds. 0: never."
        ),
    )
    drop_stage = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=(
            "Where the chat goes if the visitor leaves before an agent connects, e.g. a "
            "follow-up queue. Blank: the chat ends as abandoned."
        ),
    )

    allows_hand_to_colleague = models.BooleanField(
        default=False,
        help_text=(
            "The agent holding a chat here may hand it to any online agent of the same or a "
            "higher tier, who accepts or declines (the Escalate dialog lists them)."
        ),
    )
    colleague_handover = models.CharField(
        max_length=10,
        choices=ColleagueHandover.choices,
        default=ColleagueHandover.EITHER,
        help_text="How a chat may be handed to a colleague: at once (cold), or with both agents "
        "in the chat until the colleague takes over (warm).",
    )

    class Meta:
        ordering = ["pipeline__name", "position", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "name"], name="stage_name_unique_in_pipeline"
            )
        ]

    def __str__(self) -> str:
        return f"{self.pipeline.name} › {self.name}"

    @property
    def public(self) -> str:
        return self.public_name or self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.fallback_action == FallbackAction.STAGE:
            if self.fallback_stage_id is None:
                errors["fallback_stage"] = "Choose the stage to move to."
            elif self.pk is not None and self.fallback_stage_id == self.pk:
                errors["fallback_stage"] = "A stage cannot fall back to itself."
        if self.fallback_action == FallbackAction.GROUP and self.fallback_group_id is None:
            errors["fallback_group"] = "Choose the agent group to wait for."
        if self.pk is not None and self.drop_stage_id == self.pk:
            errors["drop_stage"] = (
                "A stage cannot be its own drop stage: choose another stage, or leave it blank "
                "to end the chat as abandoned."
            )
        if errors:
            raise ValidationError(errors)


class EscalationReason(models.Model):
    label = models.CharField(max_length=80, unique=True)
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "label"]

    def __str__(self) -> str:
        return self.label


class TargetKind(models.TextChoices):
    STAGE = "stage", "A pipeline stage"
    GROUP = "group", "An agent group"
    AGENTS = "agents", "A named list of agents"


class EscalationOption(models.Model):
    class NoAgentRule(models.TextChoices):
        REFUSE = "refuse", "Refuse, telling the agent nobody is available"
        QUEUE = "queue", "Queue anyway"
        FALLBACK = "fallback", "Fall back at once (the target stage's fallback)"

    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="escalation_options")
    label = models.CharField(max_length=80, help_text="Shown on the Escalate dialog.")
    keyword = models.SlugField(max_length=30, help_text="Typed after /escalate, e.g. “billing”.")
    target_kind = models.CharField(max_length=10, choices=TargetKind.choices)
    target_stage = models.ForeignKey(
        Stage, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    target_group = models.ForeignKey(
        AgentGroup, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    target_agents = models.ManyToManyField(Agent, blank=True, related_name="+")
    queue_stage = models.ForeignKey(
        Stage,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=(
            "For a group or agent-list target: the stage whose timeout, fallback and escalation "
            "options apply while the chat waits there. Blank: the target group's first stage."
        ),
    )
    note_required = models.BooleanField(default=True)
    no_agent_rule = models.CharField(
        max_length=10, choices=NoAgentRule.choices, default=NoAgentRule.REFUSE
    )
    is_warm = models.BooleanField(
        default=False,
        verbose_name="warm",
        help_text=(
            "Warm: the agent stays in the chat while the target's agents are offered it; the "
            "one who accepts joins the chat with the agent and takes over when ready. Nobody "
            "accepting in time: the chat stays with the agent."
        ),
    )
    accept_timeout_seconds = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(5), MaxValueValidator(3600)],
        help_text="Warm: how long the target's agents have to accept before the request lapses.",
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["stage", "position", "label"]
        constraints = [
            models.UniqueConstraint(
                fields=["stage", "keyword"], name="option_keyword_unique_in_stage"
            )
        ]

    def __str__(self) -> str:
        return f"{self.label} (/escalate {self.keyword})"

    def clean(self) -> None:
        required = {
            TargetKind.STAGE: ("target_stage", self.target_stage_id),
            TargetKind.GROUP: ("target_group", self.target_group_id),
        }
        if self.target_kind in required:
            field, value = required[TargetKind(self.target_kind)]
            if value is None:
                raise ValidationError({field: "Choose the target for this kind of option."})
        if self.target_kind == TargetKind.STAGE and self.target_stage_id == self.stage_id:
            raise ValidationError({"target_stage": "An option cannot escalate to its own stage."})


class MessageTemplate(models.Model):
    """A user-facing text. Rows without pipeline and stage are the defaults; a row for a pipeline
    or a stage overrides it there."""

    class Event(models.TextChoices):
        QUEUED = "queued", "Chat queued"
        POSITION = "position", "Queue position update"
        POSITION_NO_ESTIMATE = "position_no_estimate", "Queue position, no estimate yet"
        AGENT_JOINED = "agent_joined", "Agent joined"
        TRANSFER = "transfer", "Transfer notice"
        NEW_WAIT = "new_wait", "New wait estimate after a transfer"
        TIMEOUT = "timeout", "Wait timed out"
        FALLBACK = "fallback", "Fallback moved the chat"
        PREVIOUS_TIER = "previous_tier", "Returned to the previous tier"
        OFFLINE = "offline", "Nobody available, leave a message"
        MESSAGE_LEFT = "message_left", "Message left, thanks"
        AGENT_LEFT = "agent_left", "Agent left the chat"
        ENDED = "ended", "Chat ended"
        MISSED = "missed", "Chat ended, nobody available"
        STILL_SEARCHING = "still_searching", "Still searching for an agent"
        DROPPED = "dropped", "Visitor left the queue, moved to the drop stage"
        VISITOR_LEFT = "visitor_left", "Visitor left the chat (shown to the agent)"
        SURVEY = "survey", "After the agent: the satisfaction survey"
        AFTER_AGENT_MESSAGE = "after_agent_message", "After the agent: leave a message"
        WARM_REQUESTED = "warm_requested", "Warm hand-over: someone is being brought in"
        WARM_STAYED = "warm_stayed", "Warm hand-over: nobody came, the agent stays"
        WARM_REQUESTED_COLLEAGUE = (
            "warm_requested_colleague",
            "Warm hand-over to a named colleague: they are being brought in",
        )

    event = models.CharField(max_length=30, choices=Event.choices)
    pipeline = models.ForeignKey(
        Pipeline, null=True, blank=True, on_delete=models.CASCADE, related_name="templates"
    )
    stage = models.ForeignKey(
        Stage, null=True, blank=True, on_delete=models.CASCADE, related_name="templates"
    )
    text = models.TextField(help_text=placeholder_help_text())

    class Meta:
        ordering = ["event"]
        constraints = [
            models.UniqueConstraint(
                fields=["event"],
                condition=Q(pipeline__isnull=True, stage__isnull=True),
                name="template_one_default_per_event",
            ),
            models.UniqueConstraint(
                fields=["event", "pipeline"],
                condition=Q(pipeline__isnull=False, stage__isnull=True),
                name="template_one_per_event_and_pipeline",
            ),
            models.UniqueConstraint(
                fields=["event", "stage"],
                condition=Q(stage__isnull=False),
                name="template_one_per_event_and_stage",
            ),
        ]

    def __str__(self) -> str:
        scope = self.stage or self.pipeline or "default"
        return f"{self.get_event_display()} ({scope})"

    def clean(self) -> None:
        if self.stage_id is not None and self.pipeline_id is not None:
            raise ValidationError("Override for a pipeline or for a stage, not both.")
        try:
            validate_template_text(event=self.event, text=self.text)
        except ValidationError as exc:
            raise ValidationError({"text": exc.messages}) from exc


# --- Runtime ---------------------------------------------------------------------------------


class QueueEntry(models.Model):
    """One wait of a chat in one queue. The timer acts only on the entry it was armed for."""

    class Reason(models.TextChoices):
        START = "start", "Chat started"
        ESCALATION = "escalation", "Escalated"
        FALLBACK = "fallback", "Fallback"
        RETURNED = "returned", "Returned to the queue"
        DROPPED = "dropped", "Visitor left; drop stage"

    class Outcome(models.TextChoices):
        TAKEN = "taken", "Taken by an agent"
        TIMED_OUT = "timed_out", "Timed out"
        ABANDONED = "abandoned", "Visitor left"
        ENDED = "ended", "Ended"
        LEFT = "left", "Moved on"

    chat = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="queue_entries")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="entries")
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+")
    # Narrowing: when set, only this group, or only these agents, may take the chat.
    group = models.ForeignKey(
        AgentGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    agents = models.ManyToManyField(Agent, blank=True, related_name="+")
    reason = models.CharField(max_length=12, choices=Reason.choices)
    # Order in the queue: escalated chats keep their original wait or jump ahead (stage setting).
    priority = models.SmallIntegerField(default=0)
    waiting_since = models.DateTimeField()
    entered_at = models.DateTimeField()
    deadline = models.DateTimeField(null=True, blank=True)
    # When the visitor is next told "still searching" (the stage's interval; NULL: off). Its timer
    # task carries the time it was armed for, so a superseded or duplicate task does nothing.
    next_notice_at = models.DateTimeField(null=True, blank=True)
    left_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["stage", "left_at"], name="entry_stage_open"),
            models.Index(
                fields=["deadline"], condition=Q(left_at__isnull=True), name="entry_open_deadline"
            ),
            models.Index(fields=["outcome", "left_at"], name="entry_outcome_left"),
            # The friction report: chats started and dropped in a period.
            models.Index(fields=["entered_at"], name="entry_entered"),
            models.Index(
                fields=["next_notice_at"],
                condition=Q(left_at__isnull=True, next_notice_at__isnull=False),
                name="entry_open_next_notice",
            ),
        ]

    def __str__(self) -> str:
        return f"Chat {self.chat_id} waiting at {self.stage}"


class Tag(models.Model):
    """What a chat was about or how it ended ("Refund", "Bug report"), from a list admins keep;
    agents add them during or at the end of a chat, and the reports count by them."""

    name = models.CharField(max_length=40, unique=True)
    is_active = models.BooleanField(default=True, help_text="Inactive: kept on old chats only.")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class ChatTag(models.Model):
    chat = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="tags")
    tag = models.ForeignKey(Tag, on_delete=models.PROTECT, related_name="chat_tags")
    added_by = models.ForeignKey(
        "Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["chat", "tag"], name="chat_tag_once")]
        indexes = [models.Index(fields=["tag", "chat"], name="chat_tag_by_tag")]

    def __str__(self) -> str:
        return f"{self.tag} on chat {self.chat_id}"


class ChatRoute(models.Model):
    """Where a chat is now. Locked (with its chat) by every routing change."""

    chat = models.OneToOneField(ChatSession, on_delete=models.CASCADE, related_name="route")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="+")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+")
    entry = models.ForeignKey(
        QueueEntry, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="routes"
    )
    hops = models.PositiveSmallIntegerField(default=0, help_text="Fallbacks run so far.")
    # The website whose widget started the chat (none: Tierline's own chat page).
    site = models.ForeignKey(
        Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"Route of chat {self.chat_id}"


class Assignment(models.Model):
    class EndReason(models.TextChoices):
        RESOLVED = "resolved", "Resolved"
        ESCALATED = "escalated", "Escalated"
        TIMED_OUT = "timed_out", "Timed out"
        AGENT_LEFT = "agent_left", "Agent left"
        RETURNED = "returned", "Returned to the queue"
        VISITOR_LEFT = "visitor_left", "Visitor left"

    chat = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="assignments")
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="assignments")
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    group = models.ForeignKey(
        AgentGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=16, choices=EndReason.choices, blank=True)
    # Unread counts in the console: the last seq this agent has seen in the chat.
    last_read_seq = models.PositiveIntegerField(default=0)
    # The agent's first visitor-visible reply in this turn, set once by a conditional update
    # (escalation.services.posting); None in a turn where it was not its first reply in the chat.
    replied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["chat"],
                condition=Q(ended_at__isnull=True),
                name="one_open_assignment_per_chat",
            )
        ]
        indexes = [
            models.Index(fields=["agent", "ended_at"], name="assignment_agent_open"),
            models.Index(fields=["tier", "end_reason", "ended_at"], name="assignment_tier_outcome"),
            # The friction report: chats answered (taken) in a period.
            models.Index(fields=["started_at"], name="assignment_started"),
        ]

    def __str__(self) -> str:
        return f"{self.agent} on chat {self.chat_id}"


class Escalation(models.Model):
    class RequestedBy(models.TextChoices):
        COMMAND = "command", "/escalate command"
        BUTTON = "button", "Escalate button"
        API = "api", "API"
        TIMEOUT = "timeout", "Wait timeout"
        FALLBACK = "fallback", "Fallback"

    class Outcome(models.TextChoices):
        WAITING = "waiting", "Waiting"
        TAKEN = "taken", "Taken"
        TIMED_OUT = "timed_out", "Timed out"
        ABANDONED = "abandoned", "Visitor left"
        ENDED = "ended", "Ended"
        # A hand-over the first agent waited in the chat for (warm, or to a colleague):
        DECLINED = "declined", "Declined; stayed with the agent"
        CANCELLED = "cancelled", "Cancelled by the agent"

    chat = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="escalations")
    from_stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    from_tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+")
    from_agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    from_group = models.ForeignKey(
        AgentGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    option = models.ForeignKey(
        EscalationOption, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_kind = models.CharField(max_length=10, choices=TargetKind.choices)
    target_label = models.CharField(max_length=120)
    to_stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    to_tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+")
    to_group = models.ForeignKey(
        AgentGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # None for a hand-over to waiting agents (see Handover): the chat never waits in a queue.
    entry = models.ForeignKey(
        QueueEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField(max_length=80, blank=True)
    note = models.TextField(blank=True)
    requested_by = models.CharField(max_length=10, choices=RequestedBy.choices)
    requested_at = models.DateTimeField(db_index=True)
    taken_at = models.DateTimeField(null=True, blank=True)
    taken_by = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.WAITING)
    # The chat had left this tier before (by any escalation): the reports' one-row-per-chat list
    # looks for an earlier row only when this is set, instead of grouping every row.
    repeat = models.BooleanField(default=False)
    # Warm: the first agent stayed in the chat until the receiver took over (or nobody did).
    warm = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["from_tier", "requested_at"], name="escalation_tier_time")]
        permissions = [("view_reports", "Can read the reports")]

    def __str__(self) -> str:
        return f"Chat {self.chat_id} → {self.target_label}"


class WaitEstimate(models.Model):
    """Every estimate shown to a visitor, so predicted and actual waits can be compared."""

    entry = models.ForeignKey(QueueEntry, on_delete=models.CASCADE, related_name="estimates")
    position = models.PositiveIntegerField()
    low_seconds = models.PositiveIntegerField(null=True, blank=True)
    high_seconds = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(db_index=True)  # the report's period

    def __str__(self) -> str:
        return f"Estimate for entry {self.entry_id}: #{self.position}"


class Offer(models.Model):
    """A waiting chat offered to one agent (broadcast: one row per agent at once; round-robin
    hunt: one pending row at a time). The hunt's accept deadline is on the row; its timer acts
    only while the row is still pending."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for an answer"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        LAPSED = "lapsed", "Lapsed (no answer in time)"
        WITHDRAWN = "withdrawn", "Withdrawn (taken by another, left the queue, agent away)"

    entry = models.ForeignKey(QueueEntry, on_delete=models.CASCADE, related_name="offers")
    chat = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="offers")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="offers")
    group = models.ForeignKey(
        AgentGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    policy = models.CharField(max_length=20, choices=RoutingPolicy.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    offered_at = models.DateTimeField()
    deadline = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_reason = models.CharField(max_length=20, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["entry", "agent"],
                condition=Q(status="pending"),
                name="offer_one_pending_per_agent_and_entry",
            ),
            models.UniqueConstraint(
                fields=["entry"],
                condition=Q(status="pending", policy="hunt"),
                name="offer_one_pending_hunt_per_entry",
            ),
        ]
        indexes = [
            models.Index(
                fields=["deadline"], condition=Q(status="pending"), name="offer_pending_deadline"
            ),
            models.Index(fields=["agent", "status"], name="offer_agent_status"),
            models.Index(fields=["offered_at"], name="offer_offered_at"),
        ]

    def __str__(self) -> str:
        return f"Chat {self.chat_id} offered to {self.agent} ({self.status})"


class OfflineMessage(models.Model):
    """What a visitor left on the “leave a message” form when nobody could take the chat."""

    chat = models.OneToOneField(
        ChatSession, on_delete=models.CASCADE, related_name="offline_message"
    )
    email = models.EmailField(blank=True)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Message left in chat {self.chat_id}"


SHORTCUT_HELP = "Typed as #shortcut in the console's reply box: letters, digits, - and _."


class CannedReply(models.Model):
    """A saved answer agents insert by typing #shortcut in the console: an agent's own
    (personal), a group's (its members'), or everyone's (global: neither owner nor group)."""

    shortcut = models.SlugField(max_length=40, help_text=SHORTCUT_HELP)
    title = models.CharField(max_length=80)
    text = models.TextField(
        validators=[validate_reply_text],
        help_text="Placeholders: {visitor} = the visitor's name; {agent} = the agent's name.",
    )
    owner = models.ForeignKey(
        Agent,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="canned_replies",
        help_text="Set for a personal reply.",
    )
    group = models.ForeignKey(
        AgentGroup,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="canned_replies",
        help_text="Set for a reply of one group's members.",
    )
    uses = models.PositiveIntegerField(default=0, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["shortcut", "pk"]
        verbose_name_plural = "canned replies"
        constraints = [
            models.CheckConstraint(
                condition=Q(owner__isnull=True) | Q(group__isnull=True),
                name="canned_reply_personal_or_group",
                violation_error_message="A reply is personal or a group's, not both.",
            ),
            models.UniqueConstraint(
                fields=["owner", "shortcut"],
                condition=Q(owner__isnull=False),
                name="canned_reply_personal_shortcut",
                violation_error_message="You already have a reply with this shortcut.",
            ),
            models.UniqueConstraint(
                fields=["group", "shortcut"],
                condition=Q(group__isnull=False),
                name="canned_reply_group_shortcut",
                violation_error_message="This group already has a reply with this shortcut.",
            ),
            models.UniqueConstraint(
                fields=["shortcut"],
                condition=Q(owner__isnull=True, group__isnull=True),
                name="canned_reply_global_shortcut",
                violation_error_message="A global reply already has this shortcut.",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.shortcut} ({self.scope})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.shortcut = self.shortcut.lower()  # typed in any case, matched in lower case
        super().save(*args, **kwargs)

    def clean(self) -> None:
        self.shortcut = self.shortcut.lower()
        if len(self.text) > settings.MESSAGE_MAX_CHARS:
            raise ValidationError(
                {"text": f"A reply is at most {settings.MESSAGE_MAX_CHARS} characters."}
            )

    @property
    def scope(self) -> str:
        if self.owner_id is not None:
            return "personal"
        return "group" if self.group_id is not None else "global"


class SurveyAnswer(models.Model):
    """A visitor's rating of a chat, asked for when a chat an agent took ended at a stage whose
    "after the agent" is the survey. It counts for the last agent who held the chat (and that
    assignment's tier and group)."""

    chat = models.OneToOneField(ChatSession, on_delete=models.CASCADE, related_name="survey")
    assignment = models.ForeignKey(
        Assignment, null=True, on_delete=models.SET_NULL, related_name="survey_answers"
    )
    rating = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    comment = models.TextField(blank=True)
    answered_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"Chat {self.chat_id} rated {self.rating}/5"


class Consult(models.Model):
    """An internal thread on a chat between the agent holding it and a colleague (`agent`) or a
    group's members (`group`), never shown to the visitor. Its messages are the chat's internal
    messages with event "consult", so they are numbered, replayed and reported with the rest of
    the transcript. While open, the colleague (for a group: every member until one answers, then
    that one) may read the chat and write to the thread; it closes when either side closes it or
    when the holder's turn with the chat ends (the chat ended or was handed over)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    class CloseReason(models.TextChoices):
        CLOSED = "closed", "Closed by a participant"
        CHAT_ENDED = "chat_ended", "The chat ended"
        HANDED_OVER = "handed_over", "The chat was handed over"

    chat = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="consults")
    asked_by = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="consults_asked")
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.PROTECT, related_name="consults_received"
    )
    group = models.ForeignKey(
        AgentGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="consults"
    )
    # The colleague who answered first; for a group, from then on the only member who may read.
    answered_by = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.PROTECT, related_name="consults_answered"
    )
    question = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    close_reason = models.CharField(max_length=16, choices=CloseReason.choices, blank=True)
    closed_by = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(agent__isnull=False, group__isnull=True)
                | Q(agent__isnull=True, group__isnull=False),
                name="consult_agent_or_group",
                violation_error_message="A consult asks one colleague or one group.",
            ),
            # One thread at a time per chat: the holder's pane shows it, both sides close it.
            models.UniqueConstraint(
                fields=["chat"], condition=Q(status="open"), name="one_open_consult_per_chat"
            ),
        ]
        indexes = [
            models.Index(fields=["agent", "status"], name="consult_agent_status"),
            models.Index(fields=["group", "status"], name="consult_group_status"),
        ]

    def __str__(self) -> str:
        return f"Consult {self.pk} on chat {self.chat_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    @property
    def target_label(self) -> str:
        if self.agent is not None:
            return self.agent.display_name
        return self.group.name if self.group is not None else ""


class Handover(models.Model):
    """A hand-over that waits for its receiver while the first agent keeps the chat: a warm
    escalation, or a hand to a colleague (cold or warm). The receivers are offered it
    (HandoverOffer); the first to accept joins the chat (warm) or takes it (cold). A warm
    receiver takes over when ready; until then both agents are in the chat. Its deadline is on
    the row; its timer acts only while the row is still pending."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a receiver"
        JOINED = "joined", "Receiver joined; both agents in the chat"
        COMPLETED = "completed", "Taken over by the receiver"
        TIMED_OUT = "timed_out", "Nobody accepted in time"
        DECLINED = "declined", "Declined"
        CANCELLED = "cancelled", "Cancelled"
        ENDED = "ended", "The chat ended"

    OPEN = (Status.PENDING, Status.JOINED)

    chat = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="handovers")
    escalation = models.OneToOneField(Escalation, on_delete=models.CASCADE, related_name="handover")
    from_agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="+")
    warm = models.BooleanField(default=True)
    to_colleague = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    deadline = models.DateTimeField()
    receiver = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    joined_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_reason = models.CharField(max_length=40, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["chat"],
                condition=Q(status__in=["pending", "joined"]),
                name="handover_one_open_per_chat",
            )
        ]
        indexes = [
            models.Index(
                fields=["deadline"], condition=Q(status="pending"), name="handover_pending_deadline"
            ),
            models.Index(
                fields=["receiver"], condition=Q(status="joined"), name="handover_joined_receiver"
            ),
        ]

    def __str__(self) -> str:
        return f"Hand-over of chat {self.chat_id} ({self.status})"


class HandoverOffer(models.Model):
    """A pending hand-over offered to one receiver, who accepts or declines it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for an answer"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        WITHDRAWN = "withdrawn", "Withdrawn (taken by another, lapsed, cancelled, chat ended)"

    handover = models.ForeignKey(Handover, on_delete=models.CASCADE, related_name="offers")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="handover_offers")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    offered_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["handover", "agent"], name="handover_offer_once_per_agent"
            )
        ]
        indexes = [models.Index(fields=["agent", "status"], name="handover_offer_agent_status")]

    def __str__(self) -> str:
        return f"Hand-over {self.handover_id} offered to {self.agent} ({self.status})"
