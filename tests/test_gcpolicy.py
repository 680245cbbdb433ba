"""The garbage-collection policy of the server processes (helpdesk/gcpolicy.py), in this process:
installed, then removed, each test leaving CPython's collector as it found it."""

import gc
import os
import subprocess
import sys
import weakref

import pytest
from django.conf import settings

from helpdesk import gcpolicy
from helpdesk.gcpolicy import FreezePolicy


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> "weakref.ref[Node]":
    """Two nodes that refer to each other and to nothing else; a weak reference to one."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def policy():
    policy = FreezePolicy(thaw_seconds=3600)  # thawed by the tests, not by its thread
    policy.install()
    yield policy
    policy.uninstall()


def test_survivors_of_a_full_collection_are_frozen_and_later_ones_walk_only_newer_objects(policy):
    assert gc.get_freeze_count() > 0  # start-up's objects, frozen at install
    before = gc.get_freeze_count()
    kept = [Node() for _ in range(20_000)]
    gc.collect()
    assert gc.get_freeze_count() - before >= 20_000
    assert len(gc.get_objects(generation=2)) < 20_000  # the next full collection skips them
    del kept


def test_a_young_collection_freezes_nothing(policy):
    a, b = Node(), Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    gc.collect(0)
    gc.collect(1)
    del a, b
    gc.collect()
    assert ref() is None


def test_a_frozen_cycle_waits_for_the_thaw_and_a_plain_object_does_not(policy):
    plain, a, b = Node(), Node(), Node()
    a.other, b.other = b, a
    plain_ref, cycle_ref = weakref.ref(plain), weakref.ref(a)
    gc.collect()  # all three survive it (still referenced) and are frozen
    del plain, a, b
    assert plain_ref() is None  # reference counting frees it at once, frozen or not
    gc.collect()
    assert cycle_ref() is not None  # frozen: a collection does not look at it
    assert policy.thaw() >= 2
    assert cycle_ref() is None
    assert gc.get_freeze_count() > 0  # the survivors of the thaw are frozen again


def test_the_thaw_thread_frees_frozen_cycles_on_its_own():
    policy = FreezePolicy(thaw_seconds=0.05)
    policy.install()
    try:
        ref = cycle()
        gc.collect()
        policy.thawed.clear()
        assert policy.thawed.wait(10)  # a thaw that may have begun before the cycle was freed
        policy.thawed.clear()
        assert policy.thawed.wait(10)  # and one that began after
        assert ref() is None
    finally:
        policy.uninstall()


def test_uninstall_leaves_the_collector_as_it_was_and_install_again_works(policy):
    policy.install()  # a second install adds nothing
    assert gc.callbacks.count(policy._after_collection) == 1
    policy.uninstall()
    assert policy._after_collection not in gc.callbacks
    assert gc.get_freeze_count() == 0
    ref = cycle()
    gc.collect()
    assert ref() is None
    policy.install()
    assert policy._thread is not None and policy._thread.is_alive()


def test_zero_turns_it_off():
    assert gcpolicy.install(0) is None


def test_the_servers_run_it_and_the_test_process_does_not():
    from tests.e2e.live import service_env

    assert settings.GC_FREEZE_SECONDS == 0
    assert float(service_env()["GC_FREEZE_SECONDS"]) > 0
    # A server process: the ASGI module installs it (here with production settings, embedded).
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DJANGO_SETTINGS_MODULE="helpdesk.settings", GC_FREEZE_SECONDS="600")
    probe = (
        "import gc, helpdesk.asgi\n"
        "from helpdesk import gcpolicy\n"
        "assert gcpolicy._installed is not None\n"
        "assert gcpolicy._installed._after_collection in gc.callbacks\n"
        "print(gc.get_freeze_count())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 10_000
