"""Both shapes of the settings load, and production settings pass the deploy checks."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICE_VARS = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "CHANNEL_LAYER")


def manage(*args: str, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_embedded_default_loads(tmp_path):
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'], "
        "s.CELERY_BROKER_URL, s.EMBEDDED_WORKER)",
        SQLITE_PATH=str(tmp_path / "db.sqlite3"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-4:] == [
        "django.db.backends.sqlite3",
        "chat.realtime.inmemory.ThreadSafeInMemoryChannelLayer",
        "memory://",
        "True",
    ]
    assert manage("check", SQLITE_PATH=str(tmp_path / "db.sqlite3")).returncode == 0


def test_the_embedded_default_migrates_and_loads_the_demo(tmp_path):
    """`make run` with nothing installed: every migration runs on SQLite (an index built
    CONCURRENTLY on PostgreSQL is built plainly there) and the demo loads, with a history (two
    days here; `make run` plays 90)."""
    for command in (["migrate"], ["load_demo", "--history-days", "2"]):
        result = manage(*command, SQLITE_PATH=str(tmp_path / "db.sqlite3"))
        assert result.returncode == 0, result.stderr[-2000:]
    assert "Demo configuration loaded." in result.stdout
    assert "Demo history: " in result.stdout  # played on SQLite, in-process, on its own clock


def test_service_settings_load():
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'], "
        "s.CELERY_BROKER_URL, s.EMBEDDED_WORKER)",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/tierline",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-4:] == [
        "django.db.backends.postgresql",
        "chat.realtime.fanout.FanoutChannelLayer",  # the default; CHANNEL_LAYER=redis below
        "redis://127.0.0.1:6379/0",
        "False",
    ]
    stock = manage(
        "shell",
        "-c",
        "from django.conf import settings as s; print(s.CHANNEL_LAYERS['default']['BACKEND'])",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/tierline",
        REDIS_URL="redis://127.0.0.1:6379/0",
        CHANNEL_LAYER="redis",
    )
    assert stock.stdout.split()[-1:] == ["channels_redis.core.RedisChannelLayer"], stock.stderr
    check = manage(
        "check",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/tierline",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    assert check.returncode == 0, check.stderr


PRODUCTION = {
    "DJANGO_SECRET_KEY": "x7!kq2-this-is-a-long-random-production-secret-0a9s8d7f6g5h4j3k2l1",
    "DJANGO_ALLOWED_HOSTS": "support.example.com",
    "DJANGO_HTTPS": "true",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/tierline",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def test_production_settings_pass_check_deploy_with_no_warning():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_without_https():
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", **{**PRODUCTION, "DJANGO_HTTPS": "false"}
    )
    assert result.returncode != 0
    assert "SECURE_SSL_REDIRECT" in result.stdout + result.stderr


def test_secret_key_can_come_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file-secret-" + "k" * 50 + "\n")
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_SECRET_KEY"}
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        DJANGO_SECRET_KEY_FILE=str(secret),
        **env,
    )
    assert result.stdout.strip().endswith("from-a-file-secret-" + "k" * 50)


def test_a_bad_number_is_refused_with_its_name():
    result = manage("check", MESSAGE_MAX_CHARS="0")
    assert result.returncode != 0
    assert "MESSAGE_MAX_CHARS must be a positive whole number" in result.stderr


def test_trusted_proxies_and_rates_are_checked_with_their_names():
    """TRUSTED_PROXIES is addresses or networks, never "*" (trust anyone); rates look like 5/10m."""
    ok = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.TRUSTED_PROXIES)",
        TRUSTED_PROXIES="10.0.0.5, 10.1.0.0/16,::1",
    )
    assert ok.stdout.strip().endswith("['10.0.0.5', '10.1.0.0/16', '::1']"), ok.stderr
    for value in ("*", "nginx", "10.0.0.300"):
        bad = manage("check", TRUSTED_PROXIES=value)
        assert bad.returncode != 0 and "TRUSTED_PROXIES" in bad.stderr, value
    for value in ("5", "5/10", "0/10m", "x/m"):
        bad = manage("check", CHAT_START_RATE_PER_ADDRESS=value)
        assert bad.returncode != 0
        assert "CHAT_START_RATE_PER_ADDRESS is a rate like 5/10m" in bad.stderr, value
