"""The reports as JSON, with the same filters and the same selectors as the pages."""

from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from helpdesk.api_errors import ERROR_RESPONSES
from reporting import friction, offers, selectors
from reporting.forms import ReportFilterForm
from reporting.routers import report_reads
from reporting.selectors import ReportFilter


class IsManager(BasePermission):
    message = "Reports are for managers."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(
            request.user
            and request.user.is_authenticated
            and request.user.has_perm("escalation.view_reports")
        )


def _escalated(f: ReportFilter, request: Request) -> Any:
    return [
        {**r, "when": r["when"].isoformat()}
        for r in list(selectors.escalated_rows(f, request.query_params.get("sort", "-when")))[:1000]
    ]


def _friction(f: ReportFilter, request: Request) -> Any:
    by = request.query_params.get("by", "all")
    if by != "all" and by not in friction.BREAKDOWNS:
        raise ValidationError({"by": ["Break the report down by tier, stage, group or agent."]})
    report = friction.friction(f)
    shown = friction.BREAKDOWNS if by == "all" else (by,)
    return {
        "totals": report["totals"],
        **{name: report["tables"][name] for name in shown},
        "days": [{**d, "day": d["day"].isoformat()} for d in report["days"]],
    }


REPORTS: dict[str, Callable[[ReportFilter, Request], Any]] = {
    "escalated-chats": _escalated,
    "over-time": lambda f, r: [
        {**row, "bucket": row["bucket"].isoformat()}
        for row in selectors.handled_vs_escalated_over_time(
            f, by_week=r.query_params.get("by") == "week"
        )
    ],
    "by-agent": lambda f, r: offers.by_agent_with_offers(f),
    "predicted-vs-actual": lambda f, r: offers.predicted_vs_actual(f),
    "reasons": lambda f, r: selectors.by_reason(f),
    "targets": lambda f, r: selectors.by_target(f),
    "waits": lambda f, r: {
        "wait_after_escalation": selectors.wait_after_escalation(f),
        "time_to_escalate": selectors.time_to_escalate(f),
    },
    "fallbacks": lambda f, r: selectors.timeouts_and_fallbacks(f),
    "friction": _friction,
}

FILTER_PARAMETERS = [
    OpenApiParameter("start", str, description="First day (YYYY-MM-DD), site time zone"),
    OpenApiParameter("end", str, description="Last day (YYYY-MM-DD); default today"),
    OpenApiParameter("tier", int, description="Tier level the report is about; default 1"),
    OpenApiParameter("group", int),
    OpenApiParameter("agent", int),
    OpenApiParameter("pipeline", int),
    OpenApiParameter(
        "by",
        str,
        enum=["day", "week", "all", "tier", "stage", "group", "agent"],
        description="over-time: day or week; friction: all (default) or one breakdown",
    ),
    OpenApiParameter(
        "sort",
        str,
        enum=["when", "-when", "agent", "wait", "-wait"],
        description="escalated-chats only (at most 1,000 rows; CSV for all)",
    ),
]


class ReportApi(APIView):
    permission_classes = [IsAuthenticated, IsManager]

    @extend_schema(
        parameters=FILTER_PARAMETERS,
        responses={200: OpenApiTypes.OBJECT, **ERROR_RESPONSES},
        description="Report names: " + ", ".join(REPORTS),
    )
    def get(self, request: Request, name: str) -> Response:
        report = REPORTS.get(name)
        if report is None:
            raise NotFound(f"No report {name!r}; reports: {', '.join(REPORTS)}.")
        form = ReportFilterForm(request.query_params)
        if not form.is_valid():
            raise ValidationError({k: [str(e) for e in v] for k, v in form.errors.items()})
        f = form.to_filter()
        with report_reads():
            data = report(f, request)
        return Response(
            {
                "report": name,
                "start": f.start.isoformat(),
                "end": f.end.isoformat(),
                "tier": f.tier_level,
                "data": data,
            }
        )
