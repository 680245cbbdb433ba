import pytest

from tests.e2e.live import CeleryWorker, Daphne


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
