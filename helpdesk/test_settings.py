"""Test-only overrides. The services come from the environment as in production."""

from .settings import *  # noqa: F403
from .settings import CHANNEL_LAYERS, REDIS_URL

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
if REDIS_URL:
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = "tierline-test"
