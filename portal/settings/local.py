"""The embedded demo (``make run``): a SQLite portal database under ``var/`` unless DATABASE_URL says
otherwise, console e-mail. Never used in production.

DEBUG stays off unless ``DEBUG=true`` is set: a new user trying the demo sees the portal's own 404 and 500 pages,
as a hospital's users would, not Django's list of URL patterns or a traceback. Static files are served by
WhiteNoise either way."""

from __future__ import annotations

from portal.settings.base import *  # noqa: E402,F403
from portal.settings.base import VAR_DIR  # noqa: E402
from portal.settings.env import env_bool, env_database, env_str  # noqa: E402

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or "soyang-demo-only-key-not-for-production-use-0123456789"
DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")}
# The demo site's record-key secret is generated on first use and kept here (a hospital's comes from its
# worker's environment: disclosure.record_keys).
SOYANG_RECORD_KEY_SECRET_DIR = VAR_DIR / "record-keys"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
