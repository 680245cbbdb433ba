"""Reads of escalation configuration and state."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied
from django.db.models import (
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    Window,
)
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from chat.attachments import AttachmentLimits, site_limits
from chat.models import ChatSession, FlowEvent
from chat.realtime.reads import Read, run_together, table
from escalation import templates
from escalation.estimates import WaitRange, estimate_wait
from escalation.messages import render_text
from escalation.models import (
    OFFER_POLICIES,
    Agent,
    AgentGroup,
    Assignment,
    CannedReply,
    ChatRoute,
    Consult,
    EscalationOption,
    FallbackAction,
    Handover,
    HandoverOffer,
    OfflineMessage,
    Pipeline,
    PreChatField,
    QueueEntry,
    RoutingPolicy,
    Site,
    Stage,
    SurveyAnswer,
    Tag,
    TargetKind,
    Tier,
    Topic,
)


def start_form_pipelines(*, pipeline_id: int | None = None) -> list[Pipeline]:
    """The pipelines a visitor may start a chat in (active, with an entry stage), each with its
    topics and pre-chat fields prefetched, for the start form; `pipeline_id` keeps only that
    one (a start page limited to one pipeline)."""
    pipelines = Pipeline.objects.filter(is_active=True, entry_stage__isnull=False).prefetch_related(
        "topics",
        Prefetch("prechat_fields", queryset=PreChatField.objects.order_by("position", "pk")),
    )
    if pipeline_id is not None:
        pipelines = pipelines.filter(pk=pipeline_id)
    return list(pipelines)


def fallback_loop(
    *, stage: Stage, fallback_action: str, fallback_stage: Stage | None
) -> list[Stage]:
    """The stages of the loop that `stage` would close with this fallback, or [] if none.

    Only stage-to-stage fallbacks chain by configuration; "back to the previous tier" depends on
    the chat's history and is bounded at run time by MAX_FALLBACK_HOPS.
    """
    if fallback_action != FallbackAction.STAGE or fallback_stage is None:
        return []
    if fallback_stage.pk == stage.pk:
        return []  # Stage.clean says "cannot fall back to itself"
    path = [stage]
    seen = {stage.pk}
    current: Stage | None = fallback_stage
    while current is not None:
        if current.pk == stage.pk:
            return [*path, stage]
        if current.pk in seen:  # an older loop further down the chain
            return []
        path.append(current)
        seen.add(current.pk)
        current = (
            current.fallback_stage if current.fallback_action == FallbackAction.STAGE else None
        )
    return []


CONSOLE_PERMISSION = "use_console"  # escalation.Agent's permission to work in the console


def may_use_console_q() -> Q:
    """Agents whose user may work in the console (the role, directly or by a group, or a
    superuser); the user's `is_active` is checked apart."""
    return (
        Q(user__is_superuser=True)
        | Q(user__groups__permissions__codename=CONSOLE_PERMISSION)
        | Q(user__user_permissions__codename=CONSOLE_PERMISSION)
    )


def get_agent_for_user(user: User | AnonymousUser) -> Agent:
    """The agent profile of a console user; PermissionDenied for anyone who is not an agent."""
    if (
        not user.is_authenticated
        or not user.is_active
        or not user.has_perm("escalation.use_console")
    ):
        raise PermissionDenied("Only agents can use the console.")
    try:
        return Agent.objects.get(user=user)
    except Agent.DoesNotExist:
        raise PermissionDenied("This account has no agent profile.") from None


def effective_capacity(agent: Agent) -> int:
    if agent.capacity:
        return agent.capacity
    group_default = agent.groups.aggregate(m=Max("default_capacity"))["m"]
    return int(group_default or 1)


def agent_load(agent: Agent) -> int:
    """The chats the agent holds, and those it joined to take over (warm): both take a place."""
    held = Assignment.objects.filter(agent=agent, ended_at__isnull=True).count()
    return held + Handover.objects.filter(receiver=agent, status=Handover.Status.JOINED).count()


def open_entry_q() -> Q:
    return Q(left_at__isnull=True)


def stages_served_by(agent: Agent) -> QuerySet[Stage]:
    return Stage.objects.filter(groups__agents=agent).distinct()


def can_serve(*, agent: Agent, entry: QueueEntry) -> bool:
    """Whether `agent` may take the chat waiting in `entry` (membership, not presence or load)."""
    if entry.agents.exists():
        return entry.agents.filter(pk=agent.pk).exists()
    if entry.group_id is not None:
        return agent.groups.filter(pk=entry.group_id).exists()
    return agent.groups.filter(stages=entry.stage_id).exists()


def serving_group_for(*, agent: Agent, entry: QueueEntry) -> AgentGroup | None:
    groups = agent.groups.all()
    if entry.group_id is not None:
        return groups.filter(pk=entry.group_id).first()
    return groups.filter(stages=entry.stage_id).order_by("name").first()


