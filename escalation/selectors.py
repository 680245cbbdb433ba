"""Reads of escalation configuration and state."""

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied

from escalation.models import Agent, FallbackAction, Stage


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
