"""Visitor pages (/chat/) and the agent console (/console/)."""

import json
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
)
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from chat.attachments import AttachmentLimits, format_bytes
from chat.attributes import AttributesError, parse_attributes
from chat.exceptions import AttachmentLinkExpired, ChatError, ChatNotFound
from chat.forms import (
    CannedReplyForm,
    OfflineMessageForm,
    StartChatForm,
    SurveyForm,
    TranscriptEmailForm,
)
from chat.models import Attachment, ChatSession
from chat.selectors import (
    attachment_for_signature,
    chat_for_visitor_credential,
    make_visitor_token,
    visitor_transcript_lines,
)
from chat.throttles import (
    Refusal,
    attachment_refusal,
    chat_start_refusal,
    left_message_refusal,
    transcript_email_refusal,
)
from chat.widget import VISITOR_HEADER, visitor_page_context, widget_site
from escalation import services
from escalation.models import Agent, CannedReply
from escalation.selectors import (
    agent_history,
    attachment_limits,
    canned_replies_for,
    chat_site_id,
    get_agent_for_user,
    left_messages,
    offers_message_form,
    offers_survey,
)
from helpdesk.api_errors import status_for

VISITOR_COOKIE = "tierline_chat"
RATING_CHOICES = [(1, "poor"), (2, ""), (3, ""), (4, ""), (5, "great")]


def home(request: HttpRequest) -> HttpResponse:
    return redirect("chat:start")


def _held_token(request: HttpRequest) -> str:
    """ "<chat id>:<token>" as this visitor holds it: in the cookie on Tierline's own pages, in
    the form on a widget's pages (which run in a cross-site frame and so have no cookie)."""
    if widget_site(request) is not None:
        return str(request.POST.get("visitor", ""))[:500]
    return request.COOKIES.get(VISITOR_COOKIE, "")


def _visitor_chat(request: HttpRequest) -> tuple[ChatSession, str] | None:
    """The chat this visitor holds a token for, if the token is still good (and, in a widget,
    the chat was started on that widget's site)."""
    held = _chat_for_credential(_held_token(request))
    if held is None:
        return None
    site = widget_site(request)
    if site is not None and chat_site_id(chat_id=held[0].pk) != site.pk:
        return None
    return held


def _chat_for_credential(token: str) -> tuple[ChatSession, str] | None:
    """The chat a "<chat id>:<token>" credential opens, if the token is still good."""
    try:
        return chat_for_visitor_credential(credential=token), token
    except ChatNotFound:
        return None


def _visitor_token(request: HttpRequest) -> str:
    return _held_token(request).partition(":")[2]


def _no_chat(request: HttpRequest) -> HttpResponseBase:
    """No chat held (or its token is no good): the start form."""
    if widget_site(request) is not None:
        return _start_page(request, StartChatForm(site=widget_site(request)))
    return redirect("chat:start")


def _back_to_room(
    request: HttpRequest, held: tuple[ChatSession, str], flash: str = ""
) -> HttpResponseBase:
    """After a visitor's form was taken: on Tierline's page, redirect to the room (the flash in
    the messages framework); in a widget, the room at once (no cookie to carry either)."""
    if widget_site(request) is not None:
        return _room(request, held, flash=flash)
    if flash:
        messages.success(request, flash)
    return redirect("chat:room")


def _start_page(
    request: HttpRequest, form: StartChatForm, status: int = 200, **context: Any
) -> HttpResponse:
    return render(
        request,
        "chat/start.html",
        {"form": form, **visitor_page_context(request, token=""), **context},
        status=status,
    )


def _too_many(response: HttpResponse, refusal: Refusal) -> HttpResponse:
    response.status_code = 429
    response["Retry-After"] = str(refusal.retry_after_seconds)
    return response


def visitor_start(request: HttpRequest) -> HttpResponseBase:
    site = widget_site(request)
    held = _visitor_chat(request)
    if held is not None and held[0].is_open:
        return _back_to_room(request, held)
    form = StartChatForm(request.POST or None, site=site)
    if request.method == "POST" and form.is_valid():
        refusal = chat_start_refusal(request, visitor_token=_visitor_token(request))
        if refusal is not None:  # the form comes back as typed, to send again later
            return _too_many(_start_page(request, form, too_many=refusal), refusal)
        data = form.cleaned_data
        try:
            chat = services.start_chat(
                visitor_name=data["name"],
                visitor_email=data["email"],
                topic_name=data["topic"],
                first_message=data["message"],
                visitor_context={
                    **form.visitor_context(),
                    "user_agent": request.headers.get("User-Agent", "")[:300],
                    "language": request.headers.get("Accept-Language", "")[:100],
                },
                fields=form.answers(),
                site=site,
            )
        except ChatError as exc:
            form.add_error("topic" if exc.code == "unknown_topic" else "message", exc.message)
        else:
            if site is not None:
                return _room(request, (chat, f"{chat.pk}:{make_visitor_token(chat)}"))
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
    return _start_page(request, form)


