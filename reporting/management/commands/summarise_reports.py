"""Count finished days into the report summaries (the periodic task does this on its own)."""

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reporting import summaries


class Command(BaseCommand):
    help = (
        "Summarise the finished days the report summaries lack (all of them with --rebuild, or "
        "the days from --start to --end)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rebuild", action="store_true", help="count every day again")
        parser.add_argument("--start", type=date.fromisoformat, help="first day, YYYY-MM-DD")
        parser.add_argument("--end", type=date.fromisoformat, help="last day, YYYY-MM-DD")

    def handle(self, *args: Any, **options: Any) -> None:
        start, end = options["start"], options["end"]
        if (start is None) != (end is None):
            raise CommandError("Give both --start and --end, or neither.")
        if start and end:
            if start > end:
                raise CommandError("--start is after --end.")
            days = summaries.summarise(start, end)
        else:
            if options["rebuild"]:
                summaries.forget_all()
            days = summaries.summarise_pending(max_days=100_000)
        self.stdout.write(
            f"Summarised {days} day(s); the last finished day is {summaries.last_closed_day()}."
        )
