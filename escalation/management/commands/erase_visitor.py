"""`manage.py erase_visitor --email carol@example.com` (or `--chat 123`): the right to erasure.

Ends the visitor's open chats, then deletes their messages, name, e-mail, browser context,
hand-over notes and left messages; the reports keep their anonymous numbers."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from escalation.services import retention


class Command(BaseCommand):
    help = "Erase one visitor's transcripts and personal data (by e-mail or chat number)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", default="", help="every chat with this e-mail")
        parser.add_argument("--chat", type=int, default=None, help="one chat, by number")
        parser.add_argument("--dry-run", action="store_true", help="list the chats, change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        email, chat_id = options["email"].strip(), options["chat"]
        if not email and chat_id is None:
            raise CommandError("Give --email or --chat.")
        chat_ids = retention.visitor_chat_ids(email=email, chat_id=chat_id)
        if not chat_ids:
            raise CommandError("No chat matches; nothing erased.")
        if options["dry_run"]:
            self.stdout.write(f"Would erase {len(chat_ids)} chat(s): {chat_ids}")
            return
        chats, messages = retention.erase_visitor(email=email, chat_id=chat_id)
        self.stdout.write(f"Erased {chats} chat(s) and {messages} message(s).")