def widget_open_page(request: HttpRequest) -> HttpResponseBase:
    """The widget opens its frame: the chat this visitor holds, or the start form with what the
    company's page told of the visitor filled in."""
    held = _visitor_chat(request)
    if held is not None:
        return _room(request, held)
    initial = {
        name: str(request.POST.get(name, ""))[:16_384]
        for name in ("name", "email", "page", "page_title", "referrer", "attributes")
    }
    form = StartChatForm(initial=initial, site=widget_site(request))
    try:
        parse_attributes(json.loads(initial["attributes"] or "{}"))
    except (ValueError, RecursionError, AttributesError) as exc:
        error = f"The page's custom attributes were refused: {exc}"
        return _start_page(request, form, status=400, open_error=error)
    return _start_page(request, form)


def visitor_room(request: HttpRequest) -> HttpResponseBase:
    held = _visitor_chat(request)
    if held is None:
        return _no_chat(request)
    return _room(request, held)


def _errors(form: forms.Form) -> str:
    """A form's errors as one line, for the room page's error under that form."""
    return " ".join(str(e) for errs in form.errors.values() for e in errs)


def _room(
    request: HttpRequest,
    held: tuple[ChatSession, str],
    offline_error: str = "",
    offline_form: OfflineMessageForm | None = None,
    transcript_error: str = "",
    transcript_email: str = "",
    survey_error: str = "",
    survey_form: SurveyForm | None = None,
    flash: str = "",
) -> HttpResponse:
    chat, held_token = held
    return render(
        request,
        "chat/room.html",
        {
            **visitor_page_context(request, token=held_token),
            "flash": flash,
            "chat": chat,
            "token": held_token.split(":", 1)[1],
            "lines": visitor_transcript_lines(chat_id=chat.pk),
            "max_chars": settings.MESSAGE_MAX_CHARS,
            "attach_accept": ",".join(attachment_limits(chat_id=chat.pk).types),
            "offer_message_form": offers_message_form(chat),
            "offline_error": offline_error,
            # What the visitor typed, shown again with the error rather than lost.
            "offline_email": offline_form.data.get("email", "") if offline_form else "",
            "offline_text": offline_form.data.get("text", "") if offline_form else "",
            "email_enabled": settings.EMAIL_ENABLED,
            "transcript_error": transcript_error,
            "transcript_email": transcript_email or chat.visitor_email,
            "survey_offered": offers_survey(chat),
            "rating_choices": RATING_CHOICES,
            "survey_error": survey_error,
            # What the visitor chose and wrote, shown again with the error rather than lost.
            "survey_rating": survey_form.data.get("rating", "") if survey_form else "",
            "survey_comment": survey_form.data.get("comment", "") if survey_form else "",
        },
        status=400 if transcript_error or survey_error else 200,
    )


@require_POST
def visitor_leave_message(request: HttpRequest) -> HttpResponseBase:
    """The "leave a message" form a fallback offered when nobody could take the chat."""
    held = _visitor_chat(request)
    if held is None:
        return _no_chat(request)
    form = OfflineMessageForm(request.POST)
    if not form.is_valid():
        return _room(request, held, offline_error=_errors(form), offline_form=form)
    refusal = left_message_refusal(request, visitor_token=_visitor_token(request))
    if refusal is not None:
        error = (
            "Too many messages from your connection. Please wait about "
            f"{refusal.retry_after_minutes} minutes and send it again."
        )
        return _too_many(_room(request, held, offline_error=error, offline_form=form), refusal)
    try:
        services.leave_offline_message(
            chat_id=held[0].pk, text=form.cleaned_data["text"], email=form.cleaned_data["email"]
        )
    except ChatError as exc:
        return _room(request, held, offline_error=exc.message, offline_form=form)
    return _back_to_room(request, held)


@require_POST
def visitor_survey(request: HttpRequest) -> HttpResponseBase:
    """The visitor rates the chat that just ended (when its stage asks for it)."""
    held = _visitor_chat(request)
    if held is None:
        return _no_chat(request)
    form = SurveyForm(request.POST)
    if not form.is_valid():
        return _room(request, held, survey_error=_errors(form), survey_form=form)
    try:
        services.answer_survey(
            chat_id=held[0].pk,
            rating=form.cleaned_data["rating"],
            comment=form.cleaned_data["comment"],
        )
    except ChatError as exc:
        return _room(request, held, survey_error=exc.message, survey_form=form)
    return _back_to_room(request, held, flash="Thank you for your feedback.")


