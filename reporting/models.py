"""Summary tables for the count reports (see reporting/summaries.py).

A finished day's counts never change: every count is keyed by a moment written once (an escalation's
request, an assignment's end, a queue entry's timeout, a fallback). So each site-time-zone day that
is over is counted once, by dimension, into DailyFact, and the reports read those rows for finished
days and the raw tables only for the days not summarised yet (today, normally).
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class DailyFact(models.Model):
    """How many events of one kind happened on one day (site time zone), for one combination of
    dimensions. Ids are plain integers, not foreign keys: a summary outlives configuration edits."""

    class Metric(models.TextChoices):
        HANDLED = "handled", "Handled at the tier"
        ESCALATED = "escalated", "Escalated by an agent"
        TIMED_OUT = "timed_out", "Wait timed out"
        MOVED = "moved", "Moved on by a timeout or fallback"
        LEFT_MESSAGE = "left_message", "Fell back to the leave-a-message form"
        ENDED = "ended", "Fell back to ending the chat"

    day = models.DateField()
    metric = models.CharField(max_length=16, choices=Metric.choices)
    tier_id = models.IntegerField(null=True)
    stage_id = models.IntegerField(null=True)
    pipeline_id = models.IntegerField(null=True)
    group_id = models.IntegerField(null=True)
    agent_id = models.IntegerField(null=True)
    reason = models.CharField(max_length=80, blank=True)
    target = models.CharField(max_length=255, blank=True)
    n = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["metric", "day"], name="fact_metric_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.metric} ×{self.n}"


class SummarisedDay(models.Model):
    """A day whose facts are in DailyFact, counted in `time_zone` (a change of TIME_ZONE makes
    every day unsummarised until it is counted again). `has_durations`: its DailyDuration
    histograms are there too, which waits until every turn taken that day has ended."""

    day = models.DateField()
    time_zone = models.CharField(max_length=64)
    has_durations = models.BooleanField(default=False)
    built_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "time_zone"], name="summarised_day_once")
        ]

    def __str__(self) -> str:
        return f"{self.day} ({self.time_zone})"


class DailyAccuracy(models.Model):
    """Wait estimates shown on one day (site time zone) at one stage whose error (actual minus
    the middle of the range, in half seconds) was `error_halves` (None: not compared): how many,
    how many within ±25%, how many waits longer than the range's high end."""

    day = models.DateField()
    stage_id = models.IntegerField()
    pipeline_id = models.IntegerField()
    error_halves = models.IntegerField(null=True)
    shown = models.PositiveIntegerField()
    within = models.PositiveIntegerField()
    longer = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["day"], name="accuracy_day")]

    def __str__(self) -> str:
        return f"{self.day} stage {self.stage_id} error {self.error_halves}/2 ×{self.shown}"


class DailyDuration(models.Model):
    """How many of one day's friction events (site time zone) fell in one duration bucket, for
    one tier, stage, group and agent: a histogram that adds up across days, from which the
    friction report reads its medians and 90th percentiles (reporting/durations.py).

    `seconds` is the bucket: the duration rounded to the whole second under an hour, to the
    whole minute from an hour on; None for the events without a duration (chats started and
    dropped, and answers whose wait was not found). `seconds_total` is the sum of the exact
    durations in the bucket, so totals do not carry the rounding."""

    class Metric(models.TextChoices):
        STARTED = "started", "Chat started (a first wait)"
        DROPPED = "dropped", "Wait at a drop stage"
        ABANDONED = "abandoned", "Visitor left while waiting: the wait"
        ANSWER = "answer", "Taken from the queue: the wait"
        REPLY = "reply", "First response of a turn"
        HANDLE = "handle", "Ended turn: its length"

    day = models.DateField()
    metric = models.CharField(max_length=16, choices=Metric.choices)
    tier_id = models.IntegerField()
    stage_id = models.IntegerField()
    pipeline_id = models.IntegerField(null=True)
    group_id = models.IntegerField(null=True)
    agent_id = models.IntegerField(null=True)
    seconds = models.IntegerField(null=True)
    n = models.PositiveIntegerField()
    seconds_total = models.FloatField(null=True)

    class Meta:
        indexes = [models.Index(fields=["day"], name="duration_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.metric} {self.seconds} s ×{self.n}"


class LiveSettings(models.Model):
    """The live view's settings, one row edited in admin. Every snapshot reads it, so a change
    applies at once in every process, with no restart."""

    ONLY_ID = 1
    DEFAULT_TARGET_SECONDS = 60

    # A fixed key rather than a sequence: the admin's "add" always makes row 1, and the
    # constraint refuses a second row whatever writes it.
    id = models.PositiveSmallIntegerField(primary_key=True, default=ONLY_ID, editable=False)
    service_level_target_seconds = models.PositiveIntegerField(
        "service level target (seconds)",
        default=DEFAULT_TARGET_SECONDS,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 3600)],
        help_text=(
            "A chat counts as answered in time when an agent joins it within this many seconds "
            "of its start. The live view's service level is the share of today's chats that were."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "live view settings"
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="live_settings_one_row")
        ]

    def __str__(self) -> str:
        return f"Service level target {self.service_level_target_seconds} s"
