from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from chat import views as chat_views
from chat import widget as chat_widget
from escalation.models import Agent
from helpdesk.converters import IdConverter

register_converter(IdConverter, "id")  # before the apps' URLconfs use it

handler500 = "helpdesk.api_errors.server_error"

admin.site.site_header = "Tierline administration"
admin.site.site_title = "Tierline admin"


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask for /favicon.ico on pages that name no icon (the admin's)."""
    return HttpResponseRedirect(static("favicon.ico"))


@login_required
def after_login(request: HttpRequest) -> HttpResponseRedirect:
    """Where a login lands when no page was asked for: an agent's console, a manager's reports,
    an administrator's admin. Anyone else gets the console, whose 403 page says why."""
    user = request.user
    if not user.is_authenticated:  # login_required has sent anyone else to the login page
        return redirect("login")
    if user.has_perm("escalation.use_console") and Agent.objects.filter(user=user).exists():
        return redirect("console:home")
    if user.is_staff:
        return redirect("admin:index")
    if user.has_perm("escalation.view_reports"):
        return redirect("reporting:home")
    return redirect("console:home")


urlpatterns = [
    path("", chat_views.home, name="home"),
    path("healthz", chat_views.healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    path("widget.js", chat_widget.widget_script, name="widget-script"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/start/", after_login, name="after-login"),
    path("chat/", include("chat.urls")),
    path("console/", include("chat.console_urls")),
    path("reports/", include("reporting.urls")),
    path("api/v1/", include("helpdesk.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
]
