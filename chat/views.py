from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from escalation.selectors import get_agent_for_user


def home(request: HttpRequest) -> HttpResponse:
    return redirect("chat:start")


def visitor_start(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/start.html")


@login_required
def console_home(request: HttpRequest) -> HttpResponse:
    agent = get_agent_for_user(request.user)
    return render(request, "console/home.html", {"agent": agent})
