"""Test-only overrides. The services come from the environment as in production.

With REDIS_URL, tests use their own Redis database (TEST_REDIS_DB, default 15) for channels,
cache and broker, so that the end-to-end tests can flush it without touching a running server.
"""

from urllib.parse import urlsplit, urlunsplit

from .settings import *  # noqa: F403
from .settings import CHANNEL_LAYERS, REDIS_URL, env

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # Under MEDIA_ROOT, which tests point at a temporary directory (tests/conftest.py).
    "attachments": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

if REDIS_URL:
    _parts = urlsplit(REDIS_URL)
    TEST_REDIS_URL = urlunsplit(_parts._replace(path=f"/{env.int('TEST_REDIS_DB', default=15)}"))
    CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [TEST_REDIS_URL]
    CACHES = {
        "default": {
            "BACKEND": "helpdesk.cache.RedisCache",
            "LOCATION": TEST_REDIS_URL,
        }
    }
    CELERY_BROKER_URL = TEST_REDIS_URL
else:
    TEST_REDIS_URL = ""

# The test process imports the ASGI module: its collector stays CPython's (the e2e servers, started
# with tests.e2e.live.service_env, run with the policy as production does).
GC_FREEZE_SECONDS = 0.0

# Tests roll the database back between them; a copy of the templates kept across that would show
# one test's texts to the next (tests/escalation/test_templates_cache.py turns it on).
TEMPLATE_CACHE_SECONDS = 0.0
