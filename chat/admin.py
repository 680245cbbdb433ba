from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from chat.models import ChatSession, FlowEvent, Message, OutboundEmail


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    """Runtime records: visible to admins, written only by the services."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MessageInline(admin.TabularInline[Message, ChatSession]):
    model = Message
    fields = ["seq", "kind", "author_name", "text", "created_at"]
    readonly_fields = ["seq", "kind", "author_name", "text", "created_at"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(ChatSession)
class ChatSessionAdmin(ReadOnlyAdmin):
    list_display = ["id", "visitor_name", "topic", "status", "created_at", "ended_at"]
    list_filter = ["status", "topic"]
    search_fields = ["visitor_name", "visitor_email"]
    inlines = [MessageInline]


@admin.register(FlowEvent)
class FlowEventAdmin(ReadOnlyAdmin):
    list_display = ["chat", "kind", "at"]
    list_filter = ["kind"]


@admin.register(OutboundEmail)
class OutboundEmailAdmin(ReadOnlyAdmin):
    """What was e-mailed about chats, and what is waiting or failed (with the last error)."""

    list_display = ["chat", "kind", "to", "status", "attempts", "created_at", "sent_at"]
    list_filter = ["status", "kind"]
    search_fields = ["to"]
    readonly_fields = ["last_error", "due_at"]
