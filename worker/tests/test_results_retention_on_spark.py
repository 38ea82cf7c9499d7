"""The retention of a Spark site's results rows: a run's cohort, final for longer than the retention, goes from
both results tables (its partitions dropped, since Spark cannot DELETE), counted as on the other engines; a
recent run's rows stay. GiBleed on the session's Spark, cohorts generated for real under the runs' ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobs.choices import JobState
from worker.retention import results_prune
from worker.tests.helpers import oracle_definition
from worker.tests.test_results_retention import Site, site_rows

pytestmark = pytest.mark.django_db


def test_a_spark_sites_rows_final_longer_than_the_retention_go_and_recent_ones_stay(
    cdm_gibleed_spark: Any, oracle_dir: Path, settings: Any
) -> None:
    settings.SOYANG_RESULTS_RETENTION_HOURS = 24
    site = Site(cdm_gibleed_spark, oracle_dir)
    # A cohort quick to generate on the test's local Spark (no inclusion rules: its rows are in ``cohort`` only).
    site.version = oracle_definition(oracle_dir, "h04_gibleed_censored_by_acetaminophen", site.user).latest_version()
    old = site.run(JobState.SUCCEEDED, finished_hours_ago=25)
    recent = site.run(JobState.SUCCEEDED, finished_hours_ago=23)
    before = site_rows(cdm_gibleed_spark, old.pk)
    kept = site_rows(cdm_gibleed_spark, recent.pk)

    report = results_prune(source_id=site.source.pk)

    assert report.error == "" and report.recorded == 1
    assert [p.cohort.run_id for p in report.pruned] == [old.pk]
    assert (report.rows, report.inclusion_rows) == before
    assert site_rows(cdm_gibleed_spark, old.pk) == (0, 0)
    assert site_rows(cdm_gibleed_spark, recent.pk) == kept
    again = results_prune(source_id=site.source.pk)
    assert again.pruned == [] and again.error == ""
