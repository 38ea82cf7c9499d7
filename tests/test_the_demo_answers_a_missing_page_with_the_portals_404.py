"""The demo (`make run`, portal.settings.local) answers a missing page with the portal's own 404 page, as a hospital's
users see it — not Django's debug page listing every URL pattern — unless a developer sets DEBUG=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

#: A request to the demo's settings with Django's test client, in a process of its own (its own settings module,
#: a SQLite portal database in a temporary directory); prints the status and whether the debug page answered.
PROBE = """
import django
from django.conf import settings
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0, interactive=False)
from django.test import Client
response = Client().get("/no/such/page/", HTTP_HOST="127.0.0.1")
body = response.content.decode()
print(response.status_code, settings.DEBUG, "URLconf" in body, "There is nothing here" in body)
"""


def _probe(tmp_path: Path, **env: str) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECRET_KEY", "DEBUG"))}
    environment.update(
        DJANGO_SETTINGS_MODULE="portal.settings.local",
        DATABASE_URL=f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        **env,
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_demo_shows_the_portals_404_page(tmp_path: Path) -> None:
    assert _probe(tmp_path) == ["404", "False", "False", "True"]


def test_a_developer_may_still_turn_debug_on(tmp_path: Path) -> None:
    assert _probe(tmp_path, DEBUG="true")[:3] == ["404", "True", "True"]
