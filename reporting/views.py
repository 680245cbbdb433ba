from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
@permission_required("escalation.view_reports", raise_exception=True)
def reports_home(request: HttpRequest) -> HttpResponse:
    return render(request, "reporting/home.html")
