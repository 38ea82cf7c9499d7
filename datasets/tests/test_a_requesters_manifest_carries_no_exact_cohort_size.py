"""A requester's manifest (in the file, on the page, in the API) carries no exact cohort size and no count of
persons suppressed: only the cohort size as the portal shows it to the requester's role. The site's steward sees
the exact figures. Real worker process, GiBleed on a private DuckDB file; the requester is a pharma partner.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.choices import Role
from datasets.extraction import zip_members
from datasets.tests.conftest import ALL_PERSON_COLUMNS, build_world, extract_ready, signed_in_client
from disclosure.rules import protect
from disclosure.selectors import rule_for

pytestmark = pytest.mark.django_db(transaction=True)


def _keys(value: Any) -> list[str]:
    """Every key of a JSON value, at any depth."""
    if isinstance(value, dict):
        return [*value, *(k for v in value.values() for k in _keys(v))]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


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
    shown = protect(exact, rule_for(source=extract.source, role=Role.PARTNER))
    assert shown.value != exact

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
        assert manifest["cohort_persons"]["value"] == shown.value
        assert manifest["cohort_persons"]["display"] == shown.display
        assert "rounded to the nearest 10" in manifest["cohort_persons"]["rule"]
        assert manifest["persons_released"] <= exact
    assert shown.display in page and "Exact, for the site" not in page

    steward_api = _api_manifest(world.steward_a, extract.request_id)
    exact_figures = steward_api["stewards_only"]
    assert exact_figures["cohort_persons"] == exact
    assert exact_figures["persons_suppressed_k_anonymity"] == exact - steward_api["persons_released"]
    steward_page = signed_in_client(world.steward_a).get(
        reverse("datasets:request_detail", kwargs={"pk": extract.request_id})
    )
    assert "Exact, for the site" in steward_page.content.decode()
    assert f"{exact} persons" in steward_page.content.decode()
