"""One error shape for the whole API: {"error": {"code": ..., "message": ..., "fields": {...}}}."""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from chat.exceptions import ChatError

logger = logging.getLogger(__name__)

SERVER_ERROR = {
    "error": {"code": "server_error", "message": "Something went wrong on our side; try again."}
}

# Domain errors that say "the chat is not in a state for that": 409 Conflict.
CONFLICTS = {
    "already_taken",
    "not_your_chat",
    "chat_closed",
    "at_capacity",
    "not_online",
    "nobody_available",
    "invalid_transition",
    "not_offered",
    "offer_closed",
    "offer_lapsed",
}
FORBIDDEN = {"forbidden"}
NOT_FOUND = {"not_found", "offer_not_found"}
TOO_LARGE = {"attachment_too_large"}


def status_for(code: str) -> int:
    if code in CONFLICTS:
        return 409
    if code in FORBIDDEN:
        return 403
    if code in NOT_FOUND:
        return 404
    if code in TOO_LARGE:
        return 413
    return 400


def handle_api_exception(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ChatError):
        return Response(
            {"error": {"code": exc.code, "message": exc.message}}, status=status_for(exc.code)
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or "You do not have permission.")
    response = exception_handler(exc, context)
    if response is None:
        # Not an API error: a bug, a database or Redis failure. Logged with its traceback, and
        # answered in the error shape rather than Django's HTML 500 page.
        view = context.get("view")
        logger.error(
            "unexpected error in %s", type(view).__name__ if view else "the API", exc_info=exc
        )
        set_rollback()
        return Response(SERVER_ERROR, status=500)
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {
            "error": {"code": "invalid", "message": "The request is not valid.", "fields": fields}
        }
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = getattr(detail, "code", None) or exc.default_code
        response.data = {"error": {"code": str(code), "message": str(detail)}}
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: under /api/ the error shape, elsewhere Django's page. (Errors inside an API
    view never get here: handle_api_exception answers them.)"""
    if request.path.startswith("/api/"):
        return JsonResponse(SERVER_ERROR, status=500)
    return defaults.server_error(request)


ErrorSerializer = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorBody",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(required=False),
            },
        ),
    },
)

ERROR_RESPONSES: dict[int, Any] = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid input; `fields` says which."),
    401: OpenApiResponse(ErrorSerializer, description="Not authenticated."),
    403: OpenApiResponse(ErrorSerializer, description="Not allowed for this user."),
    404: OpenApiResponse(ErrorSerializer, description="No such object, or not visible to you."),
    409: OpenApiResponse(ErrorSerializer, description="The chat's state does not allow it."),
}
