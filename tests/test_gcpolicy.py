"""The garbage-collection policy of the server processes (helpdesk/gcpolicy.py), in this process:
installed, then removed, each test leaving CPython's collector as it found it."""

import gc
import weakref

import pytest
from django.conf import settings

from helpdesk.gcpolicy import FreezePolicy


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def policy():
    policy = FreezePolicy(thaw_seconds=3600)  # thawed by the tests, not by its thread
    policy.install()
    yield policy
    policy.uninstall()


def test_survivors_of_a_full_collection_are_frozen_and_later_ones_walk_only_newer_objects(policy):
    assert gc.get_freeze_count() > 0  # start-up's objects, frozen at install
    kept = [Node() for _ in range(20_000)]
    gc.collect()
    frozen = gc.get_freeze_count()
    assert frozen >= 20_000
    assert len(gc.get_objects(generation=2)) < 20_000  # the next full collection skips them
    del kept


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


def test_uninstall_leaves_the_collector_as_it_was(policy):
    policy.uninstall()
    assert policy._after_collection not in gc.callbacks
    assert gc.get_freeze_count() == 0
    a, b = Node(), Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    gc.collect()
    del a, b
    gc.collect()
    assert ref() is None


def test_the_servers_run_it_and_the_test_process_does_not():
    from tests.e2e.live import service_env

    assert settings.GC_FREEZE_SECONDS == 0
    assert float(service_env()["GC_FREEZE_SECONDS"]) > 0