@require_POST
def visitor_email_transcript(request: HttpRequest) -> HttpResponseBase:
    """The visitor of an ended chat asks for its transcript by e-mail."""
    if not settings.EMAIL_ENABLED:
        raise Http404("E-mail is not set up on this site.")
    held = _visitor_chat(request)
    if held is None:
        return _no_chat(request)
    form = TranscriptEmailForm(request.POST)
    typed = str(request.POST.get("email", ""))[:254]
    if not form.is_valid():
        return _room(
            request, held, transcript_error="Enter a valid e-mail address.", transcript_email=typed
        )
    refusal = transcript_email_refusal(request, visitor_token=_visitor_token(request))
    if refusal is not None:
        error = (
            "Too many transcripts asked for. Please wait about "
            f"{refusal.retry_after_minutes} minutes and ask again."
        )
        return _too_many(
            _room(request, held, transcript_error=error, transcript_email=typed), refusal
        )
    email = form.cleaned_data["email"]
    try:
        services.email_transcript(chat_id=held[0].pk, to=email)
    except ChatError as exc:
        return _room(request, held, transcript_error=exc.message, transcript_email=typed)
    return _back_to_room(request, held, flash=f"We are e-mailing the transcript to {email}.")


@require_POST
def visitor_new(request: HttpRequest) -> HttpResponseBase:
    """Forget the ended chat in this browser and show the start form."""
    if widget_site(request) is not None:  # the start page tells the widget to forget the token
        return _start_page(request, StartChatForm(site=widget_site(request)))
    response = redirect("chat:start")
    response.delete_cookie(VISITOR_COOKIE)
    return response


# --- Files in chats ------------------------------------------------------------------------------
# Room for the multipart envelope around a file of the largest allowed size.
_MULTIPART_SLACK_BYTES = 64 * 1024


def error_json(code: str, message: str, status: int) -> JsonResponse:
    """The API's error shape, for the JSON endpoints outside DRF."""
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def body_too_large(request: HttpRequest, limits: AttachmentLimits) -> JsonResponse | None:
    """A 413 for a body that cannot hold an allowed file, before it is read or parsed."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= limits.max_bytes + _MULTIPART_SLACK_BYTES:
        return None
    message = f"The file is too large; the limit is {format_bytes(limits.max_bytes)}."
    return error_json("attachment_too_large", message, 413)


# No CSRF check, and that is safe: the credential is the X-Tierline-Visitor header, which only
# this page's own script can send (a cross-site form cannot set headers, and a cross-site fetch
# with one needs a CORS preflight this site never allows), not an ambient cookie a forged
# request would carry. The page works without cookies, in a cross-site frame too.
@csrf_exempt
@require_POST
def visitor_attach(request: HttpRequest) -> JsonResponse:
    """The visitor sends a file (multipart field "file") to their open chat."""
    held = _chat_for_credential(request.headers.get(VISITOR_HEADER, ""))
    if held is None:
        return error_json("not_found", "Your chat could not be found. Reload the page.", 403)
    chat, credential = held
    limits = attachment_limits(chat_id=chat.pk)
    refused = body_too_large(request, limits)
    if refused is not None:
        return refused
    refusal = attachment_refusal(request, visitor_token=credential.partition(":")[2])
    if refusal is not None:
        message = f"Too many files sent. Please wait about {refusal.retry_after_minutes} minutes."
        response = error_json("rate_limited", message, 429)
        response["Retry-After"] = str(refusal.retry_after_seconds)
        return response
    try:
        upload = request.FILES.get("file")
    except MultiPartParserError:
        upload = None
    if upload is None:
        return error_json("invalid", "Choose a file to send.", 400)
    try:
        posted = services.post_attachment(chat_id=chat.pk, upload=upload, limits=limits)
    except ChatError as exc:
        return error_json(exc.code, exc.message, status_for(exc.code))
    return JsonResponse({"seq": posted.public_seq}, status=201)


def attachment_response(attachment: Attachment) -> FileResponse:
    """The stored file with its stored type: images inline, anything else as a download, never
    sniffed into something else. Http404 if the file is gone from the storage."""
    try:
        handle = attachment.file.open("rb")
    except OSError:
        raise Http404("The file is no longer stored.") from None
    content_type = attachment.content_type
    if content_type.startswith("text/"):
        content_type += "; charset=utf-8"
    response = FileResponse(
        handle,
        content_type=content_type,
        as_attachment=not attachment.is_image,
        filename=attachment.name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response


@require_GET
def visitor_attachment(request: HttpRequest, value: str) -> HttpResponseBase:
    """A file of the visitor's chat, by its signed, expiring link (no cookie needed)."""
    try:
        attachment = attachment_for_signature(value=value)
        return attachment_response(attachment)
    except AttachmentLinkExpired as exc:
        return HttpResponse(exc.message, status=403, content_type="text/plain; charset=utf-8")
    except (ChatNotFound, Http404) as exc:
        return HttpResponse(str(exc), status=404, content_type="text/plain; charset=utf-8")