def with_load_and_capacity(agents: QuerySet[Agent]) -> QuerySet[Agent]:
    """`agents` annotated with `load` (chats held now) and `cap` (the capacity that applies: the
    agent's own, else the largest default of its groups, else 1), in the same query."""
    load = (
        Assignment.objects.filter(agent=OuterRef("pk"), ended_at__isnull=True)
        .order_by()
        .values("agent")
        .annotate(n=Count("pk"))
        .values("n")
    )
    joined = (
        Handover.objects.filter(receiver=OuterRef("pk"), status=Handover.Status.JOINED)
        .order_by()
        .values("receiver")
        .annotate(n=Count("pk"))
        .values("n")
    )
    group_capacity = (
        AgentGroup.objects.filter(agents=OuterRef("pk"))
        .order_by("-default_capacity")
        .values("default_capacity")[:1]
    )
    return agents.annotate(
        load=Coalesce(Subquery(load, output_field=IntegerField()), Value(0))
        + Coalesce(Subquery(joined, output_field=IntegerField()), Value(0)),
        cap=Coalesce("capacity", Subquery(group_capacity), Value(1)),
    )


def available_agents() -> QuerySet[Agent]:
    """Online, active agents under capacity, annotated with `load` and `free`."""
    online = Agent.objects.filter(presence=Agent.Presence.ONLINE, user__is_active=True)
    return with_load_and_capacity(online).annotate(free=F("cap") - F("load")).filter(free__gt=0)


def candidates_for(*, entry: QueueEntry, groups: QuerySet[AgentGroup]) -> QuerySet[Agent]:
    """Available agents who may take `entry`, restricted to `groups` (the automatic ones)."""
    agents = available_agents()
    narrowed = list(entry.agents.values_list("pk", flat=True))
    if narrowed:
        return agents.filter(pk__in=narrowed)
    if entry.group_id is not None:
        return agents.filter(groups=entry.group_id).distinct()
    return agents.filter(groups__in=groups).distinct()


# A stage's queue order: priority first, then the longest waiting (queue_position counts by it).
QUEUE_ORDER = ("-priority", "waiting_since", "pk")


def waiting_entries(*, stage_id: int) -> QuerySet[QueueEntry]:
    """The open entries of a stage in queue order: priority first, then the longest waiting."""
    return (
        QueueEntry.objects.filter(stage_id=stage_id, left_at__isnull=True)
        .select_related("chat", "tier", "group")
        .order_by(*QUEUE_ORDER)
    )


def queue_position(*, entry: QueueEntry) -> int:
    ahead = QueueEntry.objects.filter(stage_id=entry.stage_id, left_at__isnull=True).filter(
        Q(priority__gt=entry.priority)
        | Q(priority=entry.priority, waiting_since__lt=entry.waiting_since)
        | Q(priority=entry.priority, waiting_since=entry.waiting_since, pk__lt=entry.pk)
    )
    return ahead.count() + 1


def recent_take_times(*, stage_id: int, now: datetime, window_seconds: int) -> list[datetime]:
    since = now - timedelta(seconds=window_seconds)
    taken = QueueEntry.objects.filter(
        stage_id=stage_id, outcome=QueueEntry.Outcome.TAKEN, left_at__gte=since
    ).values_list("left_at", flat=True)
    return [at for at in taken if at is not None]


def wait_estimate(*, entry: QueueEntry, position: int, now: datetime) -> WaitRange | None:
    window = settings.WAIT_ESTIMATE_WINDOW_SECONDS
    return estimate_wait(
        position=position,
        take_times=recent_take_times(stage_id=entry.stage_id, now=now, window_seconds=window),
        now=now,
        window_seconds=window,
    )


def template_text(*, event: str, stage: Stage | None) -> str:
    """The text for `event`: the stage's override, else its pipeline's, else the default."""
    return templates.template_text(
        event=event,
        stage_id=stage.pk if stage is not None else None,
        pipeline_id=stage.pipeline_id if stage is not None else None,
    )


def render_template(*, event: str, stage: Stage | None, **values: str) -> str:
    return render_text(template_text(event=event, stage=stage), values)


def team_name(entry: QueueEntry) -> str:
    if entry.group_id is not None and entry.group is not None:
        return entry.group.name
    return entry.stage.name


def public_team(entry: QueueEntry) -> str:
    """`team_name` as visitors are told it (the group's or stage's public name)."""
    if entry.group_id is not None and entry.group is not None:
        return entry.group.public
    return entry.stage.public


def tier_path(*, chat_id: int) -> list[str]:
    """The tiers a chat has waited at, in order, without repeats in a row (e.g. L1 → L2)."""
    return tier_paths(chat_ids=[chat_id])[chat_id]


