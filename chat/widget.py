"""The chat widget a company embeds on its own website (a Site in admin).

`/widget.js` draws a launcher on the company's page and opens the visitor's chat in a frame of
Tierline's own pages (`/chat/w/<key>/...`), so Tierline's cookies, CSP and socket stay its own.
Those pages run in a cross-site frame, where browsers that block third-party cookies send none:
so they use no cookie at all. The visitor's chat token lives in the company page's storage (the
widget's), comes in with every form as the `visitor` field, and the frame hands a new one back by
`postMessage` to the embedding page's origin only. With no ambient credential there is nothing to
forge across sites, hence no CSRF cookie either (the views are `csrf_exempt`); what stops another
website is `frame-ancestors` (only the site's allowed origins may frame these pages) and the
origin checks below.
"""

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from chat import services as chat_services
from chat.attributes import AttributesError, parse_attributes
from chat.exceptions import ChatNotFound
from chat.realtime.origins import normal_origin
from chat.selectors import chat_for_visitor_credential
from escalation.models import Site
from escalation.selectors import active_site, chat_site_id

WIDGET_SCRIPT = Path(settings.BASE_DIR) / "static" / "chat" / "widget.js"
VISITOR_HEADER = "X-Tierline-Visitor"
ATTRIBUTES_MAX_BYTES = 16_384

View = Callable[..., HttpResponseBase]


def widget_site(request: HttpRequest) -> Site | None:
    """The site whose widget this request comes through (None: Tierline's own chat page)."""
    site: Site | None = getattr(request, "widget_site", None)
    return site


def _own_origin(request: HttpRequest) -> str:
    return normal_origin(f"{request.scheme}://{request.get_host()}")


def embedding_origin(request: HttpRequest, site: Site) -> tuple[str, str]:
    """(the embedding page's origin, "") or ("", why it is refused).

    The page that opens the frame says its origin in `parent`; a browser's Origin header says
    it too when the form comes from that page (it is Tierline's own origin for the frame's own
    forms). Either way it must be one of the site's allowed origins: a copied snippet on another
    website gets a clear refusal, and frame-ancestors stops the browser showing it anyway."""
    parent = normal_origin(str(request.POST.get("parent") or request.GET.get("parent") or ""))
    header = request.headers.get("Origin", "")
    sent_by = normal_origin(header) if header and header != "null" else ""
    if sent_by and sent_by != _own_origin(request):
        parent = sent_by  # the browser's word beats the form's
    if not parent:
        return "", "This chat can only be opened from the website it was set up for."
    if parent not in site.origins:
        return "", f"This chat is not set up for {parent}."
    return parent, ""


def _framable(response: HttpResponseBase, site: Site | None) -> HttpResponseBase:
    """Only the site's own pages may frame this response."""
    ancestors = site.origins if site is not None else []
    response._csp_config = {  # type: ignore[attr-defined]
        **settings.SECURE_CSP,
        "frame-ancestors": ancestors or ["'none'"],
    }
    response.xframe_options_exempt = True  # type: ignore[attr-defined]
    return response


def _refusal(request: HttpRequest, site: Site | None, error: str, status: int) -> HttpResponse:
    response = render(request, "chat/widget_error.html", {"error": error}, status=status)
    _framable(response, site)
    return response


def framed(view: View) -> View:
    """A visitor page as the widget's frame serves it: the site from the URL's key, the visitor
    from the form (not a cookie), framable only by the site's origins. A GET is how the widget
    opens its frame: a page that asks the widget (by postMessage) for the chat it keeps, then
    posts it to the open view; a frame reloaded on its own lands there too."""

    # Safe without CSRF: the only credential is the chat token in the form, which a cross-site
    # form cannot know (see the module's docstring).
    @csrf_exempt
    @wraps(view)
    def wrapped(request: HttpRequest, key: str) -> HttpResponseBase:
        site = active_site(key=key)
        if site is None:
            return _refusal(request, None, "This chat widget is not set up (unknown site).", 404)
        if request.method != "POST":
            boot = {"open_url": reverse("chat:widget_open", args=[site.key])}
            response = render(request, "chat/widget_boot.html", {"boot": boot})
            return _framable(response, site)
        parent, why = embedding_origin(request, site)
        if why:
            return _refusal(request, site, why, 403)
        request.widget_site = site  # type: ignore[attr-defined]
        request.widget_parent = parent  # type: ignore[attr-defined]
        return _framable(view(request), site)

    return wrapped


