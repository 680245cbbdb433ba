"""Visitor pages (/chat/) and the agent console (/console/)."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from chat.exceptions import ChatError, ChatNotFound
from chat.forms import StartChatForm
from chat.models import ChatSession
from chat.selectors import chat_for_visitor_token, make_visitor_token, transcript
from escalation import services
from escalation.selectors import get_agent_for_user

VISITOR_COOKIE = "tierline_chat"


def home(request: HttpRequest) -> HttpResponse:
    return redirect("chat:start")


def _visitor_chat(request: HttpRequest) -> tuple[ChatSession, str] | None:
    """The chat this browser holds a token for, if the token is still good."""
    token = request.COOKIES.get(VISITOR_COOKIE, "")
    chat_id = token.split(":", 1)[0]
    if not chat_id.isdigit():
        return None
    try:
        return chat_for_visitor_token(token=token.split(":", 1)[1], chat_id=int(chat_id)), token
    except (ChatNotFound, IndexError):
        return None


def visitor_start(request: HttpRequest) -> HttpResponseBase:
    held = _visitor_chat(request)
    if held is not None and held[0].is_open:
        return redirect("chat:room")
    form = StartChatForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            chat = services.start_chat(
                visitor_name=data["name"],
                visitor_email=data["email"],
                topic_name=data["topic"],
                first_message=data["message"],
                visitor_context={
                    "page": data["page"],
                    "user_agent": request.headers.get("User-Agent", "")[:300],
                    "language": request.headers.get("Accept-Language", "")[:100],
                },
            )
        except ChatError as exc:
            form.add_error("topic" if exc.code == "unknown_topic" else "message", exc.message)
        else:
            response = redirect("chat:room")
            response.set_cookie(
                VISITOR_COOKIE,
                f"{chat.pk}:{make_visitor_token(chat)}",
                max_age=settings.VISITOR_TOKEN_MAX_AGE_SECONDS,
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
            return response
    return render(request, "chat/start.html", {"form": form})


def visitor_room(request: HttpRequest) -> HttpResponseBase:
    held = _visitor_chat(request)
    if held is None:
        return redirect("chat:start")
    chat, cookie = held
    return render(
        request,
        "chat/room.html",
        {
            "chat": chat,
            "token": cookie.split(":", 1)[1],
            "messages_": transcript(chat_id=chat.pk, for_visitor=True),
            "max_chars": settings.MESSAGE_MAX_CHARS,
        },
    )


@require_POST
def visitor_new(request: HttpRequest) -> HttpResponseBase:
    """Forget the ended chat in this browser and show the start form."""
    response = redirect("chat:start")
    response.delete_cookie(VISITOR_COOKIE)
    return response


@login_required
def console_home(request: HttpRequest) -> HttpResponse:
    agent = get_agent_for_user(request.user)
    return render(
        request,
        "console/home.html",
        {"agent": agent, "max_chars": settings.MESSAGE_MAX_CHARS},
    )


def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers and test harnesses: the process answers and reaches its database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")
