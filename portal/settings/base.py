"""Settings shared by every environment. Everything that differs between machines comes from the
environment (see ``portal.settings.env``); nothing secret is written here."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from jobs.queues import PORTAL_QUEUE
from portal.settings.env import env_bool, env_database, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("SOYANG_VAR_DIR") or BASE_DIR / "var")

SECRET_KEY = env_str("SECRET_KEY")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "csp",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "axes",
    "audit",
    "accounts",
    "warehouse",
    "disclosure",
    "jobs",
    "cohorts",
    "datasets",
    "worker",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # After sessions, before common: the language comes from the switcher's cookie, else Accept-Language.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before the CSRF check, which reads a form post's body: an oversized body answers 413, not 400 or 500.
    "portal.middleware.RequestSizeLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # After authentication: signs out accounts that lost their approval and sends stewards and admins
    # without TOTP to enrol before anything else.
    "accounts.middleware.AccessGuardMiddleware",
    # Last, as django-axes requires: turns a locked-out login attempt into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

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

DATABASES = {"default": env_database("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/soyang")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # First, so that a locked-out login never reaches a password check.
    "accounts.backends.LockoutBackend",
    "accounts.backends.ApprovedAccountBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Sessions end after inactivity (the expiry is pushed forward on every request).
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_SECONDS", 30 * 60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Content Security Policy (django-csp): everything the portal loads comes from the portal itself, and no inline
# script or style runs, so an injected <script> or on*="" attribute does nothing. Data for the page scripts travels
# in <script type="application/json"> (json_script), which is not executed. Images may be data: URLs (the TOTP QR
# code); nothing may frame the portal.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

LANGUAGE_CODE = "en"
# English is the source language; Korean covers every page (locale/ko, checked by the catalogue test). Compiled
# .mo files are built from the .po by `make run` / `make test` (scripts/compile_messages.py), never committed.
LANGUAGES = [("en", "English"), ("ko", "한국어")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE") or "Asia/Seoul"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT") or VAR_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = Path(env_str("SOYANG_PRIVATE_STORAGE") or VAR_DIR / "private")

EMAIL_BACKEND = env_str("EMAIL_BACKEND") or "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL") or "soyang@localhost"
# The portal's address as its users reach it: links in e-mails are read outside the portal and must be absolute.
SOYANG_BASE_URL = env_str("SOYANG_BASE_URL") or "http://127.0.0.1:8000"

# Celery: the broker is Redis in production and the tests. ``worker.celery`` reads these with the
# CELERY namespace. A queue per site (``jobs.queues.site_queue``) plus ``portal`` for portal-side work.
REDIS_URL = env_str("REDIS_URL")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or "redis://127.0.0.1:6379/0"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = PORTAL_QUEUE
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_TIMEOUT = env_int("CELERY_BROKER_CONNECTION_TIMEOUT", 3)
# A message unacknowledged this long (its worker died) is delivered again; runs hold a renewed lease, so a
# redelivered message for a live run only waits (see cohorts.runs.execution).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 120),
    "unacked_restore_interval": env_int("CELERY_RESTORE_INTERVAL", 10),
    "unacked_restore_throttle": 1,
}

# Warehouse defaults.
SOYANG_STATEMENT_TIMEOUT_SECONDS = env_int("SOYANG_STATEMENT_TIMEOUT_SECONDS", 600)

# The REST API (/api/v1/, docs/api.md). The shared machinery is in accounts/api/: token first, so an anonymous
# call answers 401 with a WWW-Authenticate header; sessions (CSRF enforced) for the browser.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.ApiTokenAuthentication",
        "accounts.api.authentication.CsrfSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.api.permissions.IsApprovedAccount"],
    "DEFAULT_PAGINATION_CLASS": "accounts.api.pagination.PagePagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.api.throttling.PerUserThrottle"],
    "DEFAULT_PARSER_CLASSES": ["accounts.api.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "accounts.api.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SOYANG_API_USER_RATE = env_str("SOYANG_API_USER_RATE") or "3000/hour"
SOYANG_API_ANON_RATE = env_str("SOYANG_API_ANON_RATE") or "300/hour"
# Bigger bodies are refused with 413 before they are parsed (an ATLAS expression of a few thousand criteria fits).
SOYANG_API_MAX_BODY_BYTES = env_int("SOYANG_API_MAX_BODY_BYTES", 2 * 1024 * 1024)
SOYANG_API_TOKEN_MAX_DAYS = env_int("SOYANG_API_TOKEN_MAX_DAYS", 365)
SPECTACULAR_SETTINGS = {
    "TITLE": "Soyang API",
    "DESCRIPTION": "Cohort discovery over OMOP CDM sites: sources, projects, cohort definitions, runs with privacy "
    "applied, approvals and the audit log. Authenticate with `Authorization: Token <secret>` (docs/api.md).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its viewers describe the API and hold no data: public, so tools can read them unsigned.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # The kinds a count may ask for, in the one-definition and the set request alike: one enum, one name.
    "ENUM_NAME_OVERRIDES": {"RunnableKindEnum": "cohorts.api.serializers.RUNNABLE_KINDS"},
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "accounts.api.schema.add_error_responses",
    ],
}

GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL") or "INFO"},
}
SOYANG_MAX_CONCURRENT_RUNS = env_int("SOYANG_MAX_CONCURRENT_RUNS", 3)
# A running run's lease: renewed every third of it while the query runs; a killed worker's run is taken
# over by another once it lapses.
SOYANG_RUN_LEASE_SECONDS = env_int("SOYANG_RUN_LEASE_SECONDS", 30)
SOYANG_RUN_POLL_SECONDS = 0.2
# The rows a run writes into its site's results tables are deleted once the run has been final (succeeded, failed,
# cancelled) this many hours; 0 deletes them at the first prune after it ends (worker.retention). Dataset
# cohorts go as long after their request's work at the site is over.
SOYANG_RESULTS_RETENTION_HOURS = env_int("SOYANG_RESULTS_RETENTION_HOURS", 24)
if SOYANG_RESULTS_RETENTION_HOURS < 0:
    raise ImproperlyConfigured("SOYANG_RESULTS_RETENTION_HOURS must be 0 or more")

# --- accounts and access ---
# Sign-up (django-allauth): e-mail verified before anything; the account then waits, pending, until an admin or
# a data steward approves it with an organisation and a role (accounts.adapters refuses the login until then).
ACCOUNT_ADAPTER = "accounts.adapters.SoyangAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_LOGOUT_ON_GET = False
# Never "remember me": the session must idle out after SESSION_IDLE_SECONDS.
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Soyang] "
ACCOUNT_PREVENT_ENUMERATION = True
# MFA: TOTP with recovery codes; required for the roles below (accounts.middleware enforces it).
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Soyang"
SOYANG_MFA_REQUIRED_ROLES = ["steward", "admin"]
# Lockout (django-axes): per account, as PIPA's safety measures ask of repeated failed logins, whatever the IP.
# allauth's own per-account failure limit would pre-empt the lockout below; keep only its per-IP flood limit.
ACCOUNT_RATE_LIMITS = {"login_failed": "30/m/ip"}
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
# In hours, as django-axes reads a number.
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 30) / 60
AXES_LOCKOUT_PARAMETERS = ["username"]
# Not per IP as well: a hospital's staff share a few NAT addresses, and five typos there would lock everybody out
# for half an hour. Password spraying from one address meets allauth's per-IP limit above instead.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_USERNAME_CALLABLE = "accounts.backends.lockout_login_name"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False
# Audit log retention (``manage.py audit_retention``): never below the two years PIPA's safety measures ask of
# access records of systems holding sensitive (health) information.
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 3650)
AUDIT_RETENTION_MIN_DAYS = 730
AUDIT_PAGE_SIZE = 100

# --- disclosure control (disclosure/) ---
# Each site's worker perturbs its counts with record keys derived from a secret of its own, read from its
# environment: SOYANG_SOURCE_<KEY>_RECORD_KEY_SECRET or SOYANG_SOURCE_<KEY>_RECORD_KEY_SECRET_FILE
# (disclosure.record_keys). Only the demo and the tests keep generated secrets in a directory.
SOYANG_RECORD_KEY_SECRET_DIR: Path | None = None

# --- the count store of PostgreSQL sites (warehouse.count_store) ---
# A columnar copy of the CDM tables counts read, one DuckDB file per site beside its worker; used only while its
# fingerprint equals the CDM's. The periodic fingerprint check of each site also checks its store (and has it
# rebuilt when missing or stale).
SOYANG_COUNT_STORE_DIR = Path(env_str("SOYANG_COUNT_STORE_DIR") or VAR_DIR / "count-stores")

# --- dataset requests (datasets/) ---
# Extracts and approval documents live here: outside STATIC_ROOT and MEDIA_ROOT, served only through the
# request's access check. SOYANG_DATASET_KEY (a Fernet key) encrypts the extracts at rest when set.
SOYANG_DATASET_ROOT = Path(env_str("SOYANG_DATASET_ROOT") or VAR_DIR / "datasets")
SOYANG_DATASET_KEY = env_str("SOYANG_DATASET_KEY") or ""
SOYANG_DATASET_MAX_UPLOAD_BYTES = env_int("SOYANG_DATASET_MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
# Celery beat (run the worker with -B, or a separate beat process): expired datasets are deleted, each site's
# worker is asked to prune its results tables (the portal task puts one prune on every active site's queue), and
# expired sessions are deleted.
SOYANG_RESULTS_PRUNE_INTERVAL_SECONDS = env_int("SOYANG_RESULTS_PRUNE_INTERVAL_SECONDS", 3600)
# A cached count is served only while the site's worker confirmed its CDM's fingerprint (warehouse.fingerprint)
# within this many seconds: each count confirms it, and so does a beat task on every active site's queue, every
# SOYANG_FINGERPRINT_CHECK_INTERVAL_SECONDS. Past it (the site's worker down, or a reload not yet seen), a count
# runs again at the site rather than repeat a number the site's data may no longer give.
SOYANG_FINGERPRINT_MAX_AGE_SECONDS = env_int("SOYANG_FINGERPRINT_MAX_AGE_SECONDS", 900)
SOYANG_FINGERPRINT_CHECK_INTERVAL_SECONDS = env_int("SOYANG_FINGERPRINT_CHECK_INTERVAL_SECONDS", 300)
CELERY_BEAT_SCHEDULE = {
    "datasets-expire": {
        "task": "worker.tasks.datasets_expire",
        "schedule": env_int("SOYANG_DATASET_EXPIRY_INTERVAL_SECONDS", 600),
        "options": {"queue": PORTAL_QUEUE},
    },
    "results-prune": {
        "task": "worker.tasks.results_prune",
        "schedule": SOYANG_RESULTS_PRUNE_INTERVAL_SECONDS,
        "options": {"queue": PORTAL_QUEUE},
    },
    "fingerprints-check": {
        "task": "worker.tasks.fingerprints_check",
        "schedule": SOYANG_FINGERPRINT_CHECK_INTERVAL_SECONDS,
        "options": {"queue": PORTAL_QUEUE},
    },
    # Every request saves the session and every sign-in makes a new one; Django never deletes the expired rows
    # itself (its clearsessions command does), so the session table would grow with every sign-in for ever.
    "sessions-clear": {
        "task": "worker.tasks.sessions_clear",
        "schedule": env_int("SOYANG_SESSIONS_CLEAR_INTERVAL_SECONDS", 24 * 3600),
        "options": {"queue": PORTAL_QUEUE},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