@login_required
def console_home(request: HttpRequest) -> HttpResponse:
    agent = get_agent_for_user(request.user)
    return render(
        request,
        "console/home.html",
        {
            "agent": agent,
            "max_chars": settings.MESSAGE_MAX_CHARS,
            "attach_accept": ",".join(settings.ATTACHMENT_TYPES),
        },
    )


def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers and test harnesses: the process answers and reaches its database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")


@login_required
def offline_messages(request: HttpRequest) -> HttpResponse:
    """What visitors left on the "leave a message" form: for agents and managers."""
    user = request.user
    if not (user.has_perm("escalation.use_console") or user.has_perm("escalation.view_reports")):
        raise PermissionDenied("Only agents and managers can read left messages.")
    page = Paginator(left_messages(), 25).get_page(request.GET.get("page"))
    return render(request, "console/offline_messages.html", {"page": page})


@login_required
def history(request: HttpRequest) -> HttpResponse:
    """The agent's own past chats, newest first, each linking to its Metadata and Flow tabs."""
    agent = get_agent_for_user(request.user)
    rows = agent_history(agent=agent)
    page = Paginator(rows, 25).get_page(request.GET.get("page"))
    return render(request, "console/history.html", {"agent": agent, "page": page})


# --- Canned replies: an agent's saved answers, inserted by typing #shortcut in the console -----
@login_required
def canned_replies(request: HttpRequest) -> HttpResponse:
    """The agent's own replies (add, edit, delete) and the group and global ones it may use."""
    agent = get_agent_for_user(request.user)
    form = CannedReplyForm(request.POST or None, owner=agent)
    if request.method == "POST" and form.is_valid():
        reply = form.save()
        messages.success(request, f"Saved #{reply.shortcut}.")
        return redirect("console:replies")
    usable = canned_replies_for(agent)
    shared = Paginator(usable.exclude(owner=agent), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "console/replies.html",
        {
            "form": form,
            "own": usable.filter(owner=agent),
            "shared": shared,
        },
        status=400 if form.errors else 200,
    )


def _own_reply(request: HttpRequest, reply_id: int) -> tuple[Agent, CannedReply]:
    """The agent and its own personal reply; 404 for anyone else's (ids cannot be probed)."""
    agent = get_agent_for_user(request.user)
    return agent, get_object_or_404(CannedReply, pk=reply_id, owner=agent)


@login_required
def canned_reply_edit(request: HttpRequest, reply_id: int) -> HttpResponse:
    agent, reply = _own_reply(request, reply_id)
    form = CannedReplyForm(request.POST or None, instance=reply, owner=agent)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved #{reply.shortcut}.")
        return redirect("console:replies")
    return render(
        request,
        "console/reply_form.html",
        {"form": form, "reply": reply},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def canned_reply_delete(request: HttpRequest, reply_id: int) -> HttpResponse:
    _, reply = _own_reply(request, reply_id)
    reply.delete()
    messages.success(request, f"Deleted #{reply.shortcut}.")
    return redirect("console:replies")


@login_required
def canned_replies_json(request: HttpRequest) -> JsonResponse:
    """What the console's reply box completes #shortcuts from."""
    agent = get_agent_for_user(request.user)
    rows = [
        {
            "id": r.pk,
            "shortcut": r.shortcut,
            "title": r.title,
            "text": r.text,
            "scope": r.scope,
            "group": r.group.name if r.group else None,
            "used_url": reverse("console:reply_used", args=[r.pk]),
        }
        for r in canned_replies_for(agent)
    ]
    return JsonResponse({"replies": rows})


@login_required
@require_POST
def canned_reply_used(request: HttpRequest, reply_id: int) -> HttpResponse:
    """The console inserted this reply: one more use."""
    agent = get_agent_for_user(request.user)
    if not services.count_canned_reply_use(agent=agent, reply_id=reply_id):
        raise Http404("No such reply.")
    return HttpResponse(status=204)
