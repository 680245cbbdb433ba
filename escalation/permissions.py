"""Who may call the REST API: DRF permission classes and the caller's agent profile. Shared by the
API modules of every app (chats and messages in chat, configuration, presence and offers here).
"""

from typing import Any

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from escalation.models import Agent


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
