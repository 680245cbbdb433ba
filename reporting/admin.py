from django.contrib import admin
from django.http import HttpRequest

from reporting.models import LiveSettings


@admin.register(LiveSettings)
class LiveSettingsAdmin(admin.ModelAdmin[LiveSettings]):
    """One row: it can be added while there is none, edited, never deleted (the live view falls
    back to the default target without it)."""

    list_display = ["__str__", "updated_at"]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not LiveSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: LiveSettings | None = None) -> bool:
        return False
