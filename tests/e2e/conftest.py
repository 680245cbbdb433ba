import pytest

from tests.e2e.live import ARTIFACTS, CHROMIUM_ARGS, CeleryWorker, Daphne


@pytest.fixture
def browser():
    """Debian's Chromium, headless, driven by Playwright (the browser tests)."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def _flushed_test_redis(django_db_setup, django_db_blocker):
    """Start from an empty test Redis database (stale tasks, debounce keys, channel groups)."""
    import redis
    from django.conf import settings

    if settings.TEST_REDIS_URL:
        redis.Redis.from_url(settings.TEST_REDIS_URL).flushdb()


@pytest.fixture
def celery_worker_process(_flushed_test_redis, _django_db_helper, django_db_blocker):
    with django_db_blocker.unblock():
        worker = CeleryWorker()
        worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def daphne_process(_flushed_test_redis, _django_db_helper, django_db_blocker):
    with django_db_blocker.unblock():
        server = Daphne()
        server.start()
    yield server
    server.stop()
