import time
from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from escalation import demo_history
from escalation.demo import DEMO_PASSWORD, DEMO_SITE, load_demo_configuration
from escalation.models import Site
from reporting import summaries


def history_days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise ArgumentTypeError(f"{value!r} is not a whole number of days") from None
    if not 1 <= days <= demo_history.MAX_DAYS:
        raise ArgumentTypeError(f"give 1 to {demo_history.MAX_DAYS} days, not {days}")
    return days


class Command(BaseCommand):
    help = (
        "Create or refresh the demo configuration and demo users (safe to run again), and play "
        "the demo's history of past chats through the services once (see --history-days)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--history-days",
            type=history_days,
            default=demo_history.DEFAULT_DAYS,
            help=f"days of simulated chats up to now (default {demo_history.DEFAULT_DAYS})",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=demo_history.DEFAULT_SEED,
            help="the random seed of the history: the same seed, the same history",
        )
        choice = parser.add_mutually_exclusive_group()
        choice.add_argument("--no-history", action="store_true", help="load the configuration only")
        choice.add_argument(
            "--reset-history",
            action="store_true",
            help="delete the demo history (its chats only) and play it again",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        logins = load_demo_configuration()
        self.stdout.write(self.style.SUCCESS("Demo configuration loaded."))
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for login in logins:
            self.stdout.write(f"  {login.username:<8} {login.role:<8} {login.detail}")
        site = Site.objects.get(name=DEMO_SITE)
        self.stdout.write(
            f"Chat widget: the site “{site.name}” (key {site.key}) may be embedded from "
            "http://localhost:8080 (docs/widget.md)."
        )
        if not options["no_history"]:
            self.load_history(
                days=options["history_days"],
                seed=options["seed"],
                reset=options["reset_history"],
            )

    def load_history(self, *, days: int, seed: int, reset: bool) -> None:
        span = demo_history.history_span()
        if span is not None and not reset:
            first, last = (timezone.localdate(t) for t in span)
            self.stdout.write(
                f"Demo history already there ({first} to {last}); "
                "load_demo --reset-history plays it again up to now."
            )
            return
        if span is not None:
            deleted = demo_history.delete_demo_history()
            self.stdout.write(f"Deleted the demo history's {deleted} chats.")
        self.stdout.write(f"Playing {days} days of demo history through the services ...")
        began = time.monotonic()
        try:
            history = demo_history.replay_history(days=days, seed=seed)
        except demo_history.HistoryRefused as exc:
            self.stdout.write(self.style.WARNING(f"Demo history not played: {exc}"))
            if span is not None:  # the days of the deleted history are counted again
                summaries.summarise(timezone.localdate(span[0]), timezone.localdate())
            return
        # The report summaries of those days are counted again, with the history (and without
        # a history deleted).
        first = min(history.first, span[0]) if span else history.first
        summaries.summarise(timezone.localdate(first), timezone.localdate(history.last))
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo history: {history.chats} chats from {timezone.localdate(history.first)} "
                f"to now, in {time.monotonic() - began:.0f} s."
            )
        )