def tier_paths(*, chat_ids: list[int]) -> dict[int, list[str]]:
    """`tier_path` of many chats in one query."""
    paths: dict[int, list[str]] = {chat_id: [] for chat_id in chat_ids}
    rows = (
        QueueEntry.objects.filter(chat_id__in=chat_ids)
        .order_by("chat_id", "entered_at", "pk")
        .values_list("chat_id", "tier__name")
    )
    for chat_id, name in rows:
        path = paths[chat_id]
        if not path or path[-1] != name:
            path.append(name)
    return paths


def queue_positions(*, entries: list[QueueEntry]) -> dict[int, int]:
    """`queue_position` of many open entries (entry id -> place) in one query: each entry's
    row number in its stage's queue order."""
    stage_ids = {entry.stage_id for entry in entries}
    if not stage_ids:
        return {}
    wanted = {entry.pk for entry in entries}
    ranked = (
        QueueEntry.objects.filter(stage_id__in=stage_ids, left_at__isnull=True)
        .annotate(
            place=Window(
                RowNumber(),
                partition_by=[F("stage_id")],
                order_by=QUEUE_ORDER,
            )
        )
        .values_list("pk", "place")
    )
    return {pk: place for pk, place in ranked if pk in wanted}


def agent_history(*, agent: Agent) -> QuerySet[Assignment]:
    """Every chat the agent held that is over for them, newest first."""
    return (
        Assignment.objects.filter(agent=agent, ended_at__isnull=False)
        .select_related("chat", "tier", "stage")
        .order_by("-ended_at", "-pk")
    )


def agent_may_view_chat(*, agent: Agent, chat_id: int) -> bool:
    """Agents see chats they hold or held, chats waiting in their queues, chats handed over to
    them (offered, while their offer is open; or joined to take over), and chats they are
    consulted on while the consult is open."""
    if Assignment.objects.filter(agent=agent, chat_id=chat_id).exists():
        return True
    if Handover.objects.filter(
        chat_id=chat_id, receiver=agent, status=Handover.Status.JOINED
    ).exists():
        return True
    if HandoverOffer.objects.filter(
        agent=agent,
        handover__chat_id=chat_id,
        handover__status=Handover.Status.PENDING,
        status=HandoverOffer.Status.PENDING,
    ).exists():
        return True
    entry = QueueEntry.objects.filter(chat_id=chat_id, left_at__isnull=True).first()
    if entry is not None and can_serve(agent=agent, entry=entry):
        return True
    return consulted_on_now(agent=agent, chat_id=chat_id)


def open_assignment_chat_ids(*, agent: Agent) -> list[int]:
    return list(
        Assignment.objects.filter(agent=agent, ended_at__isnull=True).values_list(
            "chat_id", flat=True
        )
    )


def joined_chat_ids(*, agent: Agent) -> list[int]:
    """The chats the agent joined to take over (warm), not yet its own."""
    return list(
        Handover.objects.filter(receiver=agent, status=Handover.Status.JOINED).values_list(
            "chat_id", flat=True
        )
    )


def followed_chat_ids(*, agent: Agent) -> list[int]:
    """The chats a console follows for the agent: those it holds and those it joined."""
    return open_assignment_chat_ids(agent=agent) + joined_chat_ids(agent=agent)


def open_handover(*, chat_id: int) -> Handover | None:
    return (
        Handover.objects.select_related("escalation", "from_agent", "receiver")
        .filter(chat_id=chat_id, status__in=Handover.OPEN)
        .first()
    )


def colleagues_for(*, agent: Agent, tier: Tier) -> list[dict[str, Any]]:
    """Who an agent at `tier` may hand a chat to: the other online agents with free capacity in
    a group of the same or a higher tier, as rows of `pk`, `display_name`, `chats` (held and
    joined), `seats` (capacity) and `level` (their lowest such tier's level)."""
    rows = (
        available_agents()
        .exclude(pk=agent.pk)
        .filter(groups__tier__level__gte=tier.level)
        .values("pk", "display_name")
        .annotate(chats=F("load"), seats=F("cap"))
        .annotate(level=Min("groups__tier__level", filter=Q(groups__tier__level__gte=tier.level)))
        .order_by("display_name", "pk")
    )
    return [dict(row) for row in rows]


def served_stage_ids(*, agent: Agent) -> list[int]:
    return list(stages_served_by(agent).values_list("pk", flat=True))


def left_messages() -> QuerySet[OfflineMessage]:
    return OfflineMessage.objects.select_related("chat", "chat__route__stage").order_by(
        "-created_at", "-pk"
    )


