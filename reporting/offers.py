"""Report queries about offers and wait estimates. Read-only; the definitions are part of the
product (docs/reports.md):

- *Accept rate* of an agent: offers it accepted / offers it answered or let lapse (accepted +
  declined + lapsed). Offers withdrawn before it could answer (another agent accepted first, the
  chat left the queue, the agent went away or filled up) and offers still open do not count.
  Counted by the time of the offer, for offers at the report's tier.
- *Median time to accept*: from the offer to the agent's accept, over its accepted offers.
- *Predicted vs actual wait*, per stage, over every estimate shown in the period (the notices,
  place-in-line updates and still-searching notices each store the estimate they showed) whose
  wait ended with an agent taking the chat: *predicted* is the middle of the range shown,
  *actual* is the time from showing it to the take; *error* = actual - predicted (positive: the
  wait was longer); *within ±25 %*: |error| <= 25 % of predicted; *longer than promised*: actual
  above the high end of the range. Estimates shown without a number ("wait not known yet") and
  waits that did not end with a take (timed out, visitor left) have no comparison; they are
  counted as shown. All tiers; the pipeline filter applies.
"""

import statistics
from collections import defaultdict
from typing import Any

from django.db import connections
from django.db.models import Count, Q, QuerySet

from escalation.models import Offer
from reporting import accuracy, satisfaction, selectors
from reporting.selectors import ReportFilter

ANSWERED = (Offer.Status.ACCEPTED, Offer.Status.DECLINED, Offer.Status.LAPSED)
NO_OFFERS: dict[str, Any] = {
    "offers": 0,
    "accepted": 0,
    "declined": 0,
    "lapsed": 0,
    "accept_rate": None,
    "median_accept_seconds": None,
}
BY_AGENT_CSV_COLUMNS = ["offers_answered", "accepted", "accept_rate", "median_seconds_to_accept"]
ACCURACY_CSV_COLUMNS = [
    "stage",
    "estimates_shown",
    "compared",
    "median_error_seconds",
    "within_25_percent",
    "longer_than_promised",
]


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def by_agent_csv_values(stats: dict[str, Any]) -> list[Any]:
    return [
        stats["offers"],
        stats["accepted"],
        _ratio(stats["accept_rate"]),
        _seconds(stats["median_accept_seconds"]),
    ]


def accuracy_csv_values(row: dict[str, Any]) -> list[Any]:
    return [
        row["stage"],
        row["shown"],
        row["compared"],
        _seconds(row["median_error_seconds"]),
        _ratio(row["within_25"]),
        _ratio(row["longer_than_promised"]),
    ]


def _offers(f: ReportFilter) -> QuerySet[Offer]:
    rows = Offer.objects.filter(
        offered_at__gte=f.since, offered_at__lt=f.until, entry__tier__level=f.tier_level
    )
    if f.group_id:
        rows = rows.filter(group_id=f.group_id)
    if f.agent_id:
        rows = rows.filter(agent_id=f.agent_id)
    if f.pipeline_id:
        rows = rows.filter(stage__pipeline_id=f.pipeline_id)
    return rows


def offer_stats_by_agent(f: ReportFilter) -> dict[int, dict[str, Any]]:
    """Per agent id: offers answered or lapsed, accepted, declined, lapsed, accept rate and
    median seconds to accept (None where there is nothing to measure)."""
    rows = _offers(f)
    stats: dict[int, dict[str, Any]] = {}
    for r in (
        rows.filter(status__in=ANSWERED)
        .values("agent_id")
        .annotate(
            answered=Count("pk"),
            accepted=Count("pk", filter=Q(status=Offer.Status.ACCEPTED)),
            declined=Count("pk", filter=Q(status=Offer.Status.DECLINED)),
            lapsed=Count("pk", filter=Q(status=Offer.Status.LAPSED)),
        )
        .order_by()
    ):
        stats[r["agent_id"]] = {
            "offers": r["answered"],
            "accepted": r["accepted"],
            "declined": r["declined"],
            "lapsed": r["lapsed"],
            "accept_rate": r["accepted"] / r["answered"] if r["answered"] else None,
            "median_accept_seconds": None,
        }
    for agent_id, median in _median_accept_seconds(
        rows.filter(status=Offer.Status.ACCEPTED)
    ).items():
        if agent_id in stats:
            stats[agent_id]["median_accept_seconds"] = median
    return stats


def by_agent_with_offers(f: ReportFilter) -> list[dict[str, Any]]:
    """The by-agent report's rows, each with its agent's offer numbers under "offers" and its
    survey answers under "csat"."""
    rows = selectors.by_agent(f)
    stats = offer_stats_by_agent(f)
    csat = satisfaction.csat_by_agent(f)
    for r in rows:
        r["offers"] = stats.get(r["agent_id"], NO_OFFERS)
        r["csat"] = csat.get(r["agent_id"], satisfaction.NO_CSAT)
    return rows


def _median_accept_seconds(accepted: QuerySet[Offer]) -> dict[int, float]:
    connection = connections[accepted.db]  # the reports replica where there is one
    if connection.vendor == "postgresql":
        sql, params = accepted.values("pk").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT agent_id, percentile_cont(0.5) WITHIN GROUP"  # noqa: S608 - the subquery is Django's; values are bound
                " (ORDER BY EXTRACT(EPOCH FROM (closed_at - offered_at)))"
                f" FROM {Offer._meta.db_table} WHERE id IN ({sql}) GROUP BY agent_id",
                params,
            )
            return {agent_id: float(median) for agent_id, median in cursor.fetchall()}
    waits: dict[int, list[float]] = defaultdict(list)
    for agent_id, offered_at, closed_at in accepted.values_list(
        "agent_id", "offered_at", "closed_at"
    ):
        if closed_at is not None:
            waits[agent_id].append((closed_at - offered_at).total_seconds())
    return {agent_id: statistics.median(values) for agent_id, values in waits.items()}


def predicted_vs_actual(f: ReportFilter) -> list[dict[str, Any]]:
    """Per stage (and all stages): estimates shown, compared, median error, share within ±25 %
    and share longer than promised (reporting/accuracy.py: summaries for finished days)."""
    return accuracy.predicted_vs_actual(f)
