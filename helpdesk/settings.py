"""Tierline settings: one module, every difference between environments is an environment variable.

Two shapes (docs/configuration.md lists every setting):
- embedded default (no DATABASE_URL, no REDIS_URL): SQLite, the in-memory channel layer and a
  Celery worker + beat running as threads inside the server process on an in-memory broker;
- services: PostgreSQL (DATABASE_URL) and Redis (REDIS_URL) for channels, cache and the Celery
  broker, with daphne, `celery worker` and `celery beat` as separate processes.
"""

import ipaddress
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.utils.csp import CSP

django_stubs_ext.monkeypatch()  # lets admin.ModelAdmin[Model] etc. be subscripted at run time

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"  # local state of the embedded default (SQLite file, dev secret key)

env = environ.Env()


def env_secret(name: str, default: str | None = None) -> str | None:
    """A secret from NAME, or from the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    file_name = env.str(f"{name}_FILE", default="")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    value: str | None = env.str(name, default=default)
    return value


def env_positive_int(name: str, default: int) -> int:
    value: int = env.int(name, default=default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive whole number, got {value}")
    return value


def env_networks(name: str) -> list[str]:
    """Comma-separated addresses or CIDR networks (IPv4 or IPv6); empty by default."""
    values = [value.strip() for value in env.list(name, default=[]) if value.strip()]
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {value!r} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/24)"
            ) from None
    return values


def env_rate(name: str, default: str) -> str:
    """A rate such as "5/10m": that many in that many seconds (s), minutes (m) or hours (h)."""
    value: str = env.str(name, default=default)
    count, _, period = value.partition("/")
    unit = period[-1:]
    if not (count.isdigit() and int(count) > 0 and unit in {"s", "m", "h"}):
        raise ImproperlyConfigured(f"{name} is a rate like 5/10m, got {value!r}")
    if period[:-1] and not (period[:-1].isdigit() and int(period[:-1]) > 0):
        raise ImproperlyConfigured(f"{name} is a rate like 5/10m, got {value!r}")
    return value


def _dev_secret_key() -> str:
    """A per-checkout random key for the embedded default, kept in var/ so sessions survive."""
    from django.core.management.utils import get_random_secret_key

    VAR_DIR.mkdir(exist_ok=True)
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(get_random_secret_key())
        key_file.chmod(0o600)
    return key_file.read_text().strip()


DEBUG: bool = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY") or _dev_secret_key()
ALLOWED_HOSTS: list[str] = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"]
)
CSRF_TRUSTED_ORIGINS: list[str] = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

DATABASE_URL: str = env.str("DATABASE_URL", default="")
REDIS_URL: str = env.str("REDIS_URL", default="")
# Embedded: no external broker, so the server process runs the Celery worker and beat itself.
EMBEDDED_WORKER = not REDIS_URL

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",  # full-text search of past chats (a GIN index) on PostgreSQL
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "chat",
    "escalation",
    "reporting",
    "axes",  # login throttling; keep last so its signal handlers see every app
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Last: turns a locked-out login into a 429 page (django-axes).
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First: refuses a login attempt from a locked-out username and address, or from an address
    # locked across usernames, before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "chat.throttles.AddressLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "helpdesk.urls"
ASGI_APPLICATION = "helpdesk.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # {% csp_nonce_attr %}: the admin's one inline <style> (SECURE_CSP below).
                "django.template.context_processors.csp",
            ],
        },
    },
]

if DATABASE_URL:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if "postgresql" in DATABASES["default"]["ENGINE"]:
        # PostgreSQL's JIT spends ~150 ms compiling any plan its cost model calls expensive (a
        # report over a year of rows): more than the query itself takes. Off, unless set here.
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")
else:
    VAR_DIR.mkdir(exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env.str("SQLITE_PATH", default=str(VAR_DIR / "tierline.sqlite3")),
            # IMMEDIATE: every atomic block takes the write lock up front, so SQLite serialises
            # state changes the way SELECT ... FOR UPDATE does on PostgreSQL.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }

# A PostgreSQL read replica for the report pages, their CSV and the reports API (deployment.md).
REPORTS_DATABASE_URL: str = env.str("REPORTS_DATABASE_URL", default="")
if REPORTS_DATABASE_URL:
    DATABASES["reports"] = env.db_url_config(REPORTS_DATABASE_URL)
    DATABASES["reports"]["CONN_MAX_AGE"] = DATABASES["default"].get("CONN_MAX_AGE", 0)
    DATABASES["reports"]["CONN_HEALTH_CHECKS"] = True
    # Tests run the "replica" on the test database itself.
    DATABASES["reports"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["reporting.routers.ReportsReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Client addresses (deployment.md, "Client addresses and TRUSTED_PROXIES") ------------------
# The proxies (addresses or CIDR networks) whose X-Forwarded-For / X-Forwarded-Proto are believed.
# Empty (the default): every client's address is the connection's peer, and those headers are
# ignored. helpdesk/asgi.py applies it to HTTP and websockets alike, so REMOTE_ADDR, the websocket
# cap, login throttling and the rate limits all see one address.
TRUSTED_PROXIES: list[str] = env_networks("TRUSTED_PROXIES")  # "*" is refused: name them


def client_address(request: Any) -> str | None:
    """The client's address as the ASGI proxy-headers middleware settled it (TRUSTED_PROXIES)."""
    address: str | None = request.META.get("REMOTE_ADDR")
    return address