def stages_to_dispatch_for(*, agent: Agent) -> list[int]:
    """Stages where a change in this agent's load or presence may let a waiting chat be assigned:
    the stages its groups serve, and those where a chat waits narrowed to its groups or to it."""
    served = set(stages_served_by(agent).values_list("pk", flat=True))
    narrowed = QueueEntry.objects.filter(left_at__isnull=True).filter(
        Q(group__in=agent.groups.all()) | Q(agents=agent)
    )
    return sorted(served | set(narrowed.values_list("stage_id", flat=True)))


# --- Routing ------------------------------------------------------------------------------------
AUTOMATIC_POLICIES = (RoutingPolicy.ROUND_ROBIN, RoutingPolicy.LEAST_BUSY)
ROUTED_POLICIES = (*AUTOMATIC_POLICIES, *OFFER_POLICIES)


def routing_of(entry: QueueEntry) -> tuple[str | None, QuerySet[AgentGroup]]:
    """How the waiting chat is routed: the policy and the groups that route it that way.

    A chat narrowed to one group follows that group's policy (a manual group picks its chats
    itself); otherwise the first routed group of the stage (by name) sets the policy, and its
    groups of that kind route it (assigning policies mix: round robin with least busy)."""
    if entry.group_id is not None:
        groups = AgentGroup.objects.filter(pk=entry.group_id, routing_policy__in=ROUTED_POLICIES)
    else:
        groups = entry.stage.groups.filter(routing_policy__in=ROUTED_POLICIES).order_by("name")
    policy = groups.values_list("routing_policy", flat=True).first()
    if policy in OFFER_POLICIES:
        return policy, groups.filter(routing_policy=policy)
    return policy, groups.filter(routing_policy__in=AUTOMATIC_POLICIES)


# --- Escalation targets ---------------------------------------------------------------------------
@dataclass
class Target:
    """Where a chat goes: a stage's queue, optionally narrowed to one group or to named agents."""

    stage: Stage
    tier: Tier
    label: str
    kind: str = TargetKind.STAGE
    group: AgentGroup | None = None
    agents: list[Agent] = field(default_factory=list)
    public_label: str = ""  # what the visitor is told, when not the group's or stage's

    @property
    def public(self) -> str:
        if self.public_label:
            return self.public_label
        return self.group.public if self.group is not None else self.stage.public


def resolve_option(option: EscalationOption) -> Target:
    if option.target_kind == TargetKind.STAGE and option.target_stage is not None:
        stage = option.target_stage
        return Target(stage=stage, tier=stage.tier, label=stage.name)
    if option.target_kind == TargetKind.GROUP and option.target_group is not None:
        group = option.target_group
        stage = option.queue_stage or group.stages.order_by("position").first() or option.stage
        return Target(
            stage=stage, tier=group.tier, label=group.name, kind=TargetKind.GROUP, group=group
        )
    stage = option.queue_stage or option.stage
    return Target(
        stage=stage,
        tier=stage.tier,
        label=option.label,
        kind=TargetKind.AGENTS,
        agents=list(option.target_agents.all()),
    )


def handover_receivers(target: Target, *, exclude: Agent) -> list[Agent]:
    """The target's agents who are online with free capacity, but the one handing over."""
    agents = available_agents().exclude(pk=exclude.pk)
    if target.agents:
        agents = agents.filter(pk__in=[a.pk for a in target.agents])
    elif target.group is not None:
        agents = agents.filter(groups=target.group)
    else:
        agents = agents.filter(groups__stages=target.stage)
    return list(agents.distinct().order_by("pk"))


def available_count(target: Target) -> int:
    """How many agents of the target are online with free capacity."""
    agents = available_agents()
    if target.agents:
        return agents.filter(pk__in=[a.pk for a in target.agents]).count()
    if target.group is not None:
        return agents.filter(groups=target.group).distinct().count()
    return agents.filter(groups__stages=target.stage).distinct().count()


def entry_has_available_agent(entry: QueueEntry) -> bool:
    target = Target(
        stage=entry.stage,
        tier=entry.tier,
        label="",
        group=entry.group,
        agents=list(entry.agents.all()),
    )
    return available_count(target) > 0


def escalation_choices(*, stage: Stage) -> list[dict[str, object]]:
    """The targets an agent at `stage` may pick, with how many agents there are online and free."""
    rows = []
    for option in stage.escalation_options.select_related(
        "target_stage__tier", "target_group__tier", "queue_stage__tier", "stage__tier"
    ).order_by("position", "label"):
        target = resolve_option(option)
        rows.append(
            {
                "keyword": option.keyword,
                "label": option.label,
                "kind": option.target_kind,
                "team": target.label,
                "tier": target.tier.name,
                "available": available_count(target),
                "note_required": option.note_required,
                "no_agent_rule": option.no_agent_rule,
                "warm": option.is_warm,
            }
        )
    return rows


