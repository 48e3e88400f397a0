"""SOXGov settings: one module, configured from the environment.

Embedded default (no variables set): DEBUG on, SQLite in ``var/db.sqlite3``, Celery tasks run eagerly in the
web process. Production: set ``SOXGOV_DEBUG=0`` plus the variables listed in README.md ("Configuration");
``DATABASE_URL`` selects PostgreSQL and ``REDIS_URL`` selects a real Celery broker.
"""

import datetime as dt
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from soxgov.env import (
    envbool,
    envchoice,
    envint,
    envlist,
    envpaths,
    envpublickeys,
    envrolemap,
    envsigningkey,
    envstr,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("SOXGOV_VAR_DIR") or BASE_DIR / "var")

DEBUG = envbool("SOXGOV_DEBUG", True)

SECRET_KEY = envstr("SOXGOV_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SOXGOV_SECRET_KEY must be set when SOXGOV_DEBUG is off")
    SECRET_KEY = "soxgov-insecure-development-key-never-use-in-production"

ALLOWED_HOSTS = envlist("SOXGOV_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("SOXGOV_ALLOWED_HOSTS must be set when SOXGOV_DEBUG is off")
CSRF_TRUSTED_ORIGINS = envlist("SOXGOV_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_htmx",
    "simple_history",
    "django_celery_beat",
    "csp",
    # TOTP for break-glass accounts (soxgov/breakglass.py).
    "django_otp",
    "django_otp.plugins.otp_totp",
    "soxgov",
    "entitlements",
    "evidence",
    "sod",
    "reviews",
    # Last, so that soxgov's axes_reset_username (evidenced) replaces axes' own.
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files are answered above this line: they get neither the policies nor no-store.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "soxgov.middleware.ContentSecurityPolicyMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "soxgov.middleware.NoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "soxgov.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "soxgov.middleware.SessionTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "soxgov.urls"
WSGI_APPLICATION = "soxgov.wsgi.application"
AUTH_USER_MODEL = "soxgov.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

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
                "soxgov.context_processors.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------
DATABASE_URL = envstr("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        # Health checks: a connection kept between requests is tested before reuse, so one the server closed
        # meanwhile (a restart, an idle timeout, pg_terminate_backend) is replaced instead of failing a request.
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=envint("SOXGOV_DB_CONN_MAX_AGE", 60), conn_health_checks=True
        )
    }
    # The server notices a client that died in the middle of a long statement (a killed worker) within seconds
    # and ends its backend, which frees the worker's leases (soxgov/leases.py) for the reaper.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"]["options"] = (
        DATABASES["default"]["OPTIONS"].get("options", "") + " -c client_connection_check_interval=2000"
    ).strip()
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": envstr("SOXGOV_SQLITE_PATH") or VAR_DIR / "db.sqlite3",
            # IMMEDIATE: a writer takes the lock when its transaction begins, so two writers never both read
            # the evidence chain head and then deadlock upgrading to a write lock.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30},
            # A file, not ":memory:", so that a real Celery worker in the end-to-end tests sees the test data.
            "TEST": {"NAME": envstr("SOXGOV_SQLITE_TEST_PATH") or str(VAR_DIR / "test_db.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("SOXGOV_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
# Uploaded proof (remediation attachments). Served to signed-in users through a view, never as static files.
MEDIA_ROOT = Path(envstr("SOXGOV_MEDIA_ROOT") or VAR_DIR / "media")
MEDIA_URL = "/media/"
# Third-party assets are installed from the npm registry into static/node_modules (``make assets``) and
# served under vendor/; nothing third-party is committed.
_NODE_MODULES = BASE_DIR / "static" / "node_modules"
STATICFILES_DIRS = [
    ("soxgov", BASE_DIR / "static" / "soxgov"),
    ("vendor/htmx", _NODE_MODULES / "htmx.org" / "dist"),
    ("vendor/pico", _NODE_MODULES / "@picocss" / "pico" / "css"),
    ("vendor/chartjs", _NODE_MODULES / "chart.js" / "dist"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security (production) ------------------------------------------------------------------------------
SESSION_COOKIE_SECURE = envbool("SOXGOV_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = envbool("SOXGOV_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = envint("SOXGOV_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SOXGOV_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = envbool("SOXGOV_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# A load balancer probes the containers over plain HTTP: the health endpoints answer it instead of redirecting.
SECURE_REDIRECT_EXEMPT = [r"^health/"]
# Behind the TLS proxy, X-Forwarded-Proto is trusted, and the client's address is the one the proxy appends to
# X-Forwarded-For (sign-in evidence).
SOXGOV_BEHIND_TLS_PROXY = envbool("SOXGOV_BEHIND_TLS_PROXY", False)
if SOXGOV_BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy (django-csp 4): only this origin's scripts, styles and connections; no inline script,
# no eval, no inline style (SOXGov's own JS and CSS are files under static/soxgov/). data: images are Pico's
# and Swagger UI's CSS icons. DRF's browsable API also gets inline style (soxgov/middleware.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}
# Browser features SOXGov never uses, switched off for its pages and anything they might embed.
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "hid",
        "idle-detection",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "screen-wake-lock",
        "serial",
        "usb",
        "xr-spatial-tracking",
    )
}

# Signed-in sessions end after this long without a request the user made (polling does not count) and, however
# active, this long after sign-in (soxgov/middleware.py SessionTimeoutMiddleware).
SOXGOV_SESSION_IDLE_MINUTES = envint("SOXGOV_SESSION_IDLE_MINUTES", 30, minimum=1)
SOXGOV_SESSION_MAX_HOURS = envint("SOXGOV_SESSION_MAX_HOURS", 12, minimum=1)
# The cookie and the stored session go at the absolute limit too, so nothing outlives it in a browser or the table.
SESSION_COOKIE_AGE = SOXGOV_SESSION_MAX_HOURS * 3600

# --- Celery ---------------------------------------------------------------------------------------------
REDIS_URL = envstr("REDIS_URL")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
# Without a broker the embedded default runs tasks in-process, right after the transaction that enqueued them.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
# A task's message is acknowledged when the task ends, and given back to the queue when the pool process running
# it dies, so a killed worker's job is delivered again at once. A worker whose main process died leaves its
# message unacknowledged in Redis until the visibility timeout; the reaper (soxgov/jobs.py) does not wait for
# that: the job's lease is free as soon as the worker's database connection closes. A task that outlives the
# visibility timeout is delivered to a second worker, which finds the job's lease held and leaves it alone.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": envint("SOXGOV_BROKER_VISIBILITY_TIMEOUT", 1800, minimum=60),
    "socket_connect_timeout": 2,
    # How long a sender (a web request) keeps retrying to reach the broker before it gives up; the worker's own
    # reconnection is separate and never gives up (CELERY_BROKER_CONNECTION_MAX_RETRIES).
    "connect_retries_timeout": 1,
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# A web request that sends a job does not wait for a broker that is down: the job is committed, and the reaper
# sends it when the broker is back (soxgov/jobs.py dispatch).
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker keeps reconnecting to a broker that went away, however long it is gone.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Durable jobs (soxgov/jobs.py): the reaper's period; how long a sent job may wait unstarted before it is sent
# again (doubling with each send); on SQLite, how long a running job may run before it counts as lost.
SOXGOV_REAP_SECONDS = envint("SOXGOV_REAP_SECONDS", 60, minimum=5)
SOXGOV_JOB_RESEND_SECONDS = envint("SOXGOV_JOB_RESEND_SECONDS", 120, minimum=0)
SOXGOV_JOB_LEASE_SECONDS = envint("SOXGOV_JOB_LEASE_SECONDS", 6 * 3600, minimum=60)
CELERY_TASK_DEFAULT_QUEUE = envstr("SOXGOV_CELERY_QUEUE", "soxgov")
# Background work (imports, evidence packs, SoD checks) yields the CPU to people: each worker process lowers its
# scheduling priority by this much (0 to 19, as nice(1)), so a pack built beside the web server on the same
# machine slows the reviewers' pages less. Where web and workers have machines of their own it changes nothing.
SOXGOV_WORKER_NICE = envint("SOXGOV_WORKER_NICE", 10, minimum=0)
if SOXGOV_WORKER_NICE > 19:
    raise ImproperlyConfigured(f"SOXGOV_WORKER_NICE={SOXGOV_WORKER_NICE} is above the maximum of 19")
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Health (soxgov/health.py): how often beat sends the worker heartbeat, and the oldest heartbeat (run by a worker)
# and last send (by beat), in seconds, that /health/ready still accepts.
SOXGOV_HEARTBEAT_SECONDS = envint("SOXGOV_HEARTBEAT_SECONDS", 30, minimum=1)
SOXGOV_HEALTH_WORKER_MAX_AGE = envint("SOXGOV_HEALTH_WORKER_MAX_AGE", 120, minimum=1)
SOXGOV_HEALTH_BEAT_MAX_AGE = envint("SOXGOV_HEALTH_BEAT_MAX_AGE", 120, minimum=1)
# Fixed schedules (the database scheduler copies them into django-celery-beat's tables at start).
CELERY_BEAT_SCHEDULE = {
    "sod-daily": {"task": "sod.daily", "schedule": crontab(minute=30, hour=3)},
    "reviews-daily": {"task": "reviews.daily", "schedule": crontab(minute=0, hour=7)},
    "evidence-checkpoint": {"task": "evidence.checkpoint", "schedule": crontab(minute=0, hour="*/6")},
    "soxgov-reap": {"task": "soxgov.reap", "schedule": float(SOXGOV_REAP_SECONDS)},
    # Readiness (soxgov/health.py): a worker stamps it; expired rather than queued up while no worker runs.
    "soxgov-heartbeat": {
        "task": "soxgov.heartbeat",
        "schedule": dt.timedelta(seconds=SOXGOV_HEARTBEAT_SECONDS),
        "options": {"expires": SOXGOV_HEARTBEAT_SECONDS},
    },
}
# Beat writes each entry's last_run_at back after every task it sends (not every 3 minutes): /health/ready reads
# beat's last run from it.
CELERY_BEAT_SYNC_EVERY = 1

# --- E-mail ---------------------------------------------------------------------------------------------
EMAIL_BACKEND = envstr("SOXGOV_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = envstr("SOXGOV_EMAIL_HOST", "localhost")
EMAIL_PORT = envint("SOXGOV_EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = envstr("SOXGOV_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envstr("SOXGOV_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("SOXGOV_EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = envstr("SOXGOV_DEFAULT_FROM_EMAIL", "soxgov@localhost")

# --- REST API -------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "soxgov.api.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["soxgov.api.permissions.RestrictedPermission"],
    # Bodies are JSON (lists and nested sides have one unambiguous form there); a form or multipart body gets 415.
    # Only endpoints that take a file (an import, remediation proof) also accept multipart.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "soxgov.pagination.IdCursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "soxgov.api.schema.AutoSchema",
    # Services raise (soxgov.exceptions.Conflict, Django's ValidationError ...); one handler picks the status.
    "EXCEPTION_HANDLER": "soxgov.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SOXGov API",
    "DESCRIPTION": "Identities, access, evidence. Read with a session or a token: `Authorization: Token <key>`.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema describes every endpoint; only users with a role (session or token) get it.
    "SERVE_PERMISSIONS": ["soxgov.api.permissions.HasRole"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No call-out to swagger.io's validator: it would send the schema's URL away (and CSP blocks its badge).
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Several models have a "kind" or "status"; name each choice set after its model.
    "ENUM_NAME_OVERRIDES": {
        "IdentityKindEnum": "entitlements.models.identities.Identity.Kind",
        "IdentityStatusEnum": "entitlements.models.identities.Identity.Status",
        "AccountStatusEnum": "entitlements.models.access.Account.Status",
        "EntitlementKindEnum": "entitlements.models.access.Entitlement.Kind",
        "ConnectorKindEnum": "entitlements.models.connectors.Connector.Kind",
        "RunKindEnum": "entitlements.models.connectors.ConnectorRun.Kind",
        "RunStatusEnum": "entitlements.models.connectors.ConnectorRun.Status",
        "VerificationStatusEnum": "evidence.models.ChainVerification.Status",
        "SodRiskEnum": "sod.models.Risk",
        "ViolationStatusEnum": "sod.models.Violation.Status",
        "AcceptanceStatusEnum": "sod.models.RiskAcceptance.Status",
        "ControlFrequencyEnum": "sod.models.Frequency",
        "CheckTriggerEnum": "sod.models.Check.Trigger",
        "CampaignKindEnum": "reviews.models.Campaign.Kind",
        "CampaignStatusEnum": "reviews.models.Campaign.Status",
        "CampaignRoutingEnum": "reviews.models.Campaign.Routing",
        "ReviewItemStatusEnum": "reviews.models.ReviewItem.Status",
        "DecisionActionEnum": "reviews.models.Decision.Action",
        "RemediationStatusEnum": "reviews.models.RemediationTask.Status",
        "SampleKindEnum": "reviews.models.AuditSample.Kind",
        "ExceptionKindEnum": "sod.models.ControlException.Kind",
        "ExceptionStatusEnum": "sod.models.ControlException.Status",
    },
}

# --- Cache (run progress shared between workers and the web) -------------------------------------------
CACHES = {
    # Short timeouts: the cache only carries run progress, which a page shows as unknown while Redis is away.
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# --- Domain settings ------------------------------------------------------------------------------------
SOXGOV_PAGE_SIZE = envint("SOXGOV_PAGE_SIZE", 50, minimum=1)
SOXGOV_DORMANT_DAYS = envint("SOXGOV_DORMANT_DAYS", 90, minimum=1)
# Recommendations (reviews/recommendations.py; docs/review-intelligence.md justifies the defaults): a peer group
# counts from this many people; held by at most RARE % of it is rare, by at least COMMON % is most.
SOXGOV_RECOMMEND_MIN_PEERS = envint("SOXGOV_RECOMMEND_MIN_PEERS", 5, minimum=2)
SOXGOV_RECOMMEND_RARE_PERCENT = envint("SOXGOV_RECOMMEND_RARE_PERCENT", 10, minimum=0, maximum=100)
SOXGOV_RECOMMEND_COMMON_PERCENT = envint("SOXGOV_RECOMMEND_COMMON_PERCENT", 50, minimum=0, maximum=100)
# Rubber-stamp findings (reviews/stamps.py): more than FAST_COUNT decisions each under FAST_SECONDS from the item
# shown; every item certified with more than HIGH_RISK_COUNT high-risk items among them; a bulk certify covering
# at least BULK_REVOKES items recommended for revoke.
SOXGOV_STAMP_FAST_SECONDS = envint("SOXGOV_STAMP_FAST_SECONDS", 5, minimum=1)
SOXGOV_STAMP_FAST_COUNT = envint("SOXGOV_STAMP_FAST_COUNT", 20, minimum=0)
SOXGOV_STAMP_HIGH_RISK_COUNT = envint("SOXGOV_STAMP_HIGH_RISK_COUNT", 10, minimum=0)
SOXGOV_STAMP_BULK_REVOKES = envint("SOXGOV_STAMP_BULK_REVOKES", 1, minimum=1)
# "Decided in the last hours before the due date" (a statistic, no finding by itself).
SOXGOV_STAMP_LAST_HOURS = envint("SOXGOV_STAMP_LAST_HOURS", 24, minimum=1)
# Days a revocation's remediation task has before it is overdue (and becomes a control exception).
SOXGOV_REMEDIATION_DAYS = envint("SOXGOV_REMEDIATION_DAYS", 14, minimum=1)
# What a reviewer confirms at sign-off; the exact text confirmed is kept in the sign-off's evidence.
SOXGOV_ATTESTATION_TEXT = (
    envstr("SOXGOV_ATTESTATION_TEXT")
    or "I reviewed each access listed for me in this campaign and decided, to the best of my knowledge, whether "
    "the person or system still needs it for their job. Access I certified is appropriate; access I revoked "
    "should be removed."
).strip()
# The longest a mitigation or risk acceptance may hold, in days from the day it is recorded or approved: an answer
# dated further out is refused, so nobody parks a control failure out of sight.
SOXGOV_ANSWER_MAX_DAYS = envint("SOXGOV_ANSWER_MAX_DAYS", 365, minimum=1)
# Where SOXGov is reached, for links in e-mails.
SOXGOV_BASE_URL = envstr("SOXGOV_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# Imports: where input files are kept (content-addressed), and the limits that keep bad files harmless.
SOXGOV_IMPORT_DIR = Path(envstr("SOXGOV_IMPORT_DIR") or VAR_DIR / "imports")
SOXGOV_IMPORT_MAX_BYTES = envint("SOXGOV_IMPORT_MAX_BYTES", 2 * 1024**3, minimum=1)
# Inputs from outside. XLSX: openpyxl parses a few MB of sheet XML a second, so a part past these sizes (or a
# small file that expands by more than the ratio) would hold a worker for minutes; it is refused before parsing.
SOXGOV_XLSX_MAX_ENTRY_BYTES = envint("SOXGOV_XLSX_MAX_ENTRY_BYTES", 256 * 1024**2, minimum=1)
SOXGOV_XLSX_MAX_TOTAL_BYTES = envint("SOXGOV_XLSX_MAX_TOTAL_BYTES", 512 * 1024**2, minimum=1)
SOXGOV_XLSX_MAX_RATIO = envint("SOXGOV_XLSX_MAX_RATIO", 50, minimum=1)
# The only directories a file connector may read (resolved, symlinks included). None in production until set: a
# connector's path is typed by an admin, and the server must not read whatever file that admin names.
SOXGOV_CONNECTOR_FILE_ROOTS = envpaths(
    "SOXGOV_CONNECTOR_FILE_ROOTS", [VAR_DIR / "connectors", BASE_DIR / "docs" / "examples"] if DEBUG else []
)
# Remediation proof: the largest attachment, and the file types accepted (by extension and by content).
SOXGOV_ATTACHMENT_MAX_BYTES = envint("SOXGOV_ATTACHMENT_MAX_BYTES", 20 * 1024**2, minimum=1)
SOXGOV_ATTACHMENT_TYPES = [
    kind.lower().lstrip(".")
    for kind in envlist(
        "SOXGOV_ATTACHMENT_TYPES", ["pdf", "png", "jpg", "jpeg", "txt", "csv", "xlsx", "docx", "eml", "msg"]
    )
]
# Safety gate: hold a pull that removes more than this share of an application's grants and more than this many.
# Connector secrets (entitlements/connectors/secrets.py): Fernet keys, the first encrypts, all decrypt (rotation).
SOXGOV_SECRET_KEYS = envlist("SOXGOV_SECRET_KEYS")
# The only directories a connector secret given as file:/path may be read from (the container secrets' usual
# mount, and var/secrets for the demo).
SOXGOV_SECRET_FILE_ROOTS = envpaths(
    "SOXGOV_SECRET_FILE_ROOTS", [Path("/run/secrets"), *([VAR_DIR / "secrets"] if DEBUG else [])]
)
SOXGOV_DELETION_THRESHOLD_PERCENT = envint("SOXGOV_DELETION_THRESHOLD_PERCENT", 10, minimum=0)
SOXGOV_DELETION_THRESHOLD_COUNT = envint("SOXGOV_DELETION_THRESHOLD_COUNT", 20, minimum=0)
# PostgreSQL work_mem for an import's transaction (sorts and hashes over millions of staged rows).
SOXGOV_IMPORT_WORK_MEM = envstr("SOXGOV_IMPORT_WORK_MEM", "256MB")
# PostgreSQL: a pull adding at least this many grants (and a tenth of the table: a first load of a large application)
# checks their foreign keys in one pass, holding the grant, account and entitlement tables until it commits; 0: never.
SOXGOV_IMPORT_BULK_GRANTS = envint("SOXGOV_IMPORT_BULK_GRANTS", 100_000, minimum=0)
# PostgreSQL CSV pulls re-read only the accounts whose rows changed since the last pull (off: every row, always).
SOXGOV_IMPORT_INCREMENTAL = envbool("SOXGOV_IMPORT_INCREMENTAL", True)
# Runs with at most this many changes also write one evidence event per change (all runs write a sealed summary).
SOXGOV_EVIDENCE_DETAIL_LIMIT = envint("SOXGOV_EVIDENCE_DETAIL_LIMIT", 5000, minimum=0)
# Evidence signing (checkpoints, evidence packs): the Ed25519 private key (PEM PKCS#8) comes only from here, never
# from the database. Unset with DEBUG on: one is generated once into SOXGOV_SIGNING_GENERATED_KEY_FILE; unset with
# DEBUG off: signing refuses and ``check --deploy`` warns. Retired public keys stay trusted for verification.
SOXGOV_SIGNING_KEY = envsigningkey("SOXGOV_SIGNING_KEY_FILE", "SOXGOV_SIGNING_KEY")
SOXGOV_SIGNING_RETIRED_PUBLIC_KEYS = envpublickeys("SOXGOV_SIGNING_RETIRED_PUBLIC_KEYS")
SOXGOV_SIGNING_GENERATED_KEY_FILE = VAR_DIR / "signing" / "ed25519-key.pem"
# Checkpoints' external directory (in production, a write-once store), and the HMAC key that checks checkpoints
# signed before Ed25519 (unset: such checkpoints are reported as not checkable).
SOXGOV_CHECKPOINT_DIR = Path(envstr("SOXGOV_CHECKPOINT_DIR") or VAR_DIR / "checkpoints")
SOXGOV_CHECKPOINT_KEY = envstr("SOXGOV_CHECKPOINT_KEY") or None
# Where built evidence packs are kept for download.
SOXGOV_PACK_DIR = Path(envstr("SOXGOV_PACK_DIR") or VAR_DIR / "packs")
# SoD: an import that changed more identities than this is followed by a full scan instead of an id list.
SOXGOV_SOD_FULL_CHECK_OVER = envint("SOXGOV_SOD_FULL_CHECK_OVER", 50_000, minimum=0)

# --- Sign-in and API tokens (soxgov/signin.py, soxgov/tokens.py) --------------------------------------
# API tokens (django-rest-knox, in soxgov.ApiToken): only a digest is stored; each expires after this many hours.
SOXGOV_API_TOKEN_TTL_HOURS = envint("SOXGOV_API_TOKEN_TTL_HOURS", 720, minimum=1)
KNOX_TOKEN_MODEL = "soxgov.ApiToken"
# knox's migrations build its own token table even though soxgov.ApiToken replaces it; an orphan table whose
# foreign key to the users would also stop the test runner's flush. So they do not run.
MIGRATION_MODULES = {"knox": None}
REST_KNOX = {"TOKEN_TTL": dt.timedelta(hours=SOXGOV_API_TOKEN_TTL_HOURS), "AUTO_REFRESH": False}
# Brute-force protection (django-axes): a username is locked from one address after this many failed sign-ins.
SOXGOV_LOGIN_FAILURE_LIMIT = envint("SOXGOV_LOGIN_FAILURE_LIMIT", 5, minimum=1)
SOXGOV_LOGIN_COOLOFF_MINUTES = envint("SOXGOV_LOGIN_COOLOFF_MINUTES", 15, minimum=1)
# Single sign-on (OpenID Connect, soxgov/sso.py): on when an issuer is set. Endpoints and keys come from the
# issuer's discovery document; roles follow the IdP groups at every sign-in (README.md "Single sign-on").
SOXGOV_OIDC_ISSUER = (envstr("SOXGOV_OIDC_ISSUER") or "").rstrip("/")
SOXGOV_OIDC_CLIENT_ID = envstr("SOXGOV_OIDC_CLIENT_ID", "")
SOXGOV_OIDC_CLIENT_SECRET = envstr("SOXGOV_OIDC_CLIENT_SECRET", "")
SOXGOV_OIDC_SCOPES = envstr("SOXGOV_OIDC_SCOPES", "openid email profile")
SOXGOV_OIDC_GROUPS_CLAIM = envstr("SOXGOV_OIDC_GROUPS_CLAIM", "groups")
SOXGOV_OIDC_ROLE_MAP = envrolemap("SOXGOV_OIDC_ROLE_MAP")
SOXGOV_OIDC_LINK_CLAIM = envchoice("SOXGOV_OIDC_LINK_CLAIM", "email", ("email", "employee_id"))
SOXGOV_OIDC_CREATE_USERS = envbool("SOXGOV_OIDC_CREATE_USERS", True)
SOXGOV_OIDC_NAME = envstr("SOXGOV_OIDC_NAME", "your identity provider")
SOXGOV_OIDC_TIMEOUT_SECONDS = envint("SOXGOV_OIDC_TIMEOUT_SECONDS", 10, minimum=1)
if SOXGOV_OIDC_ISSUER:
    for _name in ("SOXGOV_OIDC_CLIENT_ID", "SOXGOV_OIDC_CLIENT_SECRET", "SOXGOV_OIDC_ROLE_MAP"):
        if not globals()[_name]:
            raise ImproperlyConfigured(f"{_name} must be set when SOXGOV_OIDC_ISSUER is set")
# The employee-id claim's name at the provider, when SOXGOV_OIDC_LINK_CLAIM is employee_id (Entra: employeeid).
SOXGOV_OIDC_EMPLOYEE_ID_CLAIM = envstr("SOXGOV_OIDC_EMPLOYEE_ID_CLAIM", "employee_id")
# mozilla-django-oidc's fixed settings; client id, secret, scopes and endpoints come from the ones above and
# from discovery (soxgov/sso.py oidc_setting).
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_STORE_ID_TOKEN = True  # the id_token_hint of RP-initiated logout
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
OIDC_OP_LOGOUT_URL_METHOD = "soxgov.sso.provider_logout_url"
# SAML 2.0 single sign-on (soxgov/saml.py): on when the IdP's metadata (a file path or an https URL) is set. Roles
# come from the groups attribute through SOXGOV_SAML_ROLE_MAP (default: the OIDC map); the link attribute follows
# SOXGOV_OIDC_LINK_CLAIM (email or employee_id).
SOXGOV_SAML_IDP_METADATA = envstr("SOXGOV_SAML_IDP_METADATA", "")
SOXGOV_SAML_SP_ENTITY_ID = envstr("SOXGOV_SAML_SP_ENTITY_ID", "")  # default: the /saml/metadata/ URL
SOXGOV_SAML_GROUPS_ATTRIBUTE = envstr("SOXGOV_SAML_GROUPS_ATTRIBUTE", "groups")
SOXGOV_SAML_EMAIL_ATTRIBUTE = envstr("SOXGOV_SAML_EMAIL_ATTRIBUTE", "email")
SOXGOV_SAML_EMPLOYEE_ID_ATTRIBUTE = envstr("SOXGOV_SAML_EMPLOYEE_ID_ATTRIBUTE", "employee_id")
SOXGOV_SAML_USERNAME_ATTRIBUTE = envstr("SOXGOV_SAML_USERNAME_ATTRIBUTE", "")  # default: the NameID
SOXGOV_SAML_ROLE_MAP = envrolemap("SOXGOV_SAML_ROLE_MAP")
SOXGOV_SAML_NAME = envstr("SOXGOV_SAML_NAME", "SAML")
SOXGOV_SAML_XMLSEC_BINARY = envstr("SOXGOV_SAML_XMLSEC_BINARY", "/usr/bin/xmlsec1")
if SOXGOV_SAML_IDP_METADATA and not (SOXGOV_SAML_ROLE_MAP or SOXGOV_OIDC_ROLE_MAP):
    raise ImproperlyConfigured("SOXGOV_SAML_ROLE_MAP must be set when SOXGOV_SAML_IDP_METADATA is set")
# Local (password) sign-in: "on" for everyone (the demo), "break-glass" for the named accounts only, "off".
# Break-glass accounts always need their TOTP code as well (soxgov/breakglass.py).
SOXGOV_LOCAL_LOGIN = envchoice("SOXGOV_LOCAL_LOGIN", "on", ("on", "break-glass", "off"))
SOXGOV_BREAK_GLASS_USERS = envlist("SOXGOV_BREAK_GLASS_USERS")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "soxgov.breakglass.LocalPasswordBackend",
    "soxgov.sso.OidcBackend",
    "soxgov.saml.SamlBackend",
]
AXES_FAILURE_LIMIT = SOXGOV_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = dt.timedelta(minutes=SOXGOV_LOGIN_COOLOFF_MINUTES)
# Username and address together: a stranger who guesses a name cannot lock its owner out from elsewhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "username"
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "soxgov.signin.client_address"
AXES_LOCKOUT_CALLABLE = "soxgov.signin.lockout_response"
# Sign-ins are evidenced in the chain; axes keeps only the counters a lockout needs (its own admin: soxgov/admin.py).
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("SOXGOV_LOG_LEVEL", "INFO")},
    # httpx logs every request's full URL at INFO: the paging tokens and cursors of the web-API sources
    # ($skiptoken, after=...) must never reach a log (entitlements/connectors/http.py says what failed, without).
    # pysaml2 logs each signed-in person's NameID at INFO, and xmlschema its schema loading: warnings only.
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "saml2": {"level": "WARNING"},
        "xmlschema": {"level": "WARNING"},
    },
}