# Login throttling (django-axes): after AXES_FAILURE_LIMIT failed logins for one username from one
# address, that pair is locked out for AXES_COOLOFF_MINUTES (the console login and admin alike).
AXES_FAILURE_LIMIT: int = env_positive_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_positive_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Explicit, so that installing django-ipware never makes axes read X-Forwarded-For on its own.
AXES_CLIENT_IP_CALLABLE = client_address
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# And per address across usernames (chat/throttles.py): this many failed logins from one address
# within AXES_COOLOFF_MINUTES lock that address for every username. Higher than the per-username
# limit so that one person's typos do not lock out an office behind one NAT address; a successful
# login does not reset it (one known account must not reset an attacker's count).
LOGIN_FAILURES_PER_ADDRESS: int = env_positive_int("LOGIN_FAILURES_PER_ADDRESS", 15)
# No "AXES: BEGIN" banner from every manage.py command; failures and lockouts are still logged
# (as warnings: the "axes" logger below drops its per-login INFO lines).
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "after-login"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE: str = env.str("TIME_ZONE", default="UTC")  # the site's time zone: reports bucket by it
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Serve from the finders when collectstatic has not been run (make run does run it).
WHITENOISE_USE_FINDERS = DEBUG

# --- File attachments in chats ---------------------------------------------------------------
# Stored through Django's storage API under the "attachments" alias: the file system under
# MEDIA_ROOT by default, or any backend (an S3-compatible store with django-storages) named by
# ATTACHMENT_STORAGE_BACKEND with its ATTACHMENT_STORAGE_OPTIONS. Nothing serves MEDIA_ROOT
# directly: every download goes through a view that checks who may see the chat.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
ATTACHMENT_STORAGE_BACKEND: str = env.str(
    "ATTACHMENT_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"
)
ATTACHMENT_STORAGE_OPTIONS: dict[str, Any] = env.json("ATTACHMENT_STORAGE_OPTIONS", default={})
if not isinstance(ATTACHMENT_STORAGE_OPTIONS, dict):
    raise ImproperlyConfigured("ATTACHMENT_STORAGE_OPTIONS must be a JSON object")
STORAGES["attachments"] = {
    "BACKEND": ATTACHMENT_STORAGE_BACKEND,
    "OPTIONS": ATTACHMENT_STORAGE_OPTIONS,
}
ATTACHMENT_MAX_BYTES: int = env_positive_int("ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024)
ATTACHMENT_TYPES: list[str] = [
    value.strip().lower()
    for value in env.list(
        "ATTACHMENT_TYPES",
        default=[
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "application/pdf",
            "text/plain",
            "text/csv",
        ],
    )
    if value.strip()
]
# How long a visitor's link to a file works (the page gets fresh links on every reload and
# reconnect); agents and API users download with their session or token instead.
ATTACHMENT_URL_MAX_AGE_SECONDS: int = env_positive_int("ATTACHMENT_URL_MAX_AGE_SECONDS", 86400)

# --- Realtime -------------------------------------------------------------------------------
CHANNEL_LAYERS: dict[str, Any]
# CHANNEL_LAYER=fanout (default with Redis): one Redis pub/sub subscription per process and
# in-process fan-out with bounded inboxes that resync from the database when overrun
# (chat/realtime/fanout.py); CHANNEL_LAYER=redis: stock channels-redis, which drops past capacity.
CHANNEL_LAYER: str = env.str("CHANNEL_LAYER", default="fanout")
if CHANNEL_LAYER not in {"fanout", "redis"}:
    raise ImproperlyConfigured(f"CHANNEL_LAYER is fanout or redis, got {CHANNEL_LAYER!r}")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": (
                "chat.realtime.fanout.FanoutChannelLayer"
                if CHANNEL_LAYER == "fanout"
                else "channels_redis.core.RedisChannelLayer"
            ),
            "CONFIG": {
                "hosts": [REDIS_URL],
                # Past capacity channels-redis drops group_send messages silently; clients resync
                # from the database by sequence number, so a drop costs latency, never data.
                "capacity": env_positive_int("CHANNEL_CAPACITY", 1000),
                # A message nobody reads (a consumer that died without leaving its groups) is
                # dropped after this many seconds: with `capacity`, what bounds Redis's memory.
                "expiry": env_positive_int("CHANNEL_EXPIRY", 60),
                "prefix": env.str("CHANNEL_PREFIX", default="tierline"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "chat.realtime.inmemory.ThreadSafeInMemoryChannelLayer"}
    }

