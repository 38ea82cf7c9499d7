"""The embedded demo (``make run``): a SQLite portal database under ``var/`` unless DATABASE_URL says
otherwise, DEBUG on, console e-mail. Never used in production."""

from __future__ import annotations

import os

os.environ.setdefault("DEBUG", "true")

from portal.settings.base import *  # noqa: E402,F403
from portal.settings.base import VAR_DIR  # noqa: E402
from portal.settings.env import env_database, env_str  # noqa: E402

DEBUG = True
SECRET_KEY = env_str("SECRET_KEY") or "soyang-demo-only-key-not-for-production-use-0123456789"
DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")}
# The demo site's record-key secret is generated on first use and kept here (a hospital's comes from its
# worker's environment: disclosure.record_keys).
SOYANG_RECORD_KEY_SECRET_DIR = VAR_DIR / "record-keys"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
