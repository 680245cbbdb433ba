"""Report pages for managers, each with its CSV export (?format=csv) of exactly what it shows."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render

from chat.models import ChatSession
from escalation.selectors import (
    agent_may_view_chat,
    chats_visible_to,
    get_agent_for_user,
    took_part_in_consult,
)
from reporting import charts, friction, live, offers, search, selectors, tags, transcript
from reporting import satisfaction as csat
from reporting.exports import copy_csv_response, csv_response
from reporting.forms import ChatSearchForm, ReportFilterForm
from reporting.routers import report_reads, reports_alias, stream_report_reads
from reporting.selectors import ReportFilter

View = Callable[..., HttpResponseBase]


def require_manager(request: HttpRequest) -> None:
    if not request.user.has_perm("escalation.view_reports"):
        raise PermissionDenied("Reports are for managers.")


def manager_report(
    view: Callable[[HttpRequest, ReportFilter, dict[str, Any]], HttpResponseBase],
) -> View:
    """Managers only; parses the filters (an invalid one shows the form's errors, no report)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponseBase:
        require_manager(request)
        form = ReportFilterForm(request.GET or None)
        if request.GET and not form.is_valid():
            return render(request, "reporting/invalid.html", {"form": form}, status=400)
        if not request.GET:  # the defaults, shown in the form: the last 30 days, tier 1
            form = ReportFilterForm(ReportFilterForm.defaults())
            form.is_valid()
        query = request.GET.copy()
        for volatile in ("format", "page", "sort", "by"):
            query.pop(volatile, None)
        context = {
            "form": form,
            "filters": form.to_filter(),
            "query": query.urlencode(),
            "time_zone": settings.TIME_ZONE,
        }
        with report_reads():
            response = view(request, form.to_filter(), context)
        if response.streaming:
            response.streaming_content = stream_report_reads(response.streaming_content)  # type: ignore[attr-defined]
        return response

    return wrapper


def wants_csv(request: HttpRequest) -> bool:
    return request.GET.get("format") == "csv"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


@manager_report
def reports_home(request: HttpRequest, f: ReportFilter, context: dict[str, Any]) -> HttpResponse:
    context["title"] = "Reports"
    rows = selectors.handled_vs_escalated_over_time(f)
    context["handled"] = sum(r["handled"] for r in rows)
    context["escalated"] = sum(r["escalated"] for r in rows)
    return render(request, "reporting/home.html", context)


@manager_report
def escalated_chats(
    request: HttpRequest, f: ReportFilter, context: dict[str, Any]
) -> HttpResponseBase:
    context["title"] = f"Level {f.tier_level} escalated chats"
    context["tag_filter"] = True  # this list can narrow by a chat's tag; the others cannot
    sort = request.GET.get("sort", "-when")
    if sort not in selectors.ESCALATED_SORTS:
        sort = "-when"
    if wants_csv(request):
        filename = f"escalated-chats-{f.start}-{f.end}.csv"
        header = selectors.ESCALATED_CSV_HEADER
        if connections[reports_alias()].vendor == "postgresql":
            return copy_csv_response(filename, header, selectors.escalated_csv_querysets(f, sort))
        return csv_response(filename, header, selectors.escalated_csv_rows(f, sort))
    page = Paginator(selectors.escalated_chats(f, sort), 50).get_page(request.GET.get("page"))
    context.update(page=page, rows=[selectors.row_of(e) for e in page.object_list], sort=sort)
    return render(request, "reporting/escalated.html", context)


@manager_report
def over_time(request: HttpRequest, f: ReportFilter, context: dict[str, Any]) -> HttpResponseBase:
    context["title"] = f"Level {f.tier_level} chats handled vs escalated over time"
    by_week = request.GET.get("by") == "week"
    rows = selectors.handled_vs_escalated_over_time(f, by_week=by_week)
    if wants_csv(request):
        return csv_response(
            f"handled-vs-escalated-{'week' if by_week else 'day'}-{f.start}-{f.end}.csv",
            ["week_starting" if by_week else "day", "handled", "escalated"],
            ((r["bucket"].isoformat(), r["handled"], r["escalated"]) for r in rows),
        )
    context.update(
        rows=rows,
        by_week=by_week,
        chart=charts.stacked_columns(rows, label_key="bucket", series=["handled", "escalated"]),
    )
    return render(request, "reporting/over_time.html", context)


@manager_report
def by_agent(request: HttpRequest, f: ReportFilter, context: dict[str, Any]) -> HttpResponseBase:
    context["title"] = f"Tier {f.tier_level} chats handled vs escalated by agent"
    rows = offers.by_agent_with_offers(f)
    if wants_csv(request):
        return csv_response(
            f"by-agent-{f.start}-{f.end}.csv",
            [
                "agent",
                "handled",
                "escalated",
                "escalation_rate",
                *offers.BY_AGENT_CSV_COLUMNS,
                *csat.CSAT_CSV_COLUMNS,
            ],
            (
                (
                    r["agent"],
                    r["handled"],
                    r["escalated"],
                    "" if r["escalation_rate"] is None else f"{r['escalation_rate']:.3f}",
                    *offers.by_agent_csv_values(r["offers"]),
                    *csat.csat_csv_values(r["csat"]),
                )
                for r in rows
            ),
        )
    context.update(
        rows=rows,
        chart=charts.horizontal_bars(rows, label_key="agent", series=["handled", "escalated"]),
    )
    return render(request, "reporting/by_agent.html", context)


@manager_report
def reasons_and_targets(
    request: HttpRequest, f: ReportFilter, context: dict[str, Any]
) -> HttpResponseBase:
    context["title"] = "Escalations by reason and by target"
    reasons, targets = selectors.by_reason(f), selectors.by_target(f)
    if wants_csv(request):
        rows = [("reason", r["reason"], r["escalations"]) for r in reasons]
        rows += [("target", t["target"], t["escalations"]) for t in targets]
        return csv_response(
            f"escalations-by-reason-and-target-{f.start}-{f.end}.csv",
            ["kind", "name", "escalations"],
            rows,
        )
    context.update(
        reasons=reasons,
        targets=targets,
        reason_chart=charts.horizontal_bars(reasons, label_key="reason", series=["escalations"]),
        target_chart=charts.horizontal_bars(targets, label_key="target", series=["escalations"]),
    )
    return render(request, "reporting/reasons.html", context)


@manager_report
def waits(request: HttpRequest, f: ReportFilter, context: dict[str, Any]) -> HttpResponseBase:
    context["title"] = "Wait after escalation and time to escalate"
    after, to_escalate = selectors.wait_after_escalation(f), selectors.time_to_escalate(f)
    if wants_csv(request):
        return csv_response(
            f"escalation-times-{f.start}-{f.end}.csv",
            ["measure", "count", "median_seconds", "p90_seconds"],
            [
                (
                    "wait_after_escalation",
                    after["taken"],
                    _seconds(after["median_seconds"]),
                    _seconds(after["p90_seconds"]),
                ),
                (
                    "time_to_escalate",
                    to_escalate["escalations"],
                    _seconds(to_escalate["median_seconds"]),
                    _seconds(to_escalate["p90_seconds"]),
                ),
            ],
        )
    context.update(after=after, to_escalate=to_escalate)
    return render(request, "reporting/waits.html", context)


@manager_report
def predicted_vs_actual(
    request: HttpRequest, f: ReportFilter, context: dict[str, Any]
) -> HttpResponseBase:
    context["title"] = "Predicted vs actual wait"
    rows = offers.predicted_vs_actual(f)
    if wants_csv(request):
        return csv_response(
            f"predicted-vs-actual-wait-{f.start}-{f.end}.csv",
            offers.ACCURACY_CSV_COLUMNS,
            (offers.accuracy_csv_values(r) for r in rows),
        )
    context.update(rows=rows)
    return render(request, "reporting/estimates.html", context)


@manager_report
def fallbacks(request: HttpRequest, f: ReportFilter, context: dict[str, Any]) -> HttpResponseBase:
    context["title"] = "Timeouts and fallbacks by stage"
    rows = selectors.timeouts_and_fallbacks(f)
    if wants_csv(request):
        return csv_response(
            f"timeouts-and-fallbacks-{f.start}-{f.end}.csv",
            ["stage", "timed_out", "moved_on", "left_message_form", "ended_missed"],
            ((r["stage"], r["timed_out"], r["moved"], r["left_message"], r["ended"]) for r in rows),
        )
    context.update(rows=rows)
    return render(request, "reporting/fallbacks.html", context)


@manager_report
def friction_report(
    request: HttpRequest, f: ReportFilter, context: dict[str, Any]
) -> HttpResponseBase:
    context["title"] = "Friction: where chats stall"
    by = request.GET.get("by", "all")
    if by != "all" and by not in friction.BREAKDOWNS:
        context["error"] = "Break the report down by tier, stage, group or agent (or all)."
        return render(request, "reporting/invalid.html", context, status=400)
    shown = friction.BREAKDOWNS if by == "all" else (by,)
    report = friction.friction(f)
    if wants_csv(request):
        return csv_response(
            f"friction-{by}-{f.start}-{f.end}.csv",
            friction.CSV_HEADER,
            friction.csv_rows(report, shown),
        )
    context.update(
        report=report,
        by=by,
        tables=[(name, report["tables"][name]) for name in shown],
        chart=charts.day_columns(report["days"], series=list(friction.DAY_SERIES)),
    )
    return render(request, "reporting/friction.html", context)


@manager_report
def satisfaction(
    request: HttpRequest, f: ReportFilter, context: dict[str, Any]
) -> HttpResponseBase:
    context["title"] = "Satisfaction (survey answers) by tier, group and agent"
    if wants_csv(request):
        by = request.GET.get("by", "agent")
        if by not in csat.BREAKDOWNS:
            raise Http404("Break the report down by tier, group or agent.")
        return csv_response(
            f"satisfaction-by-{by}-{f.start}-{f.end}.csv",
            [by, *csat.CSV_HEADER],
            (
                (r["label"], r["answers"], f"{r['average']:.2f}", f"{r['satisfied_share']:.3f}")
                for r in csat.satisfaction(f, by)
            ),
        )
    context.update(tables=[(by, csat.satisfaction(f, by)) for by in csat.BREAKDOWNS])
    return render(request, "reporting/satisfaction.html", context)


@manager_report
def by_tag(request: HttpRequest, f: ReportFilter, context: dict[str, Any]) -> HttpResponseBase:
    context["title"] = "Chats by tag"
    if wants_csv(request):
        return csv_response(
            f"chats-by-tag-{f.start}-{f.end}.csv", tags.CSV_HEADER, tags.csv_rows(f)
        )
    context["rows"] = tags.by_tag(f)
    return render(request, "reporting/tags.html", context)


@login_required
def live_view(request: HttpRequest) -> HttpResponse:
    """What is happening now, drawn from a snapshot at once; the page's socket (/ws/live/)
    keeps it current. Read from the primary, not the reports' replica: this page is about the
    last seconds, which a replica may not have yet."""
    require_manager(request)
    return render(request, "reporting/live.html", {"live": live.live_snapshot()})


@login_required
def search_chats(request: HttpRequest) -> HttpResponse:
    """Past chats by their words and details: managers over every chat, agents over the chats
    they may see (held, holding, waiting in their queues)."""
    user = request.user
    if user.has_perm("escalation.view_reports"):
        visible = ChatSession.objects.all()
    else:
        visible = chats_visible_to(agent=get_agent_for_user(user))
    form = ChatSearchForm(request.GET or None)
    context: dict[str, Any] = {"form": form, "searched": False}
    if request.GET and form.is_valid():
        page = form.cleaned_data.get("page") or 1
        rows, more = search.page_of(visible, form.to_search(), page)
        query = request.GET.copy()
        query.pop("page", None)
        context.update(searched=True, rows=rows, more=more, page=page, query=query.urlencode())
    return render(request, "reporting/search.html", context, status=400 if form.errors else 200)


def _may_view_chat(request: HttpRequest, chat_id: int) -> None:
    """Managers see every chat; agents those they hold or held, those waiting in their queues,
    and those they were consulted on (the colleague named, or the one who answered: for good,
    since they read it and wrote in it; a group's other members only while the consult is
    open). Anyone else gets a 404, as for a missing chat: a 403 would tell an agent which chat
    ids exist."""
    user = request.user
    if not user.has_perm("escalation.view_reports"):
        agent = get_agent_for_user(user)
        if not (
            agent_may_view_chat(agent=agent, chat_id=chat_id)
            or took_part_in_consult(agent=agent, chat_id=chat_id)
        ):
            raise Http404("No such chat.")


TABS = ("metadata", "flow", "transcript")


@login_required
def chat_detail(request: HttpRequest, chat_id: int) -> HttpResponse:
    """One chat's Metadata, Flow and Transcript tabs: managers, and agents who may see the
    chat."""
    _may_view_chat(request, chat_id)
    detail = selectors.chat_detail(chat_id=chat_id)
    tab = request.GET.get("tab", "")
    tab = tab if tab in TABS else "metadata"
    if tab == "transcript":
        detail["transcript"] = transcript.chat_transcript(chat=detail["chat"])
    return render(request, "reporting/chat.html", {**detail, "tab": tab})


@login_required
def chat_transcript_download(request: HttpRequest, chat_id: int, fmt: str) -> HttpResponseBase:
    """The Transcript tab's lines as a CSV or JSON file."""
    _may_view_chat(request, chat_id)
    chat = ChatSession.objects.filter(pk=chat_id).first()
    if chat is None:
        raise Http404("No such chat.")
    lines = transcript.chat_transcript(chat=chat)
    filename = f"chat-{chat.pk}-transcript.{fmt}"
    if fmt == "csv":
        return csv_response(filename, transcript.CSV_HEADER, transcript.csv_rows(lines))
    response = JsonResponse(
        {
            "chat": chat.pk,
            "visitor": chat.visitor_name,
            "topic": chat.topic,
            "status": chat.status,
            "created_at": chat.created_at.isoformat(),
            "ended_at": chat.ended_at.isoformat() if chat.ended_at else None,
            "lines": [line.as_dict() for line in lines],
        },
        json_dumps_params={"ensure_ascii": False},
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
