"""Settings for the test suite: PostgreSQL portal database (DATABASE_URL, default the local server),
Redis broker, fast password hashing, in-memory e-mail."""

from __future__ import annotations

import tempfile
from pathlib import Path

from portal.settings.base import *  # noqa: F403
from portal.settings.env import env_str

SECRET_KEY = env_str("SECRET_KEY") or "soyang-test-only-key-0123456789-abcdefghijklmnopqrstuvwxyz"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
ALLOWED_HOSTS = ["*"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Several test runs may share one PostgreSQL server (developers working side by side): the test database
# name can be set apart with TEST_DATABASE_NAME.
DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME") or "test_soyang"}  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

# The tests' broker: a Redis database of its own (REDIS_URL or the local server), emptied by the worker tests.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or env_str("REDIS_URL") or "redis://127.0.0.1:6379/15"
SOYANG_RUN_LEASE_SECONDS = 4
# Record-key secrets of the test sites, generated on first use and shared by the test process and the Celery
# workers it starts (same settings, same directory), one directory per test database.
_TEST_DATABASE = DATABASES["default"]["TEST"]["NAME"]  # noqa: F405
SOYANG_RECORD_KEY_SECRET_DIR = Path(tempfile.gettempdir()) / f"soyang-record-keys-{_TEST_DATABASE}"
SOYANG_COUNT_STORE_DIR = Path(tempfile.gettempdir()) / f"soyang-count-stores-{_TEST_DATABASE}"