def keywords_help(stage: Stage) -> str:
    choices = escalation_choices(stage=stage)
    if not choices:
        return "No escalation targets are configured for this stage."
    listed = "; ".join(
        f"{c['keyword']} = {c['label']} ({c['tier']}, {c['available']} online and free)"
        for c in choices
    )
    return f"Usage: /escalate <keyword> <hand-over note>. Targets: {listed}."


def offers_message_form(chat: ChatSession) -> bool:
    """Whether the visitor's page offers the "leave a message" form: a fallback offered it (the
    chat was missed), or the stage offers it after the agent (the chat ended), and no message
    was left yet."""
    if chat.status == ChatSession.Status.MISSED:
        offered = chat.flow.filter(kind=FlowEvent.Kind.FELL_BACK, data__action="leave_message")
    elif chat.status == ChatSession.Status.ENDED:
        offered = chat.flow.filter(kind=FlowEvent.Kind.AFTER_AGENT, data__offer="leave_message")
    else:
        return False
    return offered.exists() and not OfflineMessage.objects.filter(chat=chat).exists()


def offers_survey(chat: ChatSession) -> bool:
    """Whether the visitor's page offers the satisfaction survey: the chat ended after an agent
    at a stage that asks for one, and it is not answered yet."""
    return (
        chat.status == ChatSession.Status.ENDED
        and chat.flow.filter(kind=FlowEvent.Kind.AFTER_AGENT, data__offer="survey").exists()
        and not SurveyAnswer.objects.filter(chat=chat).exists()
    )


# --- What the sweeps look at ----------------------------------------------------------------------
def queued_chats_seen_before(*, seen_before: datetime, limit: int) -> list[int]:
    """Waiting chats whose visitor's page has not been seen since `seen_before` (a chat already
    dropped waits for a follow-up, not for its visitor)."""
    return list(
        ChatSession.objects.filter(
            status=ChatSession.Status.QUEUED, visitor_seen_at__lt=seen_before
        )
        .exclude(route__entry__reason=QueueEntry.Reason.DROPPED)
        .values_list("pk", flat=True)[:limit]
    )


def active_chats_seen_before(*, seen_before: datetime, limit: int) -> list[int]:
    """Chats an agent holds whose visitor's page has not been seen since `seen_before`."""
    return list(
        ChatSession.objects.filter(
            status=ChatSession.Status.ACTIVE, visitor_seen_at__lt=seen_before
        ).values_list("pk", flat=True)[:limit]
    )


def disabled_agents_still_working(*, limit: int) -> list[int]:
    """Agents whose user is disabled or no longer has the console role, yet are not offline,
    still hold chats or are still in chats they joined to take over."""
    working = Agent.objects.filter(
        ~Q(presence=Agent.Presence.OFFLINE) | Exists(_holding()) | Exists(_joined())
    )
    allowed = working.filter(user__is_active=True).filter(may_use_console_q())
    return list(working.exclude(pk__in=allowed.values("pk")).values_list("pk", flat=True)[:limit])


def agents_gone_since(*, seen_before: datetime, limit: int) -> list[int]:
    """Agents whose console was last seen before `seen_before` and who are not offline, still
    hold chats or are still in chats they joined to take over."""
    return list(
        Agent.objects.filter(console_seen_at__lt=seen_before)
        .filter(~Q(presence=Agent.Presence.OFFLINE) | Exists(_holding()) | Exists(_joined()))
        .values_list("pk", flat=True)[:limit]
    )


def _holding() -> QuerySet[Assignment]:
    return Assignment.objects.filter(agent=OuterRef("pk"), ended_at__isnull=True)


def _joined() -> QuerySet[Handover]:
    return Handover.objects.filter(receiver=OuterRef("pk"), status=Handover.Status.JOINED)


def chats_visible_to(*, agent: Agent, include_past_queues: bool = False) -> QuerySet[ChatSession]:
    """The chats an agent may learn exist: those it holds or held, and those waiting in a queue
    it serves (by the entry's narrowing: named agents, else a group, else the stage's groups).
    With `include_past_queues`, also chats that once waited in such a queue: the agent may have
    seen them there, so "already taken" tells it nothing new. Any other chat is answered as a
    missing one ("not found"), so that ids cannot be probed."""
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


def agent_membership(*, agent: Agent) -> tuple[set[int], set[int]]:
    """The agent's groups and the stages they serve (a console filters queue deltas by them)."""
    group_ids = set(agent.groups.values_list("pk", flat=True))
    return group_ids, set(stages_served_by(agent).values_list("pk", flat=True))


# A console socket's login: (agent id, session key, the user's password hash when it connected).
# Django checked the session against the user at the handshake; a password change since then
# changes the hash, and Django gives a new session key at every login, so "the same row, the same
# hash, the session still there" is "still that login" without reading any session's data.
ConsoleLogin = tuple[int, str, str]


