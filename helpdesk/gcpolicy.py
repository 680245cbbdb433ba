"""Shorter garbage-collection pauses for a server that holds thousands of sockets.

CPython's full (generation 2) collection walks every object the collector tracks, and each open
socket holds several hundred (daphne's protocol object, Channels' consumer and queue, the
consumer's state). With 4,000 sockets a full collection stopped the process for 250-960 ms, and
every event of every socket waited for it: the escalation benchmark's slowest notices were all
sent during one.

After each full collection its survivors are frozen (`gc.freeze`): they are long-lived (the
application's modules, the open sockets), and later collections walk only what is newer. Freezing
does not change reference counting: a closed socket's objects are freed as before, unless they
form a reference cycle. Such cycles wait for the next thaw: every `GC_FREEZE_SECONDS` everything is
unfrozen and collected once (one full pause at a known interval, where CPython would make one
each time the long-lived objects had grown by a quarter), and the survivors are frozen again.

Installed by the ASGI module (every server process); `GC_FREEZE_SECONDS = 0` leaves CPython's
collector as it is."""

import gc
import logging
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)


class FreezePolicy:
    def __init__(self, thaw_seconds: float) -> None:
        self.thaw_seconds = thaw_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_pause_ms = 0.0
        self._started = 0.0

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.last_pause_ms = (time.perf_counter() - self._started) * 1000
        gc.freeze()

    def thaw(self) -> int:
        """Unfreeze and collect everything once (the survivors are frozen again). Returns how
        many unreachable objects were found."""
        gc.unfreeze()
        found = gc.collect()
        logger.debug(
            "thawed: %d unreachable objects, %.0f ms, %d frozen",
            found,
            self.last_pause_ms,
            gc.get_freeze_count(),
        )
        return found

    def _thaw_periodically(self) -> None:
        while not self._stop.wait(self.thaw_seconds):
            self.thaw()

    def install(self) -> None:
        gc.callbacks.append(self._after_collection)
        gc.collect()  # what start-up left (modules, settings, URL patterns) is frozen now
        self._thread = threading.Thread(target=self._thaw_periodically, name="gc-thaw", daemon=True)
        self._thread.start()

    def uninstall(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._after_collection in gc.callbacks:
            gc.callbacks.remove(self._after_collection)
        gc.unfreeze()


_installed: FreezePolicy | None = None


def install(thaw_seconds: float) -> FreezePolicy | None:
    """Install the policy in this process, once; None when `thaw_seconds` is 0 (off)."""
    global _installed
    if thaw_seconds <= 0:
        return None
    if _installed is None:
        _installed = FreezePolicy(thaw_seconds)
        _installed.install()
    return _installed
