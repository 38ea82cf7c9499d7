"""The Celery application of Soyang.

Configured from Django settings (``CELERY_*``). The broker is Redis in production and in the tests; the
embedded demo may fall back to Celery's filesystem transport under ``var/`` so that a real worker process
still runs the warehouse queries when no Redis answers.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")

#: How often a worker on the filesystem transport (the demo without Redis) looks for new messages.
FILESYSTEM_POLLING_SECONDS = 0.05

app = Celery("soyang")
app.config_from_object("django.conf:settings", namespace="CELERY")


def _configure_filesystem_transport() -> None:
    # Imported lazily: reading settings needs Django's settings module configured first.
    from django.conf import settings

    if not str(settings.CELERY_BROKER_URL).startswith("filesystem://"):
        return
    root = settings.VAR_DIR / "broker"
    for name in ("in", "processed", "control"):
        (root / name).mkdir(parents=True, exist_ok=True)
    app.conf.broker_transport_options = {
        "data_folder_in": str(root / "in"),
        "data_folder_out": str(root / "in"),
        "processed_folder": str(root / "processed"),
        # Where the broadcast exchanges are declared; kombu's default is "control" in the working directory.
        "control_folder": str(root / "control"),
        "store_processed": False,
        # The worker looks for new messages this often (kombu's default is every second, which the builder's
        # Count would wait for half of on average): listing one small folder 20 times a second costs nothing.
        "polling_interval": FILESYSTEM_POLLING_SECONDS,
    }


_configure_filesystem_transport()
app.autodiscover_tasks()
