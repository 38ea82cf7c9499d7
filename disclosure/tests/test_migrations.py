"""Migrating a database that has sites and projects: each site's privacy settings land in its DisclosurePolicy
(and go back onto the site when migrating backwards), and the projects keep their sites."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts.models import Project
from disclosure.models import DisclosurePolicy
from disclosure.selectors import rule_for
from warehouse.models import Source

#: The last state with the privacy settings on warehouse.Source and Project.sources declared by accounts.
BEFORE = [("disclosure", None), ("accounts", "0004_api_token")]
#: The models of that state.
BEFORE_STATE = [("warehouse", "0004_concept_words"), ("accounts", "0004_api_token")]


def _migrate(targets: list[tuple[str, str | None]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    # The executor's graph and state are those of before the run: reload them for the next step.
    return MigrationExecutor(connection)


def _latest() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_migrating_moves_each_sites_privacy_settings_and_keeps_the_projects_sites() -> None:
    latest = _latest()
    try:
        old = _migrate(BEFORE).loader.project_state(BEFORE_STATE).apps
        old_source, old_user, old_project = (
            old.get_model("warehouse", "Source"),
            old.get_model("accounts", "User"),
            old.get_model("accounts", "Project"),
        )
        strict = old_source.objects.create(
            key="strict",
            name="Strict",
            engine="duckdb",
            url="duckdb:////tmp/strict.duckdb",
            min_cell_size=20,
            round_to=5,
            aggregate_only_roles=["partner", "researcher"],
        )
        plain = old_source.objects.create(key="plain", name="Plain", engine="duckdb", url="duckdb:////tmp/p.duckdb")
        pi = old_user.objects.create(username="pi", email="pi@example.org")
        project = old_project.objects.create(
            title="P",
            purpose="study",
            approval_number="IRB-1",
            principal_investigator=pi,
            starts_on=dt.date(2026, 1, 1),
            expires_on=dt.date(2027, 1, 1),
        )
        project.sources.set([strict, plain])

        _migrate(latest)
        policies = {p.source.key: p for p in DisclosurePolicy.objects.select_related("source")}
        assert (policies["strict"].min_cell_size, policies["strict"].round_to) == (20, 5)
        assert policies["strict"].aggregate_only_roles == ["partner", "researcher"]
        assert (policies["plain"].min_cell_size, policies["plain"].round_to) == (10, 10)
        assert policies["plain"].aggregate_only_roles == ["partner"]
        assert rule_for(source=Source.objects.get(key="strict"), role="researcher").describe() == (
            "perturbed (at most ±3), counts under 20 hidden, rounded to the nearest 5"
        )
        assert sorted(Project.objects.get(title="P").sources.values_list("key", flat=True)) == ["plain", "strict"]
        assert list(Source.objects.get(key="strict").projects.values_list("title", flat=True)) == ["P"]

        # Backwards: an admin's later change of a policy goes back onto its site.
        DisclosurePolicy.objects.filter(source__key="plain").update(min_cell_size=15)
        old = _migrate(BEFORE).loader.project_state(BEFORE_STATE).apps
        sites = {s.key: s for s in old.get_model("warehouse", "Source").objects.all()}
        assert (sites["strict"].min_cell_size, sites["strict"].round_to) == (20, 5)
        assert sites["strict"].aggregate_only_roles == ["partner", "researcher"]
        assert sites["plain"].min_cell_size == 15
        reverted = old.get_model("accounts", "Project").objects.get(title="P")
        assert sorted(reverted.sources.values_list("key", flat=True)) == ["plain", "strict"]
    finally:
        _migrate(latest)
