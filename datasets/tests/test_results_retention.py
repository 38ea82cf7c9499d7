"""The cohort rows a dataset request leaves at a site (``DATASET_COHORT_BASE + review``) go once no job of the
request runs there any more, and the retention has passed since; never while an approval could still start an
extraction, nor while a worker still holds a job of it. GiBleed on PostgreSQL, cohorts generated for real."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from cohorts.runs.generation import generate_cohort
from datasets.choices import REVIEW_OPEN_STATES, SITE_WORK_OVER_STATES, TRANSITIONS, RequestState
from datasets.extraction import DATASET_COHORT_BASE
from datasets.models import DatasetRequest, Extract, Projection, SiteReview
from datasets.tests.conftest import World, build_world, create_request
from jobs.choices import JobState
from worker.retention import results_prune

pytestmark = pytest.mark.django_db


def site_rows(cdm: Any, cohort_id: int) -> int:
    engine = cdm.connect()
    try:
        row = engine.fetchone(
            f"SELECT COUNT(*) FROM {cdm.results_schema}.cohort WHERE cohort_definition_id = %(id)s", {"id": cohort_id}
        )
    finally:
        engine.close()
    return int(row[0])


def reviewed(
    world: World,
    cdm: Any,
    state: str,
    *,
    hours_ago: float,
    projection_state: str = JobState.SUCCEEDED,
    **projection_fields: Any,
) -> SiteReview:
    """A request in ``state`` since ``hours_ago``, its projection done at the site, the cohort generated there."""
    request = create_request(world)
    DatasetRequest.objects.filter(pk=request.pk).update(
        state=state, updated_at=timezone.now() - timedelta(hours=hours_ago)
    )
    review = SiteReview.objects.create(request=request, source=world.sites[0])
    Projection.objects.create(review=review, state=projection_state, **projection_fields)
    engine = cdm.connect()
    try:
        generate_cohort(
            engine,
            world.definition.latest_version().expression,
            cdm_schema=cdm.cdm_schema,
            vocabulary_schema=cdm.vocabulary_schema,
            results_schema=cdm.results_schema,
            cohort_id=DATASET_COHORT_BASE + review.pk,
        )
    finally:
        engine.close()
    assert site_rows(cdm, DATASET_COHORT_BASE + review.pk) > 0
    return review


def extract_of(review: SiteReview, state: str, **fields: Any) -> Extract:
    return Extract.objects.create(request=review.request, source=review.source, state=state, **fields)


def test_a_dataset_cohort_goes_once_the_request_work_at_the_site_is_over(
    cdm_gibleed_pg: Any, oracle_dir: Path, dataset_root: Path, settings: Any
) -> None:
    settings.SOYANG_RESULTS_RETENTION_HOURS = 24
    world = build_world([cdm_gibleed_pg], oracle_dir)
    now = timezone.now()
    withdrawn = reviewed(world, cdm_gibleed_pg, RequestState.WITHDRAWN, hours_ago=48)
    downloaded = reviewed(world, cdm_gibleed_pg, RequestState.DOWNLOADED, hours_ago=30)
    extract_of(downloaded, JobState.SUCCEEDED, finished_at=now - timedelta(hours=40))
    # Under review: the steward's approval would start an extraction that generates and reads the cohort.
    under_review = reviewed(world, cdm_gibleed_pg, RequestState.UNDER_REVIEW, hours_ago=72)
    # Ready an hour ago: its extraction finished within the retention.
    ready = reviewed(world, cdm_gibleed_pg, RequestState.READY, hours_ago=1)
    extract_of(ready, JobState.SUCCEEDED, finished_at=now - timedelta(hours=1))
    # Revoked while the site's worker was extracting: the extract is asked to stop, its worker still holds it.
    revoked = reviewed(world, cdm_gibleed_pg, RequestState.REVOKED, hours_ago=48)
    extract_of(revoked, JobState.RUNNING, cancel_requested=True, lease_expires_at=now + timedelta(minutes=20))
    # Rejected while a projection was still running there (its lease still live).
    rejected = reviewed(
        world,
        cdm_gibleed_pg,
        RequestState.REJECTED,
        hours_ago=48,
        projection_state=JobState.RUNNING,
        lease_expires_at=now + timedelta(minutes=10),
    )

    report = results_prune(source_id=world.sites[0].pk)

    assert report.error == ""
    gone, kept = [withdrawn, downloaded], [under_review, ready, revoked, rejected]
    assert [p.cohort.review_id for p in report.pruned] == [review.pk for review in gone]
    assert [p.cohort.cohort_id for p in report.pruned] == [DATASET_COHORT_BASE + review.pk for review in gone]
    for review in gone:
        assert site_rows(cdm_gibleed_pg, DATASET_COHORT_BASE + review.pk) == 0
        review.refresh_from_db()
        assert review.rows_pruned_at is not None
    for review in kept:
        assert site_rows(cdm_gibleed_pg, DATASET_COHORT_BASE + review.pk) > 0
        review.refresh_from_db()
        assert review.rows_pruned_at is None
    event = AuditEvent.objects.get(action="results_prune")
    assert event.detail["dataset_cohorts"] == 2 and event.detail["runs"] == 0
    assert event.detail["rows"] == report.rows > 0

    again = results_prune(source_id=world.sites[0].pk)
    assert again.pruned == [] and AuditEvent.objects.filter(action="results_prune").count() == 1

    # With no retention, the extraction that ended an hour ago is over too; the jobs still held stay.
    settings.SOYANG_RESULTS_RETENTION_HOURS = 0
    assert [p.cohort.review_id for p in results_prune(source_id=world.sites[0].pk).pruned] == [ready.pk]
    assert site_rows(cdm_gibleed_pg, DATASET_COHORT_BASE + revoked.pk) > 0
    assert site_rows(cdm_gibleed_pg, DATASET_COHORT_BASE + rejected.pk) > 0


def test_no_state_of_a_closed_request_leads_back_to_site_work() -> None:
    # What makes pruning a closed request's cohort safe: nothing after it starts a projection or an extraction.
    for state in SITE_WORK_OVER_STATES:
        assert set(TRANSITIONS[state]) <= set(SITE_WORK_OVER_STATES), state
    assert not {*REVIEW_OPEN_STATES, RequestState.APPROVED, RequestState.EXTRACTING} & set(SITE_WORK_OVER_STATES)
