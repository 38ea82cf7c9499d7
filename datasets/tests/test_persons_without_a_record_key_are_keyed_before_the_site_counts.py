"""Persons a site has not keyed yet (its CDM reloaded since it made its record keys) are keyed before a projection
or an extract releases a count of them: the site counts, finds persons without a key, keys them and counts again,
so the numbers carry the right cell keys. The site's services run in-process on GiBleed in a private DuckDB file,
whose key table the test empties in part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accounts.choices import Role
from datasets import services
from datasets.choices import RequestState
from datasets.extraction import DATASET_COHORT_BASE
from datasets.tests.conftest import build_world, create_request
from disclosure.cellkey import perturb, record_key
from disclosure.record_keys import record_key_secret, record_key_table, record_keys_ensure
from disclosure.selectors import rule_for
from jobs.choices import JobState

pytestmark = pytest.mark.django_db


def _forget_keys(cdm: Any, source: Any) -> None:
    """Delete the keys of every other person, as if they had come with a reload of the CDM."""
    engine = cdm.connect()
    try:
        table = record_keys_ensure(engine, source=source)
        engine.execute(f"DELETE FROM {table} WHERE MOD(person_id, 2) = 0")
        assert (
            engine.fetchone(f"SELECT COUNT(*) FROM {table}")[0]
            < engine.fetchone("SELECT COUNT(*) FROM gibleed.person")[0]
        )
    finally:
        engine.close()


def _cohort_key(cdm: Any, source: Any, cohort_id: int) -> tuple[int, int]:
    engine = cdm.connect()
    try:
        rows = engine.fetchall(
            "SELECT DISTINCT subject_id FROM gibleed_results.cohort WHERE cohort_definition_id = %(id)s",
            {"id": cohort_id},
        )
    finally:
        engine.close()
    secret = record_key_secret(source.key)
    return len(rows), sum(record_key(secret, int(row[0])) for row in rows) % 256


def test_the_projection_and_the_extract_key_the_missing_persons_and_count_again(
    cdm_gibleed_duckdb_private: Any, oracle_dir: Path, dataset_root: Path
) -> None:
    cdm = cdm_gibleed_duckdb_private
    world = build_world([cdm], oracle_dir)
    (site,) = world.sites
    request = create_request(world, days_before=365, days_after=365)
    services.request_submit(request=request, user=world.partner)
    review = request.reviews.get()

    _forget_keys(cdm, site)
    assert services.projection_execute(review_id=review.pk) == JobState.SUCCEEDED
    review.refresh_from_db()
    persons, key = _cohort_key(cdm, site, DATASET_COHORT_BASE + review.pk)
    assert (review.cohort_persons, review.cohort_persons_key) == (persons, key)

    services.review_decide(review=review, steward=world.steward_a, approve=True)
    _forget_keys(cdm, site)
    (extract,) = request.extracts.all()
    assert services.extraction_execute(extract_id=extract.pk) == JobState.SUCCEEDED
    request.refresh_from_db()
    assert request.state == RequestState.READY
    extract.refresh_from_db()
    ptable = rule_for(source=site, role=Role.PARTNER).ptable
    assert ptable is not None
    perturbed = perturb(persons, key, ptable)
    assert perturbed is not None
    assert extract.manifest["cohort_persons"]["value"] == max(10, (perturbed + 5) // 10 * 10)
    engine = cdm.connect()
    try:
        keyed = engine.fetchone(f"SELECT COUNT(*) FROM {record_key_table('gibleed_results', site.key)}")  # noqa: S608
        everybody = engine.fetchone("SELECT COUNT(*) FROM gibleed.person")
    finally:
        engine.close()
    assert keyed == everybody
