"""Fewer long garbage-collection pauses for a server that holds thousands of sockets.

CPython's full (generation 2) collection walks every object the collector tracks, and each open
socket holds several hundred (daphne's protocol object, Channels' consumer and queue, the
consumer's state). With 4,000 sockets a full collection stopped the process for 250-960 ms, and
every event of every socket waited for it: the escalation benchmark's slowest notices were all
sent during one.

After each full collection its survivors are frozen (`gc.freeze`): they are long-lived (the
application's modules, the open sockets), and later collections walk only what is newer. Freezing
does not change reference counting: a closed socket's objects are freed as before, unless they
form a reference cycle. Such cycles wait for the next thaw: every `GC_FREEZE_SECONDS` everything is
unfrozen and collected once, which is a full pause as long as CPython's own (the thaw thread holds
the GIL meanwhile), at a known interval instead of each time the long-lived objects have grown by
a quarter; the survivors are frozen again.

Installed by the ASGI module (every server process); `GC_FREEZE_SECONDS = 0` leaves CPython's
collector as it is. Measured on CPython 3.13, whose collector has three generations; 3.14's
incremental collector would need measuring again."""

import gc
import logging
import os
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)


class FreezePolicy:
    def __init__(self, thaw_seconds: float) -> None:
        self.thaw_seconds = thaw_seconds
        self.full_collections = 0
        self.last_pause_ms = 0.0
        self.thawed = threading.Event()  # set after each thaw (tests wait for it)
        self._started = 0.0
        self._thawing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._installed = False

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.last_pause_ms = (time.perf_counter() - self._started) * 1000
        self.full_collections += 1
        if not self._thawing:
            gc.freeze()

    def thaw(self) -> int:
        """Unfreeze and collect everything once, then freeze the survivors again. Returns how many
        unreachable objects were found."""
        self._thawing = True
        try:
            gc.unfreeze()
            before = self.full_collections
            found = gc.collect()
            # gc.collect() does nothing while another thread's collection runs (its finalizers
            # may let this thread in): try again until a full collection has walked everything.
            while self.full_collections == before:
                self._stop.wait(0.01)
                found = gc.collect()
        finally:
            self._thawing = False
            gc.freeze()
        logger.info(
            "garbage collector thawed: %d unreachable objects, %.0f ms, %d objects frozen",
            found,
            self.last_pause_ms,
            gc.get_freeze_count(),
        )
        self.thawed.set()
        return found

    def _thaw_periodically(self) -> None:
        while not self._stop.wait(self.thaw_seconds):
            self.thaw()

    def _start_thread(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._thaw_periodically, name="gc-thaw", daemon=True)
        self._thread.start()

    def install(self) -> None:
        if self._installed:
            return
        self._installed = True
        gc.callbacks.append(self._after_collection)
        gc.collect()  # what start-up left (modules, settings, URL patterns) is frozen now
        self._start_thread()

    def uninstall(self) -> None:
        """Stop, and unfreeze everything (including anything frozen before `install`)."""
        if not self._installed:
            return
        self._installed = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        gc.callbacks.remove(self._after_collection)
        gc.unfreeze()

    def after_fork_in_child(self) -> None:
        """A forked child has no thaw thread: start its own."""
        if self._installed:
            self._start_thread()


_installed: FreezePolicy | None = None


def install(thaw_seconds: float) -> FreezePolicy | None:
    """Install the policy in this process, once; None when `thaw_seconds` is 0 (off)."""
    global _installed
    if thaw_seconds <= 0:
        return None
    if _installed is None:
        _installed = FreezePolicy(thaw_seconds)
        _installed.install()
        os.register_at_fork(after_in_child=_installed.after_fork_in_child)
    return _installed