def invalid_console_logins(logins: set[ConsoleLogin]) -> set[ConsoleLogin]:
    """Of these console logins, those that may no longer act: the agent's user is disabled, lost
    the console role or changed password, or the session is gone (logged out) or expired. Two
    queries for any number of logins, and no session decoded: the consoles of a process are
    checked together every few seconds, and a batch of posts before it is stored."""
    passwords, live = run_together(invalid_console_logins_reads(logins))
    return revoked_logins(logins, passwords, live)


_USER = User._meta
_USER_GROUPS = User.groups.through._meta.db_table
_GROUP_PERMISSIONS = Group.permissions.through._meta.db_table
_USER_PERMISSIONS = User.user_permissions.through._meta.db_table
_PERMISSIONS = Permission._meta.db_table
# `may_use_console_q` and an active user, as EXISTS instead of the ORM's joins and DISTINCT.
_PASSWORDS = (
    f"SELECT a.id, u.password FROM {table(Agent)} a JOIN {_USER.db_table} u ON u.id = a.user_id "  # noqa: S608 - names from the models; values bound
    "WHERE a.id = ANY(%s::bigint[]) AND u.is_active AND (u.is_superuser "
    f"OR EXISTS (SELECT 1 FROM {_USER_GROUPS} ug JOIN {_GROUP_PERMISSIONS} gp "
    f"ON gp.group_id = ug.group_id JOIN {_PERMISSIONS} p ON p.id = gp.permission_id "
    "WHERE ug.user_id = u.id AND p.codename = %s) "
    f"OR EXISTS (SELECT 1 FROM {_USER_PERMISSIONS} up JOIN {_PERMISSIONS} p "
    "ON p.id = up.permission_id WHERE up.user_id = u.id AND p.codename = %s))"
)
_SESSIONS = (
    f"SELECT session_key FROM {Session._meta.db_table} "  # noqa: S608 - names from the model; values bound
    "WHERE session_key = ANY(%s::text[]) AND expire_date > %s"
)


def invalid_console_logins_reads(
    logins: set[ConsoleLogin],
) -> tuple[Read[dict[int, str]], Read[set[str]]]:
    """`invalid_console_logins`' two reads, to be run (together, with others) and given to
    `revoked_logins`: the allowed agents' password hashes, and the live sessions."""
    ids = sorted({login[0] for login in logins})

    def query() -> QuerySet[Agent, tuple[int, str]]:
        return (
            Agent.objects.filter(pk__in=ids, user__is_active=True)
            .filter(may_use_console_q())
            .values_list("pk", "user__password")
            .distinct()
        )

    return (
        Read(
            query if ids else None,
            lambda rows: {row[0]: row[1] for row in rows},
            _PASSWORDS,
            [ids, CONSOLE_PERMISSION, CONSOLE_PERMISSION],
        ),
        _live_sessions_read({login[1] for login in logins if login[1]}),
    )


def revoked_logins(
    logins: set[tuple[int, str, str]], passwords: dict[int, str], live: set[str] | None = None
) -> set[tuple[int, str, str]]:
    """Of these (id, session key, password hash) logins, those whose id is not in `passwords`
    (the ones still allowed, with their password hashes now), whose password changed, or whose
    session is not in `live` (gone: logged out, or expired). One query for the sessions when
    `live` is not given."""
    if live is None:
        live = _live_sessions_read({login[1] for login in logins if login[1]}).run()
    return {
        login
        for login in logins
        if passwords.get(login[0]) != login[2] or not login[2] or login[1] not in live
    }


def _live_sessions_read(keys: set[str]) -> Read[set[str]]:
    """Those of these session keys whose session still exists and has not expired."""
    if not keys:
        return Read(None, lambda rows: set())
    if settings.SESSION_ENGINE == "django.contrib.sessions.backends.db":
        now = timezone.now()
        wanted = sorted(keys)

        def query() -> QuerySet[Session, tuple[str]]:
            return Session.objects.filter(session_key__in=wanted, expire_date__gt=now).values_list(
                "session_key"
            )

        return Read(query, lambda rows: {row[0] for row in rows}, _SESSIONS, [wanted, now])
    engine = import_module(settings.SESSION_ENGINE)
    return Read(None, lambda rows: {key for key in keys if engine.SessionStore().exists(key)})


def console_session_valid(*, agent_id: int, session_key: str, password: str) -> bool:
    """`invalid_console_logins` for one console."""
    login = (agent_id, session_key, password)
    return login not in invalid_console_logins({login})


def chat_last_seq(*, chat_id: int) -> int:
    last = ChatSession.objects.filter(pk=chat_id).values_list("last_seq", flat=True).first()
    return last or 0


