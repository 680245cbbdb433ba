"""A chat's transcript as a manager reads it: every message with its author and time, internal
notes, consult threads and system notices marked as such, files sent (name, type, size and the
API's download address), and each agent's hand-over (reason and note) in place among the
messages. The page's Transcript tab and its CSV and JSON downloads show the same lines.
"""

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from chat.models import ChatSession, Message
from chat.selectors import attachment_info, message_attachment
from escalation.models import Escalation

HANDOVER = "handover"
CONSULT = "consult"  # a consult thread's message (escalation.services.consults)


@dataclass(frozen=True, slots=True)
class Line:
    at: datetime
    kind: str  # a Message.Kind value, or "handover"
    author: str  # who wrote it (a notice's author is empty)
    text: str
    seq: int | None  # the message's number in the chat (a hand-over has none)
    event: str  # a notice's template event (agent_joined, transfer, ...)
    visible_to_visitor: bool
    # A file the message carries: id, name, size, type, image, url (see chat.selectors).
    attachment: dict[str, Any] | None = None

    @property
    def is_notice(self) -> bool:
        """A notice (drawn as one), not something a person wrote to the chat or its thread."""
        return bool(self.event) and self.event != CONSULT

    @property
    def label(self) -> str:
        """What kind of line it is, in words."""
        if self.kind == HANDOVER:
            return "Hand-over"
        if self.kind == Message.Kind.INTERNAL and self.event == CONSULT:
            return "Consult"
        if self.kind == Message.Kind.INTERNAL:
            return "Internal notice" if self.event else "Internal note"
        return str(Message.Kind(self.kind).label)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat(), "label": self.label}


def _handover_text(escalation: Escalation) -> str:
    origin = escalation.from_agent.display_name if escalation.from_agent else "–"
    text = (
        f"Handed over from {origin} ({escalation.from_tier.name}) to "
        f"{escalation.target_label} ({escalation.to_tier.name})."
    )
    if escalation.reason:
        text += f" Reason: {escalation.reason}."
    if escalation.note:
        text += f" Note: {escalation.note}"
    return text


def chat_transcript(*, chat: ChatSession) -> list[Line]:
    """The chat's lines in order: its messages by number, each agent's hand-over placed after
    the messages written before it was asked for."""
    messages = (
        Message.objects.filter(chat=chat)
        .order_by("seq")
        .select_related("attachment")
        .only(
            "created_at", "kind", "author_name", "text", "seq", "event", "public_seq", "attachment"
        )
    )
    lines = [
        Line(
            at=m.created_at,
            kind=m.kind,
            author=m.author_name,
            text=m.text,
            seq=m.seq,
            event=m.event or "",
            visible_to_visitor=m.public_seq is not None,
            attachment=_file(m),
        )
        for m in messages
    ]
    handovers = (
        Escalation.objects.filter(chat=chat, from_agent__isnull=False)
        .select_related("from_agent", "from_tier", "to_tier")
        .order_by("requested_at", "pk")
    )
    for escalation in handovers:
        line = Line(
            at=escalation.requested_at,
            kind=HANDOVER,
            author=escalation.from_agent.display_name if escalation.from_agent else "",
            text=_handover_text(escalation),
            seq=None,
            event="",
            visible_to_visitor=False,
        )
        after = next((i for i, m in enumerate(lines) if m.at > line.at), len(lines))
        lines.insert(after, line)
    return lines


def _file(message: Message) -> dict[str, Any] | None:
    attachment = message_attachment(message)
    return attachment_info(attachment, for_visitor=False) if attachment else None


CSV_HEADER = [
    "time",
    "seq",
    "kind",
    "author",
    "text",
    "shown_to_visitor",
    "file_type",
    "file_bytes",
    "file_url",
]


def csv_rows(lines: list[Line]) -> list[list[Any]]:
    return [
        [
            line.at.isoformat(),
            line.seq,
            line.label,
            line.author,
            line.text,
            "yes" if line.visible_to_visitor else "no",
            line.attachment["type"] if line.attachment else "",
            line.attachment["size"] if line.attachment else "",
            line.attachment["url"] if line.attachment else "",
        ]
        for line in lines
    ]
