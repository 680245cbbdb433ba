"""Shared fixtures, personas and the rules for tests that need real services.

Tests marked `postgres`, `redis`, `e2e` or `browser` are skipped, with the reason printed, when
their service is not configured; with CI=true any skipped test fails the run (see
pytest_sessionfinish), so CI always runs everything.
"""

import os
import shutil
from typing import Any

import pytest
from django.conf import settings

CHROMIUM = "/usr/bin/chromium"


def _has_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def _has_redis() -> bool:
    return bool(settings.REDIS_URL)


def _missing(item: pytest.Item) -> str | None:
    needs_pg = item.get_closest_marker("postgres") or item.get_closest_marker("e2e")
    needs_redis = item.get_closest_marker("redis") or item.get_closest_marker("e2e")
    if needs_pg and not _has_postgres():
        return "needs PostgreSQL: set DATABASE_URL=postgres://..."
    if needs_redis and not _has_redis():
        return "needs Redis: set REDIS_URL=redis://..."
    if item.get_closest_marker("browser") and not (
        os.path.exists(CHROMIUM) or shutil.which("chromium")
    ):
        return f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        reason = _missing(item)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() not in {"1", "true", "yes"}:
        return
    reporter: Any = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        reporter.write_line(f"CI=true: {skipped} skipped test(s) count as failures.", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", autouse=True)
def _flush_survives_a_deadlock() -> Any:
    """The TRUNCATE between transactional tests runs again when PostgreSQL aborts it for a
    deadlock with a live server's transaction (tests/flush.py says how that happens)."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    from tests.flush import retrying_deadlocks

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            DatabaseOperations,
            "execute_sql_flush",
            retrying_deadlocks(DatabaseOperations.execute_sql_flush),
        )
        yield


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> Any:
    """pytest-django's, and at the end, before it drops the test database: the connections that
    worker threads of this process opened (asgiref's executors run the sockets' database calls,
    each thread with its own connection) are ended, or PostgreSQL refuses to drop a database
    that others are using and the run ends with a warning and the database left behind."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _own_rate_limit_counts(settings: Any) -> None:
    """Each test counts chat starts, left messages and failed logins from zero: the counts live
    in the cache (the tests' Redis database), which tests share; a fresh key prefix per test
    starts them over without flushing what else is there."""
    import uuid

    settings.RATELIMIT_CACHE_PREFIX = f"rl:{uuid.uuid4().hex}:"


@pytest.fixture(autouse=True)
def _own_media_root(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Files a test stores (chat attachments) go to a directory of its own, never to var/."""
    settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")


# --- Personas ------------------------------------------------------------------------------------
@pytest.fixture
def demo(db: None) -> None:
    """The shipped demo configuration (escalation.demo), as `make run` loads it."""
    from escalation.demo import load_demo_configuration

    load_demo_configuration()


@pytest.fixture
def admin_user(db: None) -> Any:
    from tests.factories import UserFactory

    return UserFactory(username="ada_admin", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client_(client: Any, admin_user: Any) -> Any:
    client.force_login(admin_user)
    return client


@pytest.fixture
def manager_user(db: None) -> Any:
    from tests.factories import UserFactory

    return UserFactory(username="morgan_manager", roles=["Managers"])


@pytest.fixture
def l1_setup(db: None) -> Any:
    """One pipeline, an L1 stage served by "L1 General" and an L2 stage served by "L2 Billing"."""
    from tests.factories import (
        AgentGroupFactory,
        PipelineFactory,
        StageFactory,
        TierFactory,
        TopicFactory,
    )

    t1, t2 = TierFactory(level=1), TierFactory(level=2)
    g1 = AgentGroupFactory(name="L1 General", tier=t1)
    g2 = AgentGroupFactory(name="L2 Billing", tier=t2)
    pipeline = PipelineFactory(name="Support")
    l1 = StageFactory(pipeline=pipeline, name="L1", tier=t1, served_by=[g1])
    l2 = StageFactory(pipeline=pipeline, name="L2 Billing", tier=t2, served_by=[g2])
    pipeline.entry_stage = l1
    pipeline.save()
    TopicFactory(name="Billing", pipeline=pipeline)
    return type(
        "Setup",
        (),
        {"t1": t1, "t2": t2, "g1": g1, "g2": g2, "pipeline": pipeline, "l1": l1, "l2": l2},
    )


@pytest.fixture
def alice_agent(l1_setup: Any) -> Any:
    from tests.factories import AgentFactory, UserFactory

    return AgentFactory(
        user=UserFactory(username="alice", roles=["Agents"]),
        display_name="Alice",
        member_of=[l1_setup.g1],
    )


@pytest.fixture
def bob_agent_other_queue(l1_setup: Any) -> Any:
    from tests.factories import AgentFactory, UserFactory

    return AgentFactory(
        user=UserFactory(username="bob", roles=["Agents"]),
        display_name="Bob",
        member_of=[l1_setup.g2],
    )


@pytest.fixture
def desk(db: None) -> Any:
    """Offers: two pipelines at tier 1: "Broadcast" (topic "Orders") and "Hunt" (topic "Returns"),
    each stage served by one group of that policy; Ann, Ben and Cat are in both groups."""
    from types import SimpleNamespace

    from escalation.models import Agent
    from tests.factories import (
        AgentFactory,
        AgentGroupFactory,
        PipelineFactory,
        StageFactory,
        TierFactory,
        TopicFactory,
    )

    t1 = TierFactory(level=1)
    groups, stages = {}, {}
    for policy, name, topic in (("broadcast", "Broadcast", "Orders"), ("hunt", "Hunt", "Returns")):
        group = AgentGroupFactory(name=f"L1 {name}", tier=t1, routing_policy=policy)
        pipeline = PipelineFactory(name=name)
        stage = StageFactory(
            pipeline=pipeline,
            name=name,
            tier=t1,
            served_by=[group],
            accept_timeout_seconds=30,
        )
        pipeline.entry_stage = stage
        pipeline.save()
        TopicFactory(name=topic, pipeline=pipeline)
        groups[policy], stages[policy] = group, stage
    people = {
        name: AgentFactory(
            display_name=name.title(),
            member_of=list(groups.values()),
            capacity=2,
            presence=Agent.Presence.OFFLINE,
        )
        for name in ("ann", "ben", "cat")
    }
    return SimpleNamespace(groups=groups, stages=stages, **people)
