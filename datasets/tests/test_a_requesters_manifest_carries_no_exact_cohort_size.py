"""A requester's manifest (in the file, on the page, in the API) carries no exact cohort size and no count of
persons suppressed: only the cohort size as the portal shows it to the requester's role, perturbed with the cell
key of the cohort's persons (recomputed here from the site's secret) and rounded for a partner. The site's steward
sees the exact figures; an admin sees what the requester sees. Real worker process, GiBleed on a private DuckDB
file; the requester is a pharma partner.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.choices import Role
from datasets.extraction import DATASET_COHORT_BASE, zip_members
from datasets.tests.conftest import ALL_PERSON_COLUMNS, build_world, extract_ready, signed_in_client
from disclosure.cellkey import perturb, record_key
from disclosure.record_keys import record_key_secret
from disclosure.selectors import rule_for

pytestmark = pytest.mark.django_db(transaction=True)


def _keys(value: Any) -> list[str]:
    """Every key of a JSON value, at any depth."""
    if isinstance(value, dict):
        return [*value, *(k for v in value.values() for k in _keys(v))]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


def _cohort_key(cdm: Any, source: Any, cohort_id: int, persons: int) -> int:
    """The cell key of the cohort's persons, from the site's cohort table and its secret."""
    engine = cdm.connect()
    try:
        rows = engine.fetchall(
            "SELECT DISTINCT subject_id FROM gibleed_results.cohort WHERE cohort_definition_id = %(id)s",
            {"id": cohort_id},
        )
    finally:
        engine.close()
    assert len(rows) == persons
    secret = record_key_secret(source.key)
    return sum(record_key(secret, int(row[0])) for row in rows) % 256


def _api_manifest(user: Any, request_id: int) -> dict[str, Any]:
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(f"/api/v1/dataset-requests/{request_id}/")
    assert response.status_code == 200, response.content
    (extract,) = response.json()["extracts"]
    return dict(extract["manifest"])


def test_the_partner_sees_the_portals_count_and_the_steward_the_exact_figures(
    start_worker: Any, cdm_gibleed_duckdb_private: Any, oracle_dir: Path, dataset_root: Path
) -> None:
    world = build_world([cdm_gibleed_duckdb_private], oracle_dir)
    extract = extract_ready(world, ALL_PERSON_COLUMNS, dataset_root, start_worker)
    review = extract.request.reviews.get()
    exact = review.cohort_persons
    assert exact and exact % 10 != 0  # so that the partner's rounding shows
    key = _cohort_key(cdm_gibleed_duckdb_private, extract.source, DATASET_COHORT_BASE + review.pk, exact)
    assert review.cohort_persons_key == key  # the projection counted the same persons
    ptable = rule_for(source=extract.source, role=Role.PARTNER).ptable
    assert ptable is not None
    perturbed = perturb(exact, key, ptable)
    assert perturbed is not None
    value = max(10, (perturbed + 5) // 10 * 10)  # a partner's counts are rounded to ten, half up
    display = f"{value:,}"

    # The file the partner downloads.
    partner = signed_in_client(world.partner)
    data = partner.post(reverse("datasets:extract_download", kwargs={"pk": extract.pk})).content
    in_file = json.loads(zip_members(data)["manifest.json"])
    # Through the API and on the request's page.
    partner_api = _api_manifest(world.partner, extract.request_id)
    page = partner.get(reverse("datasets:request_detail", kwargs={"pk": extract.request_id})).content.decode()

    for manifest in (in_file, partner_api):
        assert "stewards_only" not in manifest
        assert not [key for key in _keys(manifest) if "suppress" in key or "cap" in key]
        assert manifest["cohort_persons"]["value"] == value
        assert manifest["cohort_persons"]["display"] == display
        assert manifest["cohort_persons"]["rule"].startswith("perturbed")
        assert "rounded to the nearest 10" in manifest["cohort_persons"]["rule"]
        assert manifest["persons_released"] <= exact
    assert display in page and "Exact, for the site" not in page

    # An admin oversees the portal, not the site's data: the requester's manifest, not the exact figures.
    admin_api = _api_manifest(world.admin, extract.request_id)
    assert "stewards_only" not in admin_api
    assert admin_api["cohort_persons"] == partner_api["cohort_persons"]
    admin_page = signed_in_client(world.admin).get(
        reverse("datasets:request_detail", kwargs={"pk": extract.request_id})
    )
    assert "Exact, for the site" not in admin_page.content.decode()

    steward_api = _api_manifest(world.steward_a, extract.request_id)
    exact_figures = steward_api["stewards_only"]
    assert exact_figures["cohort_persons"] == exact
    assert exact_figures["persons_suppressed_k_anonymity"] == exact - steward_api["persons_released"]
    steward_page = signed_in_client(world.steward_a).get(
        reverse("datasets:request_detail", kwargs={"pk": extract.request_id})
    )
    assert "Exact, for the site" in steward_page.content.decode()
    assert f"{exact} persons" in steward_page.content.decode()
