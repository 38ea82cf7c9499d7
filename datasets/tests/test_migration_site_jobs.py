"""Migrating a database with dataset requests under way: each review's projection becomes a job of its own and the
extracts speak the jobs' state vocabulary (pending → queued, done → succeeded, deleted → its outcome plus when its
file went), and migrating backwards gives the reviews and extracts their old states again."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from datasets.models import Extract, Projection
from jobs.choices import JobState

BEFORE = ("datasets", "0003_review_rows_pruned_at")


def _migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    MigrationExecutor(connection).migrate(targets)
    # The executor's graph and state are those of before the run: a new one for the next step.
    return MigrationExecutor(connection)


def _old_apps(executor: MigrationExecutor, latest: list[tuple[str, str]]) -> object:
    """The models of datasets before the jobs, every other app as it is now (its tables are)."""
    nodes = [node for node in latest if node[0] != "datasets"] + [BEFORE]
    return executor.loader.project_state(nodes).apps


@pytest.mark.django_db(transaction=True)
def test_reviews_and_extracts_keep_their_work_across_the_jobs_migration() -> None:
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        old = _old_apps(_migrate([BEFORE]), latest)
        model = old.get_model  # type: ignore[attr-defined]
        user = model("accounts", "User").objects.create(username="pi", email="pi@example.org")
        first = model("warehouse", "Source").objects.create(key="a", name="A", engine="duckdb", url="duckdb:////t/a")
        second = model("warehouse", "Source").objects.create(key="b", name="B", engine="duckdb", url="duckdb:////t/b")
        project = model("accounts", "Project").objects.create(
            title="P",
            purpose="study",
            approval_number="IRB-1",
            principal_investigator=user,
            starts_on=dt.date(2026, 1, 1),
            expires_on=dt.date(2027, 1, 1),
        )
        definition = model("cohorts", "CohortDefinition").objects.create(name="D", owner=user)
        version = model("cohorts", "CohortDefinitionVersion").objects.create(
            definition=definition, number=1, expression={}, expression_hash="0" * 64, author=user
        )
        request = model("datasets", "DatasetRequest").objects.create(
            version=version, project=project, requester=user, purpose="p", legal_basis="irb", state="approved"
        )
        review_model = model("datasets", "SiteReview")
        done = review_model.objects.create(request=request, source=first, projection_state="done")
        failed = review_model.objects.create(
            request=request, source=second, projection_state="failed", projection_error="The site could not be reached"
        )
        finished = timezone.now()
        extract_model = model("datasets", "Extract")
        deleted = extract_model.objects.create(request=request, source=first, state="deleted", finished_at=finished)
        pending = extract_model.objects.create(request=request, source=second, state="pending")

        _migrate(latest)
        assert Projection.objects.get(pk=done.pk).state == JobState.SUCCEEDED
        assert (Projection.objects.get(pk=failed.pk).state, Projection.objects.get(pk=failed.pk).error) == (
            JobState.FAILED,
            "The site could not be reached",
        )
        went = Extract.objects.get(pk=deleted.pk)
        assert went.state == JobState.SUCCEEDED and went.files_deleted_at is not None
        assert Extract.objects.get(pk=pending.pk).state == JobState.QUEUED

        old = _old_apps(_migrate([BEFORE]), latest)
        reviews = {r.pk: r for r in old.get_model("datasets", "SiteReview").objects.all()}  # type: ignore[attr-defined]
        assert reviews[done.pk].projection_state == "done"
        assert (reviews[failed.pk].projection_state, reviews[failed.pk].projection_error) == (
            "failed",
            "The site could not be reached",
        )
        extracts = {e.pk: e.state for e in old.get_model("datasets", "Extract").objects.all()}  # type: ignore[attr-defined]
        assert extracts == {deleted.pk: "deleted", pending.pk: "pending"}
    finally:
        _migrate(latest)