def visitor_page_context(request: HttpRequest, *, token: str) -> dict[str, Any]:
    """What the visitor pages need to know of where they run: their base template, where their
    forms post, and (in a widget) the state the frame tells the embedding page."""
    site = widget_site(request)
    if site is None:
        return {
            "base_template": "customer_base.html",
            "urls": {
                name: reverse(f"chat:{name}")
                for name in ("start", "leave_message", "email_transcript", "survey", "new")
            },
        }
    return {
        "base_template": "chat/widget_base.html",
        "site": site,
        "visitor": token,
        "parent": request.widget_parent,  # type: ignore[attr-defined]
        "widget_state": {
            "parent": request.widget_parent,  # type: ignore[attr-defined]
            "token": token,
            "attributes_url": reverse("chat:widget_attributes", args=[site.key]),
        },
        "urls": {
            name: reverse(f"chat:widget_{name}", args=[site.key])
            for name in ("start", "leave_message", "email_transcript", "survey", "new")
        },
    }


def _cors(response: HttpResponse, origin: str) -> HttpResponse:
    response["Access-Control-Allow-Origin"] = origin
    response["Vary"] = "Origin"
    return response


@require_GET
def widget_config(request: HttpRequest, key: str) -> HttpResponse:
    """What the launcher looks like, for the widget script on an allowed origin (CORS). A
    refusal is readable by any page (it says nothing secret), so the page's console can say why
    the launcher does not show."""
    site = active_site(key=key)
    origin = normal_origin(request.headers.get("Origin", ""))
    if site is None:
        refusal = _json_error("unknown_site", "No chat widget has this site key.", 404)
        return _cors(refusal, "*")
    if origin not in site.origins:
        shown = origin or "this page"
        refusal = _json_error(
            "origin_not_allowed", f"This site key is not set up for {shown}.", 403
        )
        return _cors(refusal, "*")
    config = {
        "launcher_text": site.launcher_text,
        "title": site.panel_title,
        "colour": site.colour,
    }
    return _cors(JsonResponse(config), origin)


def _json_error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@csrf_exempt  # the credential is a header a cross-site form cannot send, not a cookie
@require_POST
def widget_attributes(request: HttpRequest, key: str) -> JsonResponse:
    """`Tierline.set()` / `identify()` after the chat started: merge custom attributes into it.

    Sent by the frame (Tierline's own origin) with the chat token in a header."""
    site = active_site(key=key)
    if site is None:
        return _json_error("unknown_site", "No chat widget has this site key.", 404)
    try:
        chat = chat_for_visitor_credential(credential=request.headers.get(VISITOR_HEADER, ""))
    except ChatNotFound:
        return _json_error("not_found", "No such chat.", 404)
    if chat_site_id(chat_id=chat.pk) != site.pk:
        return _json_error("not_found", "No such chat.", 404)
    if len(request.body) > ATTRIBUTES_MAX_BYTES:
        return _json_error("too_large", "Attributes are at most 16 kB of JSON.", 413)
    try:
        payload = json.loads(request.body or b"null")
    except (ValueError, RecursionError):
        return _json_error("invalid", 'Send JSON: {"attributes": {"name": value, ...}}.', 400)
    try:
        if not isinstance(payload, dict) or set(payload) != {"attributes"}:
            raise AttributesError('Send JSON: {"attributes": {"name": value, ...}}.')
        attributes = parse_attributes(payload["attributes"])
        merged = chat_services.set_visitor_attributes(chat_id=chat.pk, attributes=attributes)
    except AttributesError as exc:
        return _json_error("invalid", str(exc), 400)
    return JsonResponse({"attributes": merged})


@require_GET
def widget_script(request: HttpRequest) -> HttpResponse:
    """The embed script, at one address that does not change with each release's file hashes."""
    response = HttpResponse(WIDGET_SCRIPT.read_bytes(), content_type="text/javascript")
    response["Cache-Control"] = "public, max-age=300"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response