def last_end_reason(*, agent: Agent, chat_id: int) -> str:
    """Why the agent's last turn with the chat ended ("" if it never held it)."""
    reason = (
        Assignment.objects.filter(agent=agent, chat_id=chat_id, ended_at__isnull=False)
        .order_by("-ended_at", "-pk")
        .values_list("end_reason", flat=True)
        .first()
    )
    return reason or ""


def pipeline_queue_is_full(*, topic_name: str) -> bool:
    """Whether the pipeline that `topic_name` starts in already has MAX_WAITING_CHATS_PER_PIPELINE
    chats waiting in its queues (any stage). Past that a new visitor is offered the "leave a
    message" form instead of a place in line: each waiting chat makes every queue change cost
    more (positions, estimates, console lists), and nobody is served faster by a longer line.
    Counts at most the cap's rows (index entry_stage_open)."""
    cap = settings.MAX_WAITING_CHATS_PER_PIPELINE
    waiting = QueueEntry.objects.filter(
        left_at__isnull=True, stage__pipeline__topics__name=topic_name
    )
    return waiting[:cap].count() >= cap


def previous_chats_of_visitor(
    *, chat: ChatSession, agent: Agent, limit: int = 5
) -> list[ChatSession]:
    """Up to `limit` chats started before `chat` with the same e-mail (in any case), newest
    first: of those
    the agent may open (managers: all), so the panel links to no chat its page would refuse.
    One query, by the index chat_visitor_email_created."""
    if not chat.visitor_email:
        return []
    earlier = ChatSession.objects.filter(
        visitor_email__iexact=chat.visitor_email, created_at__lt=chat.created_at
    ).exclude(visitor_email="")  # the index's own condition, so the planner may use it
    if not agent.user.has_perm("escalation.view_reports"):
        earlier = earlier.filter(pk__in=chats_visible_to(agent=agent).values("pk"))
    return list(earlier.only("pk", "topic", "status", "created_at").order_by("-created_at")[:limit])


def agent_may_see_chat(*, agent: Agent, chat_id: int, include_past_queues: bool = False) -> bool:
    return (
        chats_visible_to(agent=agent, include_past_queues=include_past_queues)
        .filter(pk=chat_id)
        .exists()
    )


def canned_replies_for(agent: Agent) -> QuerySet[CannedReply]:
    """The saved replies an agent may use: its own, its groups', and the global ones."""
    return CannedReply.objects.filter(
        Q(owner=agent) | Q(group__in=agent.groups.all()) | Q(owner__isnull=True, group__isnull=True)
    ).select_related("group")


def start_topics(*, site: Site | None = None) -> QuerySet[Topic]:
    """The topics a visitor may start a chat about: those of active pipelines that have an entry
    stage, and on a site's widget only its pipeline's (when it names one)."""
    topics = Topic.objects.filter(pipeline__is_active=True, pipeline__entry_stage__isnull=False)
    if site is not None and site.pipeline_id is not None:
        topics = topics.filter(pipeline_id=site.pipeline_id)
    return topics


def active_site(*, key: str) -> Site | None:
    """The active site with this widget key, or None (unknown, switched off, or malformed)."""
    if not (0 < len(key) <= 32 and key.isascii()):
        return None
    return Site.objects.filter(key=key, is_active=True).first()


def chat_site_id(*, chat_id: int) -> int | None:
    """The site whose widget started the chat (None: Tierline's own page, or no such chat)."""
    return ChatRoute.objects.filter(chat_id=chat_id).values_list("site_id", flat=True).first()


def site_allows_chat_origin(*, chat_id: int, origin: str) -> bool:
    """Whether `origin` is an allowed origin of the site whose widget started the chat."""
    site_id = chat_site_id(chat_id=chat_id)
    if site_id is None:
        return False
    site = Site.objects.filter(pk=site_id, is_active=True).first()
    return site is not None and origin in site.origins


def attachment_limits(*, chat_id: int) -> AttachmentLimits:
    """The limits on files in this chat: the server's, narrowed by the site whose widget
    started it (a smaller size, fewer types)."""
    limits = site_limits()
    site_id = chat_site_id(chat_id=chat_id)
    site = Site.objects.filter(pk=site_id).first() if site_id is not None else None
    if site is None:
        return limits
    types = [t for t in site.attachment_type_list if t in limits.types]
    return AttachmentLimits(
        max_bytes=min(site.attachment_max_bytes or limits.max_bytes, limits.max_bytes),
        types=tuple(types) if site.attachment_types.strip() else limits.types,
    )


def chat_tags(*, chat_id: int) -> list[Tag]:
    """The chat's tags, in the admins' list order."""
    return list(Tag.objects.filter(chat_tags__chat_id=chat_id).order_by("position", "name"))


