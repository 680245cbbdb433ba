"""User-facing texts: the shipped defaults, their placeholders, and how they are rendered.

Admins edit the texts as MessageTemplate rows (a default row per event, overridable per pipeline
and per stage). The defaults below are also what renders when no row exists at all.
"""

import string
import unicodedata
from typing import Final

from django.core.exceptions import ValidationError

DEFAULT_TEXTS: Final[dict[str, str]] = {
    "queued": "Thanks, {visitor}. You are in the queue for {team}; an agent will be with you soon.",
    "position": "You are number {position} in line, {wait}.",
    "position_no_estimate": "You are number {position} in line.",
    "agent_joined": "{agent} from {team} joined the chat.",
    "transfer": "You are being transferred to {team}. Estimated wait: {wait}.",
    "new_wait": "You are number {position} in line for {team}, {wait}.",
    "timeout": "Nobody from {team} could take your chat yet.",
    "fallback": "We are moving your chat to {team}.",
    "previous_tier": "We are taking you back to {team}.",
    "offline": (
        "Sorry, nobody is available right now. Please leave a message and we will get back to you."
    ),
    "message_left": "Thank you, we have your message and will reply by e-mail.",
    "agent_left": "{agent} left the chat.",
    "ended": "The chat has ended. Thank you for contacting us.",
    "missed": "Sorry, nobody could take your chat. The chat has ended.",
    "still_searching": "Still looking for an agent: you are number {position} in line, {wait}.",
    "dropped": "You left the queue. Someone from {team} will get back to you.",
    "visitor_left": "{visitor} left the chat.",
    "survey": "How did we do, {visitor}? Please rate this chat below.",
    "after_agent_message": "Anything else? Leave us a message below and we will reply by e-mail.",
    "warm_requested": "{agent} is bringing in someone from {team} to help you. Stay with us.",
    "warm_stayed": "{agent} will keep helping you.",
    "warm_requested_colleague": "{agent} is bringing in {colleague} to help you. Stay with us.",
}

PLACEHOLDER_HELP: Final[dict[str, str]] = {
    "visitor": "the visitor's name",
    "team": "the agent group or stage the chat waits for, by its public name",
    "tier": "that queue's tier, by its public name",
    "position": "the place in line (1 = next)",
    "wait": "the wait estimate, e.g. “about 3 minutes” (or “wait not known yet”)",
    "agent": "the agent's display name",
    "colleague": "the colleague an agent brings in, by display name",
}

ALLOWED_PLACEHOLDERS: Final[dict[str, frozenset[str]]] = {
    "queued": frozenset({"visitor", "team", "tier", "position", "wait"}),
    "position": frozenset({"visitor", "team", "tier", "position", "wait"}),
    "position_no_estimate": frozenset({"visitor", "team", "tier", "position"}),
    "agent_joined": frozenset({"visitor", "agent", "team", "tier"}),
    "transfer": frozenset({"visitor", "team", "tier", "position", "wait"}),
    "new_wait": frozenset({"visitor", "team", "tier", "position", "wait"}),
    "timeout": frozenset({"visitor", "team", "tier"}),
    "fallback": frozenset({"visitor", "team", "tier", "position", "wait"}),
    "previous_tier": frozenset({"visitor", "team", "tier", "position", "wait"}),
    "offline": frozenset({"visitor", "team", "tier"}),
    "message_left": frozenset({"visitor"}),
    "agent_left": frozenset({"visitor", "agent", "team", "tier"}),
    "ended": frozenset({"visitor", "agent"}),
    "missed": frozenset({"visitor", "team", "tier"}),
    "still_searching": frozenset({"visitor", "team", "tier", "position", "wait"}),
    "dropped": frozenset({"visitor", "team", "tier"}),
    "visitor_left": frozenset({"visitor", "agent"}),
    "survey": frozenset({"visitor", "agent"}),
    "after_agent_message": frozenset({"visitor", "agent"}),
    "warm_requested": frozenset({"visitor", "agent", "team", "tier"}),
    "warm_stayed": frozenset({"visitor", "agent", "team", "tier"}),
    "warm_requested_colleague": frozenset({"visitor", "agent", "colleague", "tier"}),
}


def placeholders_in(text: str) -> list[str]:
    """The placeholder names a template uses; raises ValidationError when braces are broken."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValidationError(
            "The text has an unmatched “{” or “}”: %(error)s. Write “{{” or “}}” for a brace.",
            params={"error": exc},
            code="bad_braces",
        ) from exc
    return [field for _, field, _, _ in parsed if field is not None]


def validate_template_text(*, event: str, text: str) -> None:
    allowed = ALLOWED_PLACEHOLDERS.get(event, frozenset())
    names = placeholders_in(text)
    unknown = sorted({name for name in names if name not in allowed})
    if unknown:
        raise ValidationError(
            "Unknown placeholder %(unknown)s. This message can use: %(allowed)s.",
            params={
                "unknown": ", ".join("{" + name + "}" for name in unknown),
                "allowed": ", ".join("{" + name + "}" for name in sorted(allowed)) or "none",
            },
            code="unknown_placeholder",
        )


# Canned replies (an agent's saved answers) are filled in by the console as they are inserted.
REPLY_PLACEHOLDERS: Final[frozenset[str]] = frozenset({"visitor", "agent"})


def validate_reply_text(text: str) -> None:
    names = placeholders_in(text)
    unknown = sorted({name for name in names if name not in REPLY_PLACEHOLDERS})
    if unknown:
        raise ValidationError(
            "Unknown placeholder %(unknown)s. A saved reply can use {visitor} (the visitor's "
            "name) and {agent} (yours).",
            params={"unknown": ", ".join("{" + name + "}" for name in unknown)},
            code="unknown_placeholder",
        )


def placeholder_help_text() -> str:
    return "Placeholders: " + "; ".join(
        "{" + name + "} = " + meaning for name, meaning in PLACEHOLDER_HELP.items()
    )


class _KeepMissing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


# Bidirectional classes that can reorder the text around them: right-to-left letters and the
# embedding, override and isolate controls.
_REORDERING = {"R", "AL", "RLE", "RLO", "LRE", "LRO", "PDF", "RLI", "LRI", "FSI", "PDI"}


def isolate(value: str) -> str:
    """A value as it goes into a sentence: one that holds right-to-left text or bidi controls
    (a visitor named "Zed\u202eevil") is wrapped in FIRST STRONG ISOLATE ... POP DIRECTIONAL
    ISOLATE, so that it cannot reorder the rest of the notice; anything else is left as it is."""
    if any(unicodedata.bidirectional(char) in _REORDERING for char in value):
        return f"\u2068{value}\u2069"
    return value


def render_text(text: str, values: dict[str, str]) -> str:
    """Fill placeholders, each value isolated (see `isolate`); an unexpected placeholder stays
    visible rather than failing a live chat."""
    try:
        return text.format_map(_KeepMissing({k: isolate(v) for k, v in values.items()}))
    except (ValueError, IndexError):
        return text
