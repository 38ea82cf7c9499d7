"""The retention of a site's results rows (``worker.retention``) on real warehouses: GiBleed on PostgreSQL and
DuckDB, cohorts generated for real under the ids of runs recorded in the portal.

What is deleted: the rows of the site's runs final for longer than the retention, in both results tables. What is
kept: the rows of runs still running or final too recently, of another site's runs, and of ids the portal does not
know (the site's own cohorts, ``run_cohort``'s). A second prune deletes nothing and leaves the recorded runs alone.
"""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from celery import current_app
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone

from accounts.tests.factories import SourceFactory
from audit.models import AuditEvent
from cohorts.runs.choices import RunKind
from cohorts.runs.generation import generate_cohort
from cohorts.runs.models import CohortRun
from jobs.choices import JobState
from worker.retention import results_prune, results_prune_enqueue
from worker.tasks import results_prune_site
from worker.tests.helpers import make_source, make_user, oracle_definition

pytestmark = pytest.mark.django_db

#: Three inclusion rules: its generation writes rows into both results tables.
NAME = "pl_3385"
#: An id no run has: in the range of ``manage.py run_cohort``, a cohort the site made itself.
SITE_OWN_COHORT = 1_000_000_000 + 424_242


def site_rows(cdm: Any, cohort_id: int) -> tuple[int, int]:
    """Rows of ``cohort_id`` at the site: (cohort, cohort_inclusion_result)."""
    engine = cdm.connect()
    try:
        results = cdm.results_schema
        row = engine.fetchone(
            f"SELECT (SELECT COUNT(*) FROM {results}.cohort WHERE cohort_definition_id = %(id)s), "
            f"(SELECT COUNT(*) FROM {results}.cohort_inclusion_result WHERE cohort_definition_id = %(id)s)",
            {"id": cohort_id},
        )
    finally:
        engine.close()
    return int(row[0]), int(row[1])


def generate(cdm: Any, expression: dict[str, Any], cohort_id: int) -> tuple[int, int]:
    """Generate the cohort for real under ``cohort_id`` at the site; its rows there."""
    engine = cdm.connect()
    try:
        generate_cohort(
            engine,
            expression,
            cdm_schema=cdm.cdm_schema,
            vocabulary_schema=cdm.vocabulary_schema,
            results_schema=cdm.results_schema,
            cohort_id=cohort_id,
        )
    finally:
        engine.close()
    rows = site_rows(cdm, cohort_id)
    assert rows[0] > 0 and rows[1] > 0
    return rows


class Site:
    """A source on a test CDM, the oracle definition, and runs of it with their cohorts generated at the site."""

    def __init__(self, cdm: Any, oracle_dir: Path, **source_fields: Any) -> None:
        self.cdm = cdm
        self.source = make_source(cdm, **source_fields)
        self.user = make_user()
        self.version = oracle_definition(oracle_dir, NAME, self.user).latest_version()

    def run(
        self, state: str, *, finished_hours_ago: float | None = None, source: Any = None, rows: bool = True
    ) -> CohortRun:
        now = timezone.now()
        run = CohortRun.objects.create(
            version=self.version,
            source=source or self.source,
            kind=RunKind.COUNT,
            cache_key=uuid.uuid4().hex,
            source_fingerprint="test",
            requested_by=self.user,
            state=state,
            started_at=now - timedelta(hours=(finished_hours_ago or 0) + 1),
            finished_at=None if finished_hours_ago is None else now - timedelta(hours=finished_hours_ago),
        )
        if rows:
            generate(self.cdm, self.version.expression, run.pk)
        return run


