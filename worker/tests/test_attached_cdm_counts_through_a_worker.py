"""A hospital's existing CDM, attached, is counted by a real site worker; a reload by the hospital's ETL is seen
by the site (the periodic check, or the next count) and the cached result is then no longer served.

The CDM is made by plain SQL (``warehouse.tests.plain_cdm``) on PostgreSQL; the worker reaches it as the role the
hospital gives Soyang (read the CDM, write the results schema).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from cohorts.expression import parse_expression
from cohorts.runs.generation import generate_cohort
from cohorts.runs.services import run_request_create, site_queue
from jobs.choices import JobState
from warehouse.engines import connect
from warehouse.models import Source
from warehouse.services import source_attach, source_create
from warehouse.tests.plain_cdm import PlainCdm, plain_postgres_cdm
from worker.fingerprints import fingerprint_checks_enqueue
from worker.tests.helpers import make_user, oracle_definition, oracle_expected, wait_final, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "h04_gibleed_censored_by_acetaminophen"


@pytest.fixture
def hospital(test_cdm_pg_url: str, shared_data_dir: Path) -> Iterator[PlainCdm]:
    with plain_postgres_cdm(test_cdm_pg_url, shared_data_dir / "omop" / "gibleed") as cdm:
        yield cdm


def _persons_now(cdm: PlainCdm, definition: dict) -> int:
    """The cohort's persons on the CDM as it is now, generated directly (as the hospital's own tool would)."""
    with connect(cdm.kind, cdm.url) as engine:
        return generate_cohort(
            engine,
            parse_expression(definition),
            cdm_schema=cdm.cdm_schema,
            vocabulary_schema=cdm.vocabulary_schema,
            results_schema=cdm.results_schema,
            cohort_id=999_001,
        ).persons


def test_an_attached_cdm_counts_on_the_worker_and_a_reload_is_never_answered_from_the_cache(
    hospital: PlainCdm, start_worker, oracle_dir: Path
) -> None:
    source = source_create(
        key="hospital",
        engine=hospital.kind,
        url=hospital.url,
        cdm_schema=hospital.cdm_schema,
        results_schema=hospital.results_schema,
    )
    source_attach(source=source)
    alice = make_user()
    definition = oracle_definition(oracle_dir, NAME, alice)
    version = definition.latest_version()
    start_worker(site_queue(source.key))

    (run,) = wait_final(run_request_create(user=alice, version=version, sources=[source]))
    assert run.state == JobState.SUCCEEDED, run.error
    assert run.result["persons"] == oracle_expected(oracle_dir, NAME)["persons"]
    attached = Source.objects.get(pk=source.pk)
    assert run.result["fingerprint"] == attached.fingerprint  # the data the count was computed on
    again = run_request_create(user=alice, version=version, sources=[source])
    assert list(again.runs.all()) == [run]  # confirmed by the count just made: served from the cache

    # The hospital's ETL reloads: some persons' observation periods go, and new ones come.
    periods = f"{hospital.cdm_schema}.observation_period"
    hospital.etl(
        f"CREATE TEMPORARY TABLE gone AS SELECT * FROM {periods} ORDER BY person_id LIMIT 300",
        f"DELETE FROM {periods} WHERE person_id IN (SELECT person_id FROM gone)",
        f"INSERT INTO {periods} SELECT observation_period_id + 10000000, person_id + 10000000, "
        "observation_period_start_date, observation_period_end_date, period_type_concept_id FROM gone",
    )
    # The periodic check goes to the site's queue; the site's worker reads the new fingerprint and records it.
    assert fingerprint_checks_enqueue() == 1
    reloaded = wait_for(
        lambda: Source.objects.filter(pk=source.pk).exclude(fingerprint=attached.fingerprint).first(),
        what="the site's worker to see the reload",
    )
    assert AuditEvent.objects.filter(action="source.fingerprint_changed", source_key="hospital").count() == 1

    (recount,) = wait_final(run_request_create(user=alice, version=version, sources=[source]))
    assert recount.pk != run.pk
    assert recount.state == JobState.SUCCEEDED, recount.error
    assert recount.result["fingerprint"] == reloaded.fingerprint
    assert recount.result["persons"] == _persons_now(hospital, definition.latest_version().expression)
    assert recount.result["persons"] < run.result["persons"]


def test_a_cached_count_is_not_served_once_the_site_has_not_confirmed_its_data_for_too_long(
    hospital: PlainCdm, start_worker, oracle_dir: Path, settings
) -> None:
    source = source_create(
        key="hospital",
        engine=hospital.kind,
        url=hospital.url,
        cdm_schema=hospital.cdm_schema,
        results_schema=hospital.results_schema,
    )
    source_attach(source=source)
    alice = make_user()
    version = oracle_definition(oracle_dir, NAME, alice).latest_version()
    start_worker(site_queue(source.key))
    (run,) = wait_final(run_request_create(user=alice, version=version, sources=[source]))
    assert run.state == JobState.SUCCEEDED, run.error

    # The site's worker last confirmed its data longer ago than the portal trusts (it may be down, or a reload
    # may not be seen yet): the same request runs again at the site instead of repeating the stored number.
    stale = timezone.now() - timedelta(seconds=settings.SOYANG_FINGERPRINT_MAX_AGE_SECONDS + 1)
    Source.objects.filter(pk=source.pk).update(fingerprint_checked_at=stale)
    (again,) = wait_final(run_request_create(user=alice, version=version, sources=[source]))

    assert again.pk != run.pk
    assert again.state == JobState.SUCCEEDED, again.error
    assert again.result["persons"] == run.result["persons"]
    assert Source.objects.get(pk=source.pk).fingerprint_checked_at > stale  # the count confirmed it again
