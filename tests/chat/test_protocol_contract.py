"""The realtime contract: every kind of frame the server sends (one dataclass each, in
chat/events.py) has a row in docs/protocol.md naming each of its fields, in the table of each
socket that sends it, and a test that receives it."""

import re
from dataclasses import fields
from pathlib import Path

import pytest

from chat.events import Event, Frame, frame_classes, send_event_on_commit

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "protocol.md").read_text()
TABLES = {
    "visitor": DOC[DOC.index("### Server → visitor") : DOC.index("### Visitor → server")],
    "console": DOC[DOC.index("### Server → agent") : DOC.index("### Agent → server")],
}
TESTS = "\n".join(
    path.read_text() for path in (ROOT / "tests").rglob("*.py") if path.name != Path(__file__).name
)


def row(table: str, frame_type: str) -> str | None:
    match = re.search(rf"^\| `{re.escape(frame_type)}` \|(.*)$", TABLES[table], re.MULTILINE)
    return match.group(1) if match else None


def sockets(cls: type[Frame]) -> list[str]:
    return ["visitor", "console"] if cls.socket == "both" else [cls.socket]


CLASSES = frame_classes()


def test_the_server_sends_these_kinds_of_frame():
    assert len(CLASSES) >= 20
    assert {"message", "chat.status", "chat.removed", "queue.item.added", "typing"} <= {
        cls.type for cls in CLASSES
    }


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: f"{cls.socket}:{cls.type}")
def test_every_frame_has_a_row_naming_each_field(cls):
    for socket in sockets(cls):
        found = row(socket, cls.type)
        assert found is not None, f"docs/protocol.md has no {socket} row for `{cls.type}`"
        missing = [f.name for f in fields(cls) if f"`{f.name}`" not in found]
        assert missing == [], f"`{cls.type}` ({socket}) row lacks {missing}"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: f"{cls.socket}:{cls.type}")
def test_every_frame_is_received_in_a_test(cls):
    assert f'"{cls.type}"' in TESTS, f"no test mentions the `{cls.type}` frame"


def test_only_events_can_be_published():
    class NotAnEvent(Frame):
        type = "not.an.event"

    with pytest.raises(TypeError):
        send_event_on_commit("group", NotAnEvent())  # type: ignore[arg-type]
    assert issubclass(Event, Frame)
