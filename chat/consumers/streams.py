"""Per-chat ordered delivery on one socket: a chat's events leave in sequence order, exactly once.

Events reach a socket by more than one path (delivered in this process at publish time, or through
Redis from another process; published by different threads after their commits), so one chat's
events can arrive out of order. A `ChatStream` holds back an event that arrives early until the
ones before it have been delivered; the consumer fills a gap that does not close by itself within
a short deadline from the database (every message is stored before it is published). An event is
skipped only when its exact number was delivered already: delivery is contiguous, so that is
every number up to `last`.

Messages are numbered; a status change (`chat.status`) or an agent's removal (`chat.removed`)
carries the number of the last message before it and leaves right after that message, status
before removal, so neither can overtake the messages it follows.
"""

from itertools import count
from typing import Any

Frame = dict[str, Any]

# What a chat's stream orders, and in which order events after the same message leave.
SEQUENCED = {"message": 0, "chat.status": 1, "chat.removed": 2}


class ChatStream:
    def __init__(self, last: int | None = None) -> None:
        # The last number delivered (None: not known yet; events wait until `start`).
        self.last = last
        self._messages: dict[int, Frame] = {}
        self._after: list[tuple[int, int, int, Frame]] = []  # (seq, rank, arrival, frame)
        self._arrivals = count()

    @property
    def waiting(self) -> bool:
        """Whether events are held back, waiting for earlier ones."""
        return bool(self._messages or self._after)

    @property
    def gap(self) -> tuple[int, int] | None:
        """The numbers missing before the earliest held event, as (after, up to)."""
        if self.last is None or not self.waiting:
            return None
        wanted = [*self._messages, *(seq for seq, *_ in self._after)]
        return self.last, min(wanted)

    def start(self, last: int) -> list[Frame]:
        """Set where delivery stands (a replay's or a snapshot's last number, or further on)."""
        self.last = last if self.last is None else max(self.last, last)
        return self._drain()

    def push(self, frame: Frame) -> list[Frame]:
        """Take one event; return those that can leave now, in order."""
        seq = frame["seq"]
        if frame["type"] == "message":
            if self.last is not None and seq <= self.last:
                return []  # delivered already (delivery is contiguous)
            self._messages.setdefault(seq, frame)
        else:
            self._after.append((seq, SEQUENCED[frame["type"]], next(self._arrivals), frame))
        return self._drain()

    def release_all(self) -> list[Frame]:
        """Give up waiting (the database did not fill the gap): everything held, in order."""
        held = sorted(
            [(seq, 0, 0, frame) for seq, frame in self._messages.items()] + self._after,
            key=lambda entry: entry[:3],
        )
        self._messages.clear()
        self._after.clear()
        for seq, *_ in held:
            self.last = max(self.last or 0, seq)
        return [frame for *_, frame in held]

    def _drain(self) -> list[Frame]:
        if self.last is None:
            return []
        out: list[Frame] = []
        while True:
            ready = sorted(entry for entry in self._after if entry[0] <= self.last)
            if ready:
                self._after = [entry for entry in self._after if entry[0] > self.last]
                out += [frame for *_, frame in ready]
            following = self._messages.pop(self.last + 1, None)
            if following is None:
                break
            out.append(following)
            self.last += 1
        for seq in [seq for seq in self._messages if seq <= self.last]:
            del self._messages[seq]
        return out
