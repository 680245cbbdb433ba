"""Days and spans in the site's time zone, shared by the summaries and the reports built on them."""

import zoneinfo
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db.models import Q

from reporting.models import SummarisedDay


def site_tz() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def day_bounds(first: date, last: date, tz: zoneinfo.ZoneInfo) -> tuple[datetime, datetime]:
    """From the start of `first` to the start of the day after `last`, in `tz`."""
    return (
        datetime.combine(first, time.min, tzinfo=tz),
        datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz),
    )


def runs(days: Iterable[date]) -> Iterator[tuple[date, date]]:
    """Consecutive days as (first, last) pairs."""
    first = last = None
    for day in sorted(days):
        if last is not None and day == last + timedelta(days=1):
            last = day
            continue
        if first is not None and last is not None:
            yield first, last
        first = last = day
    if first is not None and last is not None:
        yield first, last


def summarised_days(first: date, last: date, *, with_durations: bool = False) -> set[date]:
    """The days summarised in the site's time zone (`with_durations`: those whose duration
    histograms are final too)."""
    days = SummarisedDay.objects.filter(time_zone=settings.TIME_ZONE, day__gte=first, day__lte=last)
    if with_durations:
        days = days.filter(has_durations=True)
    return set(days.values_list("day", flat=True))


def in_days(day_runs: Iterable[tuple[date, date]], field: str = "day") -> Q:
    """`field` (a date) within any of the (first, last) runs, both ends included."""
    q = Q(pk__in=[])
    for first, last in day_runs:
        q |= Q(**{f"{field}__gte": first, f"{field}__lte": last})
    return q


def in_spans(spans: Iterable[tuple[datetime, datetime]], field: str) -> Q:
    """`field` (a moment) within any of the [start, end) spans."""
    q = Q(pk__in=[])
    for low, high in spans:
        q |= Q(**{f"{field}__gte": low, f"{field}__lt": high})
    return q
