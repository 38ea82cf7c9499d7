"""A site's projection carries the cell key of every count it makes, computed at the site from its record keys:
of the cohort's persons (their keys once each) and of each table's rows (each row its person's key). The site's
stewards see the exact numbers; admins each count perturbed with its key; the requester none. Real worker
process, GiBleed on a private DuckDB file; the keys are recomputed here from the site's secret.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.choices import Role
from datasets import services
from datasets.choices import RequestState
from datasets.extraction import DATASET_COHORT_BASE
from datasets.tests.conftest import build_world, create_request
from disclosure.cellkey import perturb, record_key
from disclosure.record_keys import record_key_secret
from disclosure.selectors import rule_for
from worker.tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = 365


def _site_truth(cdm: Any, cohort_id: int) -> tuple[list[int], dict[int, int]]:
    """The cohort's persons, and each one's condition rows within the window, read at the site."""
    engine = cdm.connect()
    try:
        index = (
            "WITH idx AS (SELECT subject_id AS person_id, MIN(cohort_start_date) AS index_date "
            f"FROM gibleed_results.cohort WHERE cohort_definition_id = {cohort_id} GROUP BY subject_id) "
        )
        persons = [int(row[0]) for row in engine.fetchall(index + "SELECT person_id FROM idx")]
        rows = engine.fetchall(
            index + "SELECT t.person_id, COUNT(*) FROM gibleed.condition_occurrence t "
            "JOIN idx ON t.person_id = idx.person_id "
            f"WHERE t.condition_start_date >= idx.index_date - {WINDOW} "
            f"AND t.condition_start_date <= idx.index_date + {WINDOW} GROUP BY t.person_id"
        )
    finally:
        engine.close()
    return persons, {int(person): int(n) for person, n in rows}


def _api_review(user: Any, request_id: int) -> dict[str, Any]:
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(f"/api/v1/dataset-requests/{request_id}/")
    assert response.status_code == 200, response.content
    (review,) = response.json()["reviews"]
    return dict(review)


def test_the_projections_counts_carry_their_cell_keys_and_are_shown_by_who_sees_them(
    start_worker: Any, cdm_gibleed_duckdb_private: Any, oracle_dir: Path
) -> None:
    world = build_world([cdm_gibleed_duckdb_private], oracle_dir)
    (site,) = world.sites
    start_worker(f"site.{site.key}")
    request = create_request(world, days_before=WINDOW, days_after=WINDOW)
    services.request_submit(request=request, user=world.partner)

    def under_review() -> bool:
        request.refresh_from_db()
        return request.state == RequestState.UNDER_REVIEW

    wait_for(under_review, timeout=120, what="the projection")
    review = request.reviews.get()
    persons, conditions = _site_truth(cdm_gibleed_duckdb_private, DATASET_COHORT_BASE + review.pk)
    secret = record_key_secret(site.key)
    keys = {person: record_key(secret, person) for person in persons}
    assert review.cohort_persons == len(persons) > 10
    assert review.cohort_persons_key == sum(keys.values()) % 256
    assert review.projected_rows["condition_occurrence"] == sum(conditions.values()) > review.cohort_persons
    assert review.projected_row_keys["condition_occurrence"] == (
        sum(n * keys[person] for person, n in conditions.items()) % 256
    )
    # The person table has one row per person: the persons' cell.
    assert (review.projected_rows["person"], review.projected_row_keys["person"]) == (
        review.cohort_persons,
        review.cohort_persons_key,
    )

    steward = _api_review(world.steward_a, request.pk)
    assert steward["cohort_persons"] == review.cohort_persons
    assert steward["projected_rows"] == review.projected_rows
    assert steward["counts_rule"] == "exact, for the site's data stewards"

    ptable = rule_for(source=site, role=Role.ADMIN).ptable
    assert ptable is not None
    admin = _api_review(world.admin, request.pk)
    assert admin["cohort_persons"] == perturb(review.cohort_persons, review.cohort_persons_key, ptable)
    assert admin["projected_rows"] == {
        table: perturb(n, review.projected_row_keys[table], ptable) for table, n in review.projected_rows.items()
    }
    assert admin["counts_rule"] == rule_for(source=site, role=Role.ADMIN).describe()

    partner = _api_review(world.partner, request.pk)
    assert (partner["cohort_persons"], partner["projected_rows"], partner["counts_rule"]) == (None, None, "")