def test_rows_of_runs_final_longer_than_the_retention_go_and_everything_else_stays(
    cdm_gibleed: Any, oracle_dir: Path, settings: Any
) -> None:
    settings.SOYANG_RESULTS_RETENTION_HOURS = 24
    site = Site(cdm_gibleed, oracle_dir)
    other_site = make_source(cdm_gibleed)  # same warehouse and results schema, another site of the portal
    succeeded = site.run(JobState.SUCCEEDED, finished_hours_ago=25)
    failed = site.run(JobState.FAILED, finished_hours_ago=48)  # e.g. the demographics failed after the generation
    cancelled = site.run(JobState.CANCELLED, finished_hours_ago=30)
    recent = site.run(JobState.SUCCEEDED, finished_hours_ago=23)
    running = site.run(JobState.RUNNING)
    queued = site.run(JobState.QUEUED, rows=False)
    of_other_site = site.run(JobState.SUCCEEDED, finished_hours_ago=100, source=other_site)
    generate(cdm_gibleed, site.version.expression, SITE_OWN_COHORT)
    due = [succeeded, failed, cancelled]
    before = {run.pk: site_rows(cdm_gibleed, run.pk) for run in due}

    report = results_prune(source_id=site.source.pk, batch_size=2)

    assert report.error == "" and not report.busy
    assert [p.cohort.run_id for p in report.pruned] == [run.pk for run in due]
    assert report.batches == 2 and report.recorded == 3
    assert report.rows == sum(rows for rows, _ in before.values())
    assert report.inclusion_rows == sum(inclusion for _, inclusion in before.values())
    for run in due:
        assert site_rows(cdm_gibleed, run.pk) == (0, 0)
        run.refresh_from_db()
        assert run.rows_pruned_at is not None
    for run in (recent, running, of_other_site):
        assert site_rows(cdm_gibleed, run.pk)[0] > 0
        run.refresh_from_db()
        assert run.rows_pruned_at is None
    queued.refresh_from_db()
    assert queued.rows_pruned_at is None
    assert site_rows(cdm_gibleed, SITE_OWN_COHORT)[0] > 0

    event = AuditEvent.objects.get(action="results_prune")
    assert event.source_key == site.source.key and event.outcome == "success"
    assert event.object_type == "warehouse.source" and event.object_id == str(site.source.pk)
    assert event.detail["cohorts"] == event.detail["runs"] == 3 and event.detail["dataset_cohorts"] == 0
    assert event.detail["rows"] == report.rows and event.detail["inclusion_rows"] == report.inclusion_rows
    assert event.detail["retention_hours"] == 24
    # Counts only: no person, no date of a cohort row.
    assert set(event.detail) <= {
        "cohorts",
        "runs",
        "dataset_cohorts",
        "rows",
        "inclusion_rows",
        "recorded",
        "batches",
        "retention_hours",
        "cutoff",
        "trigger",
    }

    # The next prune finds nothing due: nothing deleted, the recorded times kept, no audit event.
    pruned_at = {run.pk: CohortRun.objects.get(pk=run.pk).rows_pruned_at for run in due}
    again = results_prune(source_id=site.source.pk)
    assert again.pruned == [] and again.due == 0 and again.error == ""
    assert {run.pk: CohortRun.objects.get(pk=run.pk).rows_pruned_at for run in due} == pruned_at
    assert AuditEvent.objects.filter(action="results_prune").count() == 1
    assert site_rows(cdm_gibleed, recent.pk)[0] > 0


def test_with_a_retention_of_zero_a_run_goes_at_the_first_prune_after_it_ends(
    cdm_gibleed_pg: Any, oracle_dir: Path, settings: Any
) -> None:
    settings.SOYANG_RESULTS_RETENTION_HOURS = 0
    site = Site(cdm_gibleed_pg, oracle_dir)
    just_finished = site.run(JobState.SUCCEEDED, finished_hours_ago=0)
    running = site.run(JobState.RUNNING)

    report = results_prune(source_id=site.source.pk)

    assert [p.cohort.run_id for p in report.pruned] == [just_finished.pk]
    assert site_rows(cdm_gibleed_pg, just_finished.pk) == (0, 0)
    assert site_rows(cdm_gibleed_pg, running.pk)[0] > 0
    running.refresh_from_db()
    assert running.rows_pruned_at is None


def test_the_dry_run_prints_what_would_go_and_changes_nothing_then_the_command_deletes_it(
    cdm_gibleed_duckdb: Any, oracle_dir: Path, settings: Any
) -> None:
    settings.SOYANG_RESULTS_RETENTION_HOURS = 24
    site = Site(cdm_gibleed_duckdb, oracle_dir)
    old = site.run(JobState.SUCCEEDED, finished_hours_ago=50)
    recent = site.run(JobState.FAILED, finished_hours_ago=2)
    rows, inclusion = site_rows(cdm_gibleed_duckdb, old.pk)

    out = io.StringIO()
    call_command("prune_results", "--source", site.source.key, "--dry-run", stdout=out)

    printed = out.getvalue()
    assert f"cohort {old.pk}, run {old.pk} (count, succeeded): would delete {rows:,} rows" in printed
    assert f"and {inclusion:,} inclusion rows" in printed
    assert f"cohort {recent.pk}," not in printed
    assert site_rows(cdm_gibleed_duckdb, old.pk) == (rows, inclusion)
    old.refresh_from_db()
    assert old.rows_pruned_at is None
    assert not AuditEvent.objects.filter(action="results_prune").exists()

    # Younger than the retention, but the operator asks for everything final more than an hour ago.
    out = io.StringIO()
    call_command("prune_results", "--source", site.source.key, "--older-than-hours", "1", stdout=out)

    assert f"cohort {old.pk}, run {old.pk} (count, succeeded): deleted {rows:,} rows" in out.getvalue()
    assert f"cohort {recent.pk}, run {recent.pk} (count, failed): deleted" in out.getvalue()
    assert site_rows(cdm_gibleed_duckdb, old.pk) == site_rows(cdm_gibleed_duckdb, recent.pk) == (0, 0)
    assert CohortRun.objects.filter(pk__in=[old.pk, recent.pk], rows_pruned_at__isnull=False).count() == 2
    assert AuditEvent.objects.get(action="results_prune").detail["trigger"] == "command"

    with pytest.raises(CommandError, match="no source"):
        call_command("prune_results", "--source", "nowhere")
    with pytest.raises(CommandError, match="0 or more"):
        call_command("prune_results", "--source", site.source.key, "--older-than-hours", "-1")


