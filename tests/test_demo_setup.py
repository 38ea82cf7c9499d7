"""The demo set-up gives a new user a loaded warehouse, one account per role and a project to count in."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from accounts.models import Project, User
from accounts.permissions import project_sources_for_user, projects_for_user
from warehouse.models import Source


@pytest.mark.django_db
def test_demo_setup_creates_warehouse_accounts_and_project_once(tmp_path: Path) -> None:
    out = StringIO()
    url = f"duckdb:///{tmp_path / 'demo.duckdb'}"
    call_command("demo_setup", persons=300, warehouse_url=url, stdout=out)
    first = out.getvalue()
    assert "these passwords are shown only now" in first
    for username in ("researcher", "partner", "steward", "admin"):
        assert username in first
        assert User.objects.get(username=username).is_approved

    source = Source.objects.get(key="demo")
    assert source.fingerprint and source.cdm_version == "5.4"
    researcher = User.objects.get(username="researcher")
    partner = User.objects.get(username="partner")
    project = Project.objects.get()
    assert list(projects_for_user(researcher)) == [project]
    assert list(projects_for_user(partner)) == [project]
    assert list(project_sources_for_user(researcher, project)) == [source]

    again = StringIO()
    call_command("demo_setup", persons=300, warehouse_url=url, stdout=again)
    assert "shown only now" not in again.getvalue()
    assert Project.objects.count() == 1
    assert Source.objects.get(key="demo").fingerprint == source.fingerprint
