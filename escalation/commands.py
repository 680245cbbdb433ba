"""Slash commands typed in the console composer (pure parsing; the consumer runs them)."""

from dataclasses import dataclass

COMMANDS_HELP = (
    "Commands: /escalate <keyword> <hand-over note> hands the chat to another team "
    "(/escalate alone lists the targets); /consult @name <question> asks a colleague or a "
    "group about the chat in an internal thread (/consult alone lists whom); /help shows this "
    "list."
)


@dataclass(frozen=True)
class Command:
    name: str
    keyword: str = ""
    rest: str = ""


def parse_command(text: str) -> Command | None:
    """`/escalate billing Disputed invoice` → Command("escalate", "billing", "Disputed invoice").
    None when the text is not a command (does not start with "/")."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        return None
    name, _, args = stripped[1:].partition(" ")
    keyword, _, rest = args.strip().partition(" ")
    return Command(name=name.lower(), keyword=keyword, rest=rest.strip())