def tag_choices() -> list[Tag]:
    """The tags agents may add (active ones), in list order."""
    return list(Tag.objects.filter(is_active=True).order_by("position", "name"))


# --- Consults -------------------------------------------------------------------------------------
def handle_of(name: str) -> str:
    """How `/consult` names a colleague or a group: lower case, spaces as hyphens ("L2 Billing"
    is @l2-billing)."""
    return "-".join(name.lower().split())


def consultable_colleagues(*, agent: Agent) -> list[Agent]:
    """The colleagues `agent` may consult now: online agents who may use the console, but not
    itself."""
    return list(
        Agent.objects.filter(presence=Agent.Presence.ONLINE, user__is_active=True)
        .filter(may_use_console_q())
        .exclude(pk=agent.pk)
        .select_related("user")
        .distinct()
        .order_by("display_name", "pk")
    )


def consultable_groups(*, agent: Agent) -> list[tuple[AgentGroup, int]]:
    """Every group, with how many of its members besides `agent` are online now."""
    online = Q(agents__presence=Agent.Presence.ONLINE, agents__user__is_active=True) & ~Q(
        agents__pk=agent.pk
    )
    groups = AgentGroup.objects.annotate(online=Count("agents", filter=online, distinct=True))
    return [(group, group.online) for group in groups.order_by("tier__level", "name")]


def console_agent(*, agent_id: int) -> Agent | None:
    """The agent with this id if its user is active and may use the console."""
    return (
        Agent.objects.filter(pk=agent_id, user__is_active=True)
        .filter(may_use_console_q())
        .select_related("user")
        .first()
    )


def online_members(*, group: AgentGroup, besides: Agent) -> list[int]:
    """The ids of the group's members who are online now, `besides` left out."""
    return list(
        group.agents.filter(presence=Agent.Presence.ONLINE, user__is_active=True)
        .exclude(pk=besides.pk)
        .values_list("pk", flat=True)
    )


def find_colleague(*, handle: str) -> tuple[Agent | None, AgentGroup | None]:
    """What `@handle` names: an agent by user name or display name, and a group by name (names
    written as `handle_of` writes them); either may be None."""
    wanted = handle.removeprefix("@").lower()
    if not wanted:
        return None, None
    spaced = wanted.replace("-", " ")
    agents = list(
        Agent.objects.filter(user__is_active=True)
        .filter(may_use_console_q())
        .filter(
            Q(user__username__iexact=wanted)
            | Q(display_name__iexact=wanted)
            | Q(display_name__iexact=spaced)
        )
        .select_related("user")
        .distinct()[:2]
    )
    groups = list(AgentGroup.objects.filter(Q(name__iexact=wanted) | Q(name__iexact=spaced))[:1])
    return (agents[0] if len(agents) == 1 else None), (groups[0] if groups else None)


def consult_invitee_q(agent: Agent) -> Q:
    """The consults `agent` is asked in: named, or a member of the consulted group while nobody
    has answered yet, or the one who answered."""
    return (
        Q(agent=agent)
        | Q(group__in=agent.groups.all(), answered_by__isnull=True)
        | Q(answered_by=agent)
    )


def consulted_on_now(*, agent: Agent, chat_id: int) -> bool:
    """Whether `agent` is asked in an open consult on the chat (it may read the chat)."""
    return (
        Consult.objects.filter(chat_id=chat_id, status=Consult.Status.OPEN)
        .filter(consult_invitee_q(agent))
        .exclude(asked_by=agent)
        .exists()
    )


def took_part_in_consult(*, agent: Agent, chat_id: int) -> bool:
    """Whether `agent` was the named colleague of a consult on the chat, or answered one: such
    a colleague may read the chat's report page afterwards."""
    return (
        Consult.objects.filter(chat_id=chat_id)
        .filter(Q(agent=agent) | Q(answered_by=agent))
        .exists()
    )


CONSULT_RELATED = ("chat", "asked_by", "agent", "group", "answered_by", "closed_by")


def open_consults_of(*, agent: Agent) -> list[Consult]:
    """The open consults `agent` asked or is asked in, oldest first."""
    return list(
        Consult.objects.filter(status=Consult.Status.OPEN)
        .filter(Q(asked_by=agent) | consult_invitee_q(agent))
        .select_related(*CONSULT_RELATED)
        .distinct()
        .order_by("created_at", "pk")
    )


def open_consult_seen_by(*, agent: Agent, chat_id: int) -> Consult | None:
    """The chat's open consult, if `agent` asked it or is asked in it."""
    return (
        Consult.objects.filter(chat_id=chat_id, status=Consult.Status.OPEN)
        .filter(Q(asked_by=agent) | consult_invitee_q(agent))
        .select_related(*CONSULT_RELATED)
        .first()
    )