# Django's Redis cache, with one client (one connection pool) per process instead of one per
# request or socket call (helpdesk/cache.py).
CACHES = {
    "default": (
        {"BACKEND": "helpdesk.cache.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Celery (namespace CELERY_) ---------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True  # a killed worker's task goes back to the queue...
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # ...instead of being acknowledged and lost
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers an unacknowledged task after the visibility timeout; timers never schedule a
# countdown longer than MAX_TIMER_COUNTDOWN_SECONDS, far below it, and re-arm themselves instead.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
MAX_TIMER_COUNTDOWN_SECONDS = 600
# How often beat sweeps for deadlines whose timer task was lost: the worst lateness of a timeout
# after a worker crash.
TIMER_SWEEP_SECONDS: float = env.float("TIMER_SWEEP_SECONDS", default=2.0)
if TIMER_SWEEP_SECONDS <= 0:
    raise ImproperlyConfigured("TIMER_SWEEP_SECONDS must be a positive number of seconds")
# Transcript retention: ended chats older than this lose their messages and the visitor's personal
# data (reports keep their anonymous numbers); 0 keeps transcripts forever. Run by beat hourly.
TRANSCRIPT_RETENTION_DAYS: int = env.int("TRANSCRIPT_RETENTION_DAYS", default=365)
if TRANSCRIPT_RETENTION_DAYS < 0:
    raise ImproperlyConfigured("TRANSCRIPT_RETENTION_DAYS must be 0 (keep forever) or more")
CELERY_BEAT_SCHEDULE = {
    "sweep-overdue-timers": {
        "task": "escalation.tasks.sweep_overdue_timers",
        "schedule": TIMER_SWEEP_SECONDS,
    },
    "sweep-gone-visitors": {"task": "escalation.tasks.sweep_gone_visitors", "schedule": 15.0},
    "sweep-gone-agents": {"task": "escalation.tasks.sweep_gone_agents", "schedule": 15.0},
    "purge-expired-transcripts": {
        "task": "escalation.tasks.purge_expired_transcripts",
        "schedule": 3600.0,
    },
    "summarise-report-days": {
        "task": "reporting.tasks.summarise_days",
        "schedule": env_positive_int("REPORT_SUMMARY_SECONDS", 600),
    },
}

# --- Product limits -----------------------------------------------------------------------------
# Anonymous visitors (chat/throttles.py, counted in the cache: Redis, or this process's memory in
# the embedded default). Rates are "count/period": 5/10m is 5 in any 10 minutes (fixed windows).
# Chat starts per client address and per visitor token (the browser's chat cookie); raise the
# address rate for sites whose visitors share one address (an office or a carrier's NAT).
CHAT_START_RATE_PER_ADDRESS: str = env_rate("CHAT_START_RATE_PER_ADDRESS", "5/10m")
CHAT_START_RATE_PER_VISITOR: str = env_rate("CHAT_START_RATE_PER_VISITOR", "3/10m")
# "Leave a message" posts, likewise.
LEFT_MESSAGE_RATE_PER_ADDRESS: str = env_rate("LEFT_MESSAGE_RATE_PER_ADDRESS", "5/10m")
LEFT_MESSAGE_RATE_PER_VISITOR: str = env_rate("LEFT_MESSAGE_RATE_PER_VISITOR", "3/10m")
# Files a visitor sends, likewise.
ATTACHMENT_RATE_PER_ADDRESS: str = env_rate("ATTACHMENT_RATE_PER_ADDRESS", "30/10m")
ATTACHMENT_RATE_PER_VISITOR: str = env_rate("ATTACHMENT_RATE_PER_VISITOR", "10/10m")
# Past this many chats waiting in one pipeline's queues, a new visitor is offered the "leave a
# message" form instead of a place in line (escalation.selectors.pipeline_queue_is_full).
MAX_WAITING_CHATS_PER_PIPELINE: int = env_positive_int("MAX_WAITING_CHATS_PER_PIPELINE", 200)
# JSON nested deeper than this is refused (the API's parser; chat/realtime/jsonlimits.py).
JSON_MAX_DEPTH: int = env_positive_int("JSON_MAX_DEPTH", 32)
MESSAGE_MAX_CHARS: int = env_positive_int("MESSAGE_MAX_CHARS", 4000)
WS_FRAME_MAX_BYTES: int = env_positive_int("WS_FRAME_MAX_BYTES", 32768)
# Per socket: frames a second on average and the burst allowed above it (flood control).
WS_FRAMES_PER_SECOND: int = env_positive_int("WS_FRAMES_PER_SECOND", 10)
WS_FRAME_BURST: int = env_positive_int("WS_FRAME_BURST", 30)
# Open websockets one client address may hold on one daphne process (more are closed with 4429).
# Behind a load balancer set TRUSTED_PROXIES so that the address is the client's.
WS_MAX_CONNECTIONS_PER_ADDRESS: int = env_positive_int("WS_MAX_CONNECTIONS_PER_ADDRESS", 100)
# How long daphne lets a websocket's opening handshake take, the application's connect included,
# before it drops the connection. daphne's own default (5 s) drops consoles that reconnect all at
# once after a restart, on a busy machine, while their connects wait their turn for the database.
WS_HANDSHAKE_TIMEOUT_SECONDS: int = env_positive_int("WS_HANDSHAKE_TIMEOUT_SECONDS", 30)
VISITOR_TOKEN_MAX_AGE_SECONDS: int = env_positive_int("VISITOR_TOKEN_MAX_AGE_SECONDS", 86400)
REPLAY_PAGE_SIZE = 200
# A chat's event that arrives before an earlier one waits this long for it, then the socket reads
# the missing messages from the database (events of one chat can take different paths).
# A console socket checks that its agent may still use it (active, still an agent, session still
# logged in) this often, and on actions at most once per AGENT_ACTION_RECHECK_SECONDS; if not,
# it closes with 4403.
AGENT_RECHECK_SECONDS: float = env.float("AGENT_RECHECK_SECONDS", default=3.0)
AGENT_ACTION_RECHECK_SECONDS: float = env.float("AGENT_ACTION_RECHECK_SECONDS", default=1.0)
# Processes keep the message templates in memory this long; an admin's change is seen at once by
# the process that saved it and within this time by the others.
TEMPLATE_CACHE_SECONDS: float = env.float("TEMPLATE_CACHE_SECONDS", default=5.0)
GAP_REPAIR_SECONDS: float = env.float("GAP_REPAIR_SECONDS", default=0.25)
# Websocket messages from many sockets are stored in one transaction per batch (the coalescing
# writer, chat/realtime/writer.py).
REALTIME_BATCH_WRITES: bool = env.bool("REALTIME_BATCH_WRITES", default=True)
# Server processes freeze what survives each full garbage collection, so that later ones walk only
# newer objects (with thousands of sockets a full collection stopped the process for up to a
# second), and unfreeze and collect everything once this often; 0: CPython's collector as it is
# (helpdesk/gcpolicy.py).
GC_FREEZE_SECONDS: float = env.float("GC_FREEZE_SECONDS", default=600.0)
WAIT_ESTIMATE_WINDOW_SECONDS: int = env_positive_int("WAIT_ESTIMATE_WINDOW_SECONDS", 3600)
# A queued chat whose visitor's page has not been seen (socket connect or ping) for this long is
# abandoned: the visitor left before an agent connected.
VISITOR_GONE_SECONDS: int = env_positive_int("VISITOR_GONE_SECONDS", 120)
# An online or away agent none of whose console tabs has been seen (connect, ping every 20 s,
# close) for this long is set offline, so that chats stop being routed to them; the chats they
# hold stay theirs. Agents who never opened the console (API integrations) are left alone.
AGENT_GONE_SECONDS: int = env_positive_int("AGENT_GONE_SECONDS", 120)

REST_FRAMEWORK = {
    # Token first: an integration without a session gets 401 (with WWW-Authenticate), not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "helpdesk.api_errors.handle_api_exception",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSONParser with a nesting depth limit (JSON_MAX_DEPTH): a 400 in the error shape, not a 500.
    "DEFAULT_PARSER_CLASSES": ["helpdesk.api_parsers.DepthLimitedJSONParser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tierline API",
    "DESCRIPTION": (
        "Chats, queues, escalation, configuration and reports. Authenticate with "
        "`Authorization: Token <key>` (tokens are made in admin or with "
        "`manage.py drf_create_token <username>`) or with the console's session."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- E-mail (transcripts for visitors, left messages for agents) ------------------------------
# Off until EMAIL_HOST names an SMTP server: then transcripts are offered to visitors and left
# messages are mailed to agents, each sent by a Celery task with retries. Off, nothing offers or
# pretends to send e-mail; Django's mailer is then the console backend, which nothing uses (hence
# the silenced deploy check that wants a production backend).
_email_host: str = env.str("EMAIL_HOST", default="")
EMAIL_ENABLED: bool = bool(_email_host)
SILENCED_SYSTEM_CHECKS: list[str] = [] if EMAIL_ENABLED else ["mail.E001"]
_email_user: str = env.str("EMAIL_HOST_USER", default="")
MAILERS: dict[str, dict[str, Any]] = {
    "default": (
        {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": _email_host,
                "port": env_positive_int("EMAIL_PORT", 587),
                "username": _email_user,
                "password": env_secret("EMAIL_HOST_PASSWORD", "") or "",
                "use_tls": env.bool("EMAIL_USE_TLS", default=bool(_email_user)),
                "timeout": 15,
            },
        }
        if _email_host
        else {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
    )
}
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="Tierline <support@localhost>")
# Where the site is, for links in e-mails to agents (e.g. https://support.example.com); none
# when empty.
SITE_URL: str = env.str("SITE_URL", default="").rstrip("/")
# A visitor asking for the transcript by e-mail: per client address and per chat.
TRANSCRIPT_EMAIL_RATE_PER_ADDRESS: str = env_rate("TRANSCRIPT_EMAIL_RATE_PER_ADDRESS", "5/h")
TRANSCRIPT_EMAIL_RATE_PER_VISITOR: str = env_rate("TRANSCRIPT_EMAIL_RATE_PER_VISITOR", "2/h")
TRANSCRIPT_EMAIL_RATE_PER_SITE: str = env_rate("TRANSCRIPT_EMAIL_RATE_PER_SITE", "200/h")
# Tries of one e-mail before it is marked failed (backing off from 2 s to 10 minutes apart: 20
# tries span about two hours, a mail server's maintenance window).
EMAIL_MAX_TRIES: int = env_positive_int("EMAIL_MAX_TRIES", 20)

# --- Production hardening (DJANGO_HTTPS) --------------------------------------------------------
HTTPS: bool = env.bool("DJANGO_HTTPS", default=False)
if env.bool("DJANGO_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS: int = env.int("DJANGO_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every response (Django's ContentSecurityPolicyMiddleware). No inline
# script or style: a page's own nonce is added only where a template asks for it with
# {% csp_nonce_attr %} (the admin's templates do); Tierline's pages ask for none. 'self' in
# connect-src also covers ws:/wss: to this host (CSP Level 3). frame-ancestors is 'none': only the
# widget's pages (chat/widget.py) replace it, with the allowed origins of the site they serve.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}


def _refusal_without_traceback(record: logging.LogRecord) -> bool:
    """A page refused with PermissionDenied (a manager opening the console) is an answer, not a
    fault: keep django.request's one "Forbidden (Permission denied): /path" line, drop the
    traceback. Always True: the record is logged, only shorter."""
    if record.exc_info and isinstance(record.exc_info[1], PermissionDenied):
        record.exc_info = None
        record.exc_text = None
    return True


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "refusal_without_traceback": {
            "()": "django.utils.log.CallbackFilter",
            "callback": _refusal_without_traceback,
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "celery": {"level": env.str("CELERY_LOG_LEVEL", default="WARNING")},
        "django.request": {"filters": ["refusal_without_traceback"]},
        # django-axes logs three INFO lines for every successful login; its warnings (failed
        # logins, lockouts) stay.
        "axes": {"level": "WARNING"},
        # The embedded in-memory broker ("memory://") has no host, and kombu warns at every
        # start that it falls back to "localhost"; with Redis its warnings matter and stay.
        **({"kombu.connection": {"level": "ERROR"}} if EMBEDDED_WORKER else {}),
    },
}