def test_a_site_that_cannot_be_reached_keeps_its_runs_for_the_next_prune(cdm_gibleed_pg: Any, oracle_dir: Path) -> None:
    site = Site(cdm_gibleed_pg, oracle_dir)
    old = site.run(JobState.SUCCEEDED, finished_hours_ago=48)
    # The same site, its database down: nothing answers on port 1.
    site.source.url = "postgresql://postgres@127.0.0.1:1/soyang_nowhere"
    site.source.save(update_fields=["url"])

    outcome = results_prune_site(source_id=site.source.pk)  # the task's body, in this process

    assert outcome.startswith("stopped after 0 of 1 cohorts")
    old.refresh_from_db()
    assert old.rows_pruned_at is None
    assert site_rows(cdm_gibleed_pg, old.pk)[0] > 0
    assert not AuditEvent.objects.filter(action="results_prune").exists()

    # Back up: the next prune takes it.
    site.source.url = cdm_gibleed_pg.url
    site.source.save(update_fields=["url"])
    report = results_prune(source_id=site.source.pk)
    assert [p.cohort.run_id for p in report.pruned] == [old.pk]
    assert site_rows(cdm_gibleed_pg, old.pk) == (0, 0)


def test_a_prune_stopped_midway_keeps_what_it_did_and_leaves_the_rest_unrecorded(
    cdm_gibleed_pg: Any, oracle_dir: Path
) -> None:
    site = Site(cdm_gibleed_pg, oracle_dir, statement_timeout_seconds=1)
    first = site.run(JobState.SUCCEEDED, finished_hours_ago=48)
    second = site.run(JobState.SUCCEEDED, finished_hours_ago=47)
    # Another session holds the second cohort's rows: its delete waits until the site's statement timeout.
    holder = psycopg2.connect(cdm_gibleed_pg.url)
    try:
        with holder.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {cdm_gibleed_pg.results_schema}.cohort WHERE cohort_definition_id = %s FOR UPDATE",
                [second.pk],
            )
        report = results_prune(source_id=site.source.pk, batch_size=1)
    finally:
        holder.rollback()
        holder.close()

    assert [p.cohort.run_id for p in report.pruned] == [first.pk]
    assert report.error and report.recorded == 1 and report.due == 2
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.rows_pruned_at is not None and second.rows_pruned_at is None
    assert site_rows(cdm_gibleed_pg, first.pk) == (0, 0)
    assert site_rows(cdm_gibleed_pg, second.pk)[0] > 0  # its batch rolled back whole: both tables kept
    assert site_rows(cdm_gibleed_pg, second.pk)[1] > 0
    event = AuditEvent.objects.get(action="results_prune")
    assert event.outcome == "failure" and event.detail["cohorts"] == 1 and event.detail["left"] == 1

    report = results_prune(source_id=site.source.pk)
    assert [p.cohort.run_id for p in report.pruned] == [second.pk]
    assert site_rows(cdm_gibleed_pg, second.pk) == (0, 0)


def test_a_second_prune_of_the_same_site_meanwhile_does_nothing(cdm_gibleed_pg: Any, oracle_dir: Path) -> None:
    site = Site(cdm_gibleed_pg, oracle_dir)
    old = site.run(JobState.SUCCEEDED, finished_hours_ago=48)
    # Another process's prune of the site holds its lock: a session of its own on the portal database.
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [0x50524E, site.source.pk])
            assert cursor.fetchone()[0]
        report = results_prune(source_id=site.source.pk)
        assert report.busy and report.pruned == []
        assert site_rows(cdm_gibleed_pg, old.pk)[0] > 0
        # Released by that prune's end (explicitly: a closed session's locks go only once its backend has exited).
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [0x50524E, site.source.pk])
    finally:
        other.close()
    assert [p.cohort.run_id for p in results_prune(source_id=site.source.pk).pruned] == [old.pk]


def test_the_beat_entry_puts_one_prune_on_the_queue_of_each_active_site(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["results-prune"]
    assert entry["task"] == "worker.tasks.results_prune"
    assert entry["options"] == {"queue": "portal"}
    assert entry["schedule"] == settings.SOYANG_RESULTS_PRUNE_INTERVAL_SECONDS == 3600
    north, south = SourceFactory(key="north"), SourceFactory(key="south")
    SourceFactory(key="closed", is_active=False)
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(current_app, "send_task", lambda name, **options: sent.append({"name": name, **options}))

    assert results_prune_enqueue() == 2
    assert sent == [
        {
            "name": "worker.tasks.results_prune_site",
            "kwargs": {"source_id": site.pk},
            "queue": f"site.{site.key}",
            "expires": 3600,
        }
        for site in (north, south)
    ]
