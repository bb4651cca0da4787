"""Settings, read from the environment (and an optional `.env` file) through django-environ.

Defaults make a laptop run work: SQLite, Redis on localhost, console email. With DEBUG off the
project refuses to start without a real SECRET_KEY or with a wildcard ALLOWED_HOSTS.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")


def env_secret(name: str, default: str = "") -> str:
    """A secret from `NAME`, or from the file named by `NAME_FILE` (Docker and systemd secrets)."""
    path = env.str(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text().strip()
    return env.str(name, default=default)


DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"
SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY (or SECRET_KEY_FILE) in the environment; "
            "only DEBUG=true runs fall back to a development key."
        )
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
if not DEBUG and "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must not contain '*' when DEBUG is off.")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    # django-ninja as an app too: its Swagger UI page (/api/v1/docs) loads its own static files, not a CDN's.
    "ninja",
    "tenants",
    "jobs",
    "jobs.mail",
    "jobs.webhooks",
    "jobs.schedules",
    "jobs.ops",
    "jobs.api",
    "reports",
    "tenants.logins",
    # The project's own system checks (config/checks.py).
    "config",
]

MIDDLEWARE = [
    "jobs.ops.views.ProbeMiddleware",
    "jobs.eventlog.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "jobs.tenancy.TenantContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tenants.logins.middleware.LoginLockoutMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
            ],
        },
    },
]

# --- Database: the truth. SQLite for one machine, PostgreSQL for production and CI. ---
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=600))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets workers write while the web reads; IMMEDIATE avoids lock upgrades mid-transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
elif DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql"):
    # A database host that does not answer costs a request (or /readyz) seconds, not minutes.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5))
if env.str("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The throttle goes first: for a locked-out account or address it stops authentication before any
# password is checked. It answers no other question, so sessions still name ModelBackend.
AUTHENTICATION_BACKENDS = [
    "tenants.logins.backends.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
FORMAT_MODULE_PATH = ["config.formats"]  # one date format across the console (config/formats/en/formats.py)
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
MEDIA_URL = "media/"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "reports:list"

# --- Email (Django 6.1 mailers) ---
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="jobs@localhost")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
_EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="jobs.mail.backends.LogEmailBackend"  # one line per message, no bodies
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
_EMAIL_OPTIONS: dict[str, object] = {}
if _EMAIL_BACKEND.endswith("smtp.EmailBackend"):
    _EMAIL_OPTIONS = {
        "host": env.str("EMAIL_HOST", default="localhost"),
        "port": env.int("EMAIL_PORT", default=25),
        "username": env.str("EMAIL_HOST_USER", default=""),
        "password": env_secret("EMAIL_HOST_PASSWORD"),
        "use_tls": env.bool("EMAIL_USE_TLS", default=False),
        "use_ssl": env.bool("EMAIL_USE_SSL", default=False),
        "timeout": env.int("EMAIL_TIMEOUT", default=30),
    }
MAILERS = {"default": {"BACKEND": _EMAIL_BACKEND, "OPTIONS": _EMAIL_OPTIONS}}
# The mailer email.send jobs use, and the domain of their Message-IDs (<message uuid@domain>).
JOBS_EMAIL_MAILER = env.str("JOBS_EMAIL_MAILER", default="default")
JOBS_EMAIL_DOMAIN = env.str("JOBS_EMAIL_DOMAIN", default=DEFAULT_FROM_EMAIL.rpartition("@")[2] or "localhost")
# Where links in emails point (the welcome email's set-password link, for example).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

# --- Redis and RQ: the transport. ---
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")


def with_redis_timeouts(url: str) -> str:
    """Timeouts so a Redis that is down or hung costs a request seconds, not forever (the job then
    waits as pending). Options already in the URL win; workers raise the read timeout for their
    blocking dequeue themselves."""
    parts = urlsplit(url)
    options = {"socket_connect_timeout": "2", "socket_timeout": "5", "health_check_interval": "30"}
    options.update(parse_qsl(parts.query))
    return urlunsplit(parts._replace(query=urlencode(options)))


# Redis Sentinel instead of one address: REDIS_SENTINELS=host1:26379,host2:26379 and the master's name;
# the password and database number then come from their own variables.
REDIS_SENTINELS = [(host, int(port)) for host, _, port in
                   (item.rpartition(":") for item in env.list("REDIS_SENTINELS", default=[]))]


def redis_connection_settings() -> dict:
    if not REDIS_SENTINELS:
        return {"URL": with_redis_timeouts(REDIS_URL)}
    return {
        "SENTINELS": REDIS_SENTINELS,
        "MASTER_NAME": env.str("REDIS_SENTINEL_MASTER", default="mymaster"),
        "DB": env.int("REDIS_DB", default=0),
        "PASSWORD": env_secret("REDIS_PASSWORD") or None,
        "SOCKET_TIMEOUT": 5,
        "CONNECTION_KWARGS": {"socket_connect_timeout": 2, "health_check_interval": 30},
        "SENTINEL_KWARGS": {"socket_timeout": 2, "password": env_secret("REDIS_SENTINEL_PASSWORD") or None},
    }


JOBS_QUEUES = ("critical", "high", "default", "low")
RQ_QUEUES = {
    name: {
        **redis_connection_settings(),
        # JSON only: a pickle payload planted in Redis must never be executable.
        "SERIALIZER": "rq.serializers.JSONSerializer",
        "DEFAULT_TIMEOUT": 300,
    }
    for name in JOBS_QUEUES
}
# The default worker runs handlers in one long-lived work process (jobs.work_process), replaced after this
# many jobs, or once it holds this much memory after a job; and, if set, never allowed more than this.
JOBS_WORK_PROCESS_MAX_JOBS = env.int("JOBS_WORK_PROCESS_MAX_JOBS", default=1000)
JOBS_WORK_PROCESS_RECYCLE_MB = env.int("JOBS_WORK_PROCESS_RECYCLE_MB", default=512)
JOBS_WORK_PROCESS_MAX_MEMORY_MB = env.int("JOBS_WORK_PROCESS_MAX_MEMORY_MB", default=0)
RQ = {
    # The hand-over happens after commit already (jobs.relay); django-rq must not defer it again.
    "COMMIT_MODE": "auto",
    "WORKER_CLASS": env.str("RQ_WORKER_CLASS", default="jobs.workers.TrackedWorker"),
    "JOB_CLASS": "jobs.transport.TrackedRQJob",
    "SCHEDULER_CLASS": "jobs.scheduler_process.TrackedScheduler",
    "DEFAULT_RESULT_TTL": 600,
}
# The dashboard is mounted in config/urls.py behind a superuser check instead.
RQ_SHOW_ADMIN_LINK = False

# --- The job engine (jobs app); see README "Configuration". ---
JOBS_TICK_SECONDS = env.float("JOBS_TICK_SECONDS", default=1.0)
JOBS_RECONCILE_SECONDS = env.float("JOBS_RECONCILE_SECONDS", default=10.0)
JOBS_HEARTBEAT_SECONDS = env.float("JOBS_HEARTBEAT_SECONDS", default=5.0)
JOBS_ABANDON_AFTER_SECONDS = env.float("JOBS_ABANDON_AFTER_SECONDS", default=30.0)
JOBS_LOST_AFTER_SECONDS = env.float("JOBS_LOST_AFTER_SECONDS", default=15.0)
JOBS_PROGRESS_MIN_INTERVAL = env.float("JOBS_PROGRESS_MIN_INTERVAL", default=0.5)
# Limits by kind across every tenant, over the kinds' own: {"email.send": {"global_rate": 20,
# "global_concurrency": 5}} (JSON); 0 lifts a kind's own limit.
JOBS_KIND_LIMITS = env.json("JOBS_KIND_LIMITS", default={})
# Limits by queue across every tenant, for every kind on it (but those limited on their own):
# {"bulk": {"global_concurrency": 5, "global_rate": 20}} (JSON).
JOBS_QUEUE_LIMITS = env.json("JOBS_QUEUE_LIMITS", default={})
# enqueue() returns once its INSERT commits; a thread of the process hands the job to Redis (jobs/pusher.py).
# false: enqueue() also waits for Redis.
JOBS_PUSH_IN_BACKGROUND = env.bool("JOBS_PUSH_IN_BACKGROUND", default=True)
# Lines a handler may write with ctx.log() per attempt (kept with the attempt; the rest are counted, not kept).
JOBS_LOG_LINES = env.int("JOBS_LOG_LINES", default=500)
JOBS_MAX_PAYLOAD_BYTES = env.int("JOBS_MAX_PAYLOAD_BYTES", default=64 * 1024)
# RQ keeps no copy of a succeeded run by default: the database has the result.
JOBS_RQ_RESULT_TTL = env.int("JOBS_RQ_RESULT_TTL", default=0)
JOBS_RQ_FAILURE_TTL = env.int("JOBS_RQ_FAILURE_TTL", default=24 * 3600)
JOBS_WORKER_SYNCHRONOUS_COMMIT = env.bool("JOBS_WORKER_SYNCHRONOUS_COMMIT", default=False)
JOBS_RELAY_BATCH = env.int("JOBS_RELAY_BATCH", default=500)
# SQLite ignores INCLUDE columns of an index (the triage index is index-only on PostgreSQL); harmless.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# Admin: actions on more jobs than this ask for confirmation and run as a background job.
JOBS_ADMIN_BULK_THRESHOLD = env.int("JOBS_ADMIN_BULK_THRESHOLD", default=500)
# Admin lists count matching rows up to this many and show "more than N" beyond: no COUNT(*) of a big table.
JOBS_ADMIN_COUNT_LIMIT = env.int("JOBS_ADMIN_COUNT_LIMIT", default=10_000)
# Retention of finished jobs (days); tenants may override. The daily cleanup runs at this UTC hour.
JOBS_RETENTION_SUCCEEDED_DAYS = env.int("JOBS_RETENTION_SUCCEEDED_DAYS", default=7)
JOBS_RETENTION_FAILED_DAYS = env.int("JOBS_RETENTION_FAILED_DAYS", default=30)
# At most this many finished jobs per tenant and state are kept (the newest; pinned ones always); None: no cap.
JOBS_KEEP_SUCCEEDED = env.int("JOBS_KEEP_SUCCEEDED", default=None)
JOBS_KEEP_FAILED = env.int("JOBS_KEEP_FAILED", default=None)
JOBS_RETENTION_DELIVERIES_DAYS = env.int("JOBS_RETENTION_DELIVERIES_DAYS", default=30)
JOBS_CLEANUP_HOUR = env.int("JOBS_CLEANUP_HOUR", default=3)
JOBS_CLEANUP_BATCH = env.int("JOBS_CLEANUP_BATCH", default=1000)

# Fairness: jobs a tenant may have queued or running at once (tenants and kinds may set their own; 0: no limit).
JOBS_TENANT_CONCURRENCY = env.int("JOBS_TENANT_CONCURRENCY", default=50)

# --- Cron schedules (jobs.schedules) ---
# A fire time reached later than this (no scheduler was running) counts as missed: the schedule's
# misfire policy decides whether it still runs.
SCHEDULES_MISFIRE_GRACE_SECONDS = env.int("SCHEDULES_MISFIRE_GRACE_SECONDS", default=60)
# "Run every missed run" catches up at most this many (the latest ones).
SCHEDULES_CATCHUP_LIMIT = env.int("SCHEDULES_CATCHUP_LIMIT", default=50)

# --- Outbound webhooks ---
# http:// destinations and loopback addresses are for development only; production refuses both.
WEBHOOKS_ALLOW_HTTP = env.bool("WEBHOOKS_ALLOW_HTTP", default=DEBUG)
WEBHOOKS_ALLOW_LOOPBACK = env.bool("WEBHOOKS_ALLOW_LOOPBACK", default=DEBUG)
WEBHOOKS_CONNECT_TIMEOUT = env.float("WEBHOOKS_CONNECT_TIMEOUT", default=3.0)
WEBHOOKS_READ_TIMEOUT = env.float("WEBHOOKS_READ_TIMEOUT", default=10.0)
WEBHOOKS_TOTAL_TIMEOUT = env.float("WEBHOOKS_TOTAL_TIMEOUT", default=20.0)
# Destination ports a webhook may use; 80 is added where http:// is allowed. Anything else (22, 6379...)
# is refused, so delivery errors shown to tenant admins cannot map a network's services.
WEBHOOKS_ALLOWED_PORTS = env.list("WEBHOOKS_ALLOWED_PORTS", cast=int, default=[443, 8443])
WEBHOOKS_RESPONSE_MAX_BYTES = env.int("WEBHOOKS_RESPONSE_MAX_BYTES", default=64 * 1024)
WEBHOOKS_MAX_BODY_BYTES = env.int("WEBHOOKS_MAX_BODY_BYTES", default=256 * 1024)
WEBHOOKS_SECRET_GRACE_HOURS = env.float("WEBHOOKS_SECRET_GRACE_HOURS", default=24.0)
WEBHOOKS_DISABLE_AFTER_HOURS = env.float("WEBHOOKS_DISABLE_AFTER_HOURS", default=5 * 24.0)
WEBHOOKS_USER_AGENT = env.str("WEBHOOKS_USER_AGENT", default="tracked-jobs-webhooks/1")
# Event types endpoints can subscribe to; host code adds its own (webhooks.send accepts any valid name).
WEBHOOKS_EVENT_TYPES = env.list("WEBHOOKS_EVENT_TYPES", default=["job.succeeded", "job.failed"])

# --- Reports and exports ---
# Files live in their own storage, never under a public URL: downloads go through a view that checks
# membership (or a signed link). Local files by default; any Django storage backend (an S3-compatible
# one from django-storages, say) by REPORTS_STORAGE_BACKEND and REPORTS_STORAGE_OPTIONS (JSON).
REPORTS_ROOT = env.path("REPORTS_ROOT", default=BASE_DIR / "var" / "reports")
REPORTS_STORAGE = {
    "BACKEND": env.str("REPORTS_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"),
    "OPTIONS": env.json("REPORTS_STORAGE_OPTIONS", default={"location": str(REPORTS_ROOT), "base_url": None}),
}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # `collectstatic` (the Procfile's release step) copies them to STATIC_ROOT with compressed versions;
    # the web process serves them itself (whitenoise). Not renamed by content: report PDFs, rendered by
    # workers, name them as they are in the source.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    "reports": REPORTS_STORAGE,
}
# Where a file is written before it is stored (None: the system's temporary folder).
REPORTS_SCRATCH_DIR = env.str("REPORTS_SCRATCH_DIR", default="") or None
REPORTS_RETENTION_DAYS = env.int("REPORTS_RETENTION_DAYS", default=7)
REPORTS_LINK_HOURS = env.int("REPORTS_LINK_HOURS", default=72)
REPORTS_MAX_RANGE_DAYS = env.int("REPORTS_MAX_RANGE_DAYS", default=366)
REPORTS_PDF_MAX_ROWS = env.int("REPORTS_PDF_MAX_ROWS", default=1000)
REPORTS_PDF_TIMEOUT = env.float("REPORTS_PDF_TIMEOUT", default=120.0)
REPORTS_PDF_MAX_MEMORY_MB = env.int("REPORTS_PDF_MAX_MEMORY_MB", default=1024)
REPORTS_TOP_FAILURES = env.int("REPORTS_TOP_FAILURES", default=10)

# --- Operations: health, metrics, alerts (jobs.ops; docs/deploy.md) ---
# Thresholds of /readyz and of the alert check (0 turns one off). Crossing one is "degraded"; the checks
# named in OPS_DOWN_CHECKS count as "down" (503) instead. The database unreachable is always "down".
OPS_MAX_FAILED_PER_HOUR = env.int("OPS_MAX_FAILED_PER_HOUR", default=100)
OPS_MAX_FAILURE_RATE = env.float("OPS_MAX_FAILURE_RATE", default=0.0)  # failed / finished in the last hour
OPS_MAX_WAITING = env.int("OPS_MAX_WAITING", default=10_000)  # pending + queued
OPS_MAX_DELAYED = env.int("OPS_MAX_DELAYED", default=5_000)  # scheduled + retrying
OPS_MAX_ACTIVE = env.int("OPS_MAX_ACTIVE", default=1_000)  # running
OPS_MAX_PENDING = env.int("OPS_MAX_PENDING", default=5_000)  # stored, not yet handed to RQ
OPS_MAX_WAITING_AGE_SECONDS = env.int("OPS_MAX_WAITING_AGE_SECONDS", default=900)
OPS_DOWN_CHECKS = env.list("OPS_DOWN_CHECKS", default=[])
# Redis socket timeouts and the database statement timeout of the checks (seconds); the admin's banner
# reuses a process's Redis answer this long.
OPS_CHECK_TIMEOUT = env.float("OPS_CHECK_TIMEOUT", default=1.0)
OPS_REDIS_STATE_CACHE_SECONDS = env.float("OPS_REDIS_STATE_CACHE_SECONDS", default=5.0)
# /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; empty: /metrics is 404.
METRICS_TOKEN = env_secret("METRICS_TOKEN")
OPS_METRICS_TOP_TENANTS = env.int("OPS_METRICS_TOP_TENANTS", default=10)
OPS_METRICS_WINDOW_SECONDS = env.int("OPS_METRICS_WINDOW_SECONDS", default=3600)
OPS_METRICS_TIMEOUT = env.float("OPS_METRICS_TIMEOUT", default=10.0)
# Alerts: who hears of an incident (opened once, resolved once). The check runs every minute from the
# built-in "Alert check" system schedule, made when alerts are on (by default: when someone is told).
OPS_ALERT_EMAILS = env.list("OPS_ALERT_EMAILS", default=[])
OPS_ALERT_WEBHOOK_URL = env.str("OPS_ALERT_WEBHOOK_URL", default="")
OPS_ALERT_WEBHOOK_SECRET = env_secret("OPS_ALERT_WEBHOOK_SECRET")  # whsec_...: Standard Webhooks signature
# Hysteresis: an incident opens once a check has been crossed on this many consecutive minutes' checks,
# and resolves once it has been clear on this many; a value flapping at its threshold tells nobody twice.
OPS_ALERT_OPEN_AFTER = env.int("OPS_ALERT_OPEN_AFTER", default=2)
OPS_ALERT_RESOLVE_AFTER = env.int("OPS_ALERT_RESOLVE_AFTER", default=5)
OPS_ALERTS_ENABLED = env.bool("OPS_ALERTS_ENABLED", default=bool(OPS_ALERT_EMAILS or OPS_ALERT_WEBHOOK_URL))

# --- JSON API for integrating code (jobs.api) ---
# Per-tenant bearer tokens (made in the admin). A token's last use is written at most this often.
API_TOKEN_LAST_USED_SECONDS = env.int("API_TOKEN_LAST_USED_SECONDS", default=60)
# Requests per minute per token (counted in Redis; 0: no limit). Over it: 429 with Retry-After.
API_RATE_LIMIT = env.int("API_RATE_LIMIT", default=600)
# Jobs per page of GET /api/v1/jobs: the default and the most a client may ask for (limit=).
API_PAGE_SIZE = env.int("API_PAGE_SIZE", default=50)
API_PAGE_SIZE_MAX = env.int("API_PAGE_SIZE_MAX", default=200)

# Superusers' token for the django-rq dashboard's stats.json and metrics (Authorization: Bearer ...).
RQ_API_TOKEN = env_secret("RQ_API_TOKEN")

# --- Logins (tenants.logins): failed logins on /admin/login/ and /accounts/login/ within the window
# lock that account, and that client address, until the window has passed over them (0: no limit). ---
LOGIN_THROTTLE_ACCOUNT_FAILURES = env.int("LOGIN_THROTTLE_ACCOUNT_FAILURES", default=5)
LOGIN_THROTTLE_ADDRESS_FAILURES = env.int("LOGIN_THROTTLE_ADDRESS_FAILURES", default=20)
LOGIN_THROTTLE_WINDOW_SECONDS = env.int("LOGIN_THROTTLE_WINDOW_SECONDS", default=15 * 60)

# --- The proxy in front of the web process (docs/deploy.md, "HTTPS and the proxy") ---
# The addresses of the proxies: gunicorn believes their X-Forwarded-Proto (config/gunicorn.py reads the same
# variable), and Django their FORWARDED_FOR_HEADER for the client's address. "*": whoever connects.
FORWARDED_ALLOW_IPS = [entry.strip() for entry in env.list("FORWARDED_ALLOW_IPS", default=["127.0.0.1"])]
FORWARDED_FOR_HEADER = env.str("FORWARDED_FOR_HEADER", default="X-Forwarded-For")
# Django believes this header from anyone who reaches the web process, so it is off unless set: for a proxy
# that always overwrites it, in front of a web process that nothing else can reach. By default gunicorn
# decides whether a request came over HTTPS, from the proxies in FORWARDED_ALLOW_IPS only.
_PROXY_SSL_HEADER = env.str("SECURE_PROXY_SSL_HEADER", default="")  # a header's name, e.g. X-Forwarded-Proto
SECURE_PROXY_SSL_HEADER = ("HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"), "https") if _PROXY_SSL_HEADER else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers probe the web process itself over plain HTTP. ProbeMiddleware answers them before
# SecurityMiddleware runs; this keeps them answering should the middleware order ever change.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
# Both commit every subdomain of the site's host name to HTTPS for as long as browsers remember (a preload
# for months after it is withdrawn): off unless the deployment says so.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)

# Logs go to stderr, one JSON object per line (LOG_FORMAT=plain for people); secrets are masked in
# both. `jobs.events` is the line per job state change (jobs.eventlog): JOBS_EVENTS_LOG_LEVEL=WARNING
# turns it off (it follows JOBS_LOG_LEVEL unless set).
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
_JOBS_LOG_LEVEL = env.str("JOBS_LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "jobs.eventlog.JsonFormatter"},
        "plain": {"()": "jobs.eventlog.PlainFormatter", "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    # django.request names the path of a page that failed ("Not Found: /reports/download/<token>/").
    "filters": {"secret_paths": {"()": "config.access_log.SecretPathFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["secret_paths"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
    "loggers": {
        "jobs": {"handlers": ["console"], "level": _JOBS_LOG_LEVEL, "propagate": False},
        "jobs.events": {"level": env.str("JOBS_EVENTS_LOG_LEVEL", default=_JOBS_LOG_LEVEL)},
        "tenants": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "reports": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # A handler of its own here keeps rq-scheduler from adding a second one (each line printed twice).
        "rq_scheduler.scheduler": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)

# --- Django's tasks framework (`django.tasks`) runs on the engine (jobs.tasks_backend). ---
# Every task is a tracked job kind named by its module path, on our queues; OPTIONS are the defaults of
# the engine's options, which a task may set itself (`@task(max_attempts=5, timeout=60, backoff=2.0)`).
TASKS = {
    "default": {
        "BACKEND": "jobs.tasks_backend.TrackedTaskBackend",
        "QUEUES": list(RQ_QUEUES),
        "OPTIONS": {"max_attempts": env.int("TASKS_MAX_ATTEMPTS", default=3),
                    "timeout": env.int("TASKS_TIMEOUT", default=300),
                    "backoff": env.float("TASKS_BACKOFF", default=10.0)},
    },
}
# Tasks in installed apps may run; other modules' only when listed here (dotted module paths).
TRACKED_TASK_MODULES = env.list("TRACKED_TASK_MODULES", default=[])
# Whose work a request's tasks are: a dotted path to `resolver(request) -> Tenant | None`; the default
# takes the signed-in user's tenant when they belong to exactly one (jobs.tenancy).
TRACKED_TASK_TENANT_RESOLVER = env.str("TRACKED_TASK_TENANT_RESOLVER", default="jobs.tenancy.tenant_of_request")
