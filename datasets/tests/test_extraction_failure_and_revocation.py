"""An extraction that fails leaves no file behind and says why; a revocation deletes the files at once.
Real worker process, GiBleed on a private DuckDB file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from datasets import services
from datasets.choices import RequestState
from datasets.models import DatasetRequest
from datasets.tests.conftest import SELECTION, World, build_world, create_request, files_under
from jobs.choices import JobState
from worker.tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _state(request: DatasetRequest, *states: str) -> bool:
    request.refresh_from_db()
    return request.state in states


def _approved(world: World, selection: dict[str, list[str]]) -> DatasetRequest:
    request = create_request(
        world,
        selection=selection,
        days_before=3650,
        days_after=3650,
        legal_basis="dua",
        retention_days=3,
        output_format="parquet",
    )
    services.request_submit(request=request, user=world.partner)
    wait_for(lambda: _state(request, RequestState.UNDER_REVIEW), timeout=120, what="the projection")
    return request


def test_an_extraction_that_fails_midway_leaves_no_file_and_records_the_reason(
    start_worker: Any, cdm_gibleed_duckdb_private: Any, oracle_dir: Path, dataset_root: Path
) -> None:
    world = build_world([cdm_gibleed_duckdb_private], oracle_dir)
    (site,) = world.sites
    worker = start_worker(f"site.{site.key}", env={"SOYANG_DATASET_ROOT": str(dataset_root)})
    request = _approved(world, {**SELECTION, "observation": ["observation_concept_id", "observation_date"]})
    # The site loses a table after the projection: persons, visits, conditions and drugs are written to the work
    # directory before the observation query fails.
    engine = cdm_gibleed_duckdb_private.connect()
    try:
        engine.execute(f"DROP TABLE {cdm_gibleed_duckdb_private.cdm_schema}.observation")
    finally:
        engine.close()
    services.review_decide(review=request.reviews.get(), steward=world.steward_a, approve=True)
    wait_for(lambda: _state(request, RequestState.FAILED, RequestState.READY), timeout=120, what="the extraction")
    assert request.state == RequestState.FAILED, worker.log()[-3000:]
    assert "observation" in request.reason
    extract = request.extracts.get()
    assert extract.state == JobState.FAILED and extract.file_path == ""
    assert files_under(dataset_root) == []
    assert not [p for p in dataset_root.rglob(".*")]
    response = Client()
    response.force_login(world.partner)
    assert response.post(reverse("datasets:extract_download", kwargs={"pk": extract.pk})).status_code == 410


def test_a_steward_revokes_a_ready_dataset_and_its_files_are_deleted_at_once(
    start_worker: Any, cdm_gibleed_duckdb_private: Any, oracle_dir: Path, dataset_root: Path
) -> None:
    world = build_world([cdm_gibleed_duckdb_private], oracle_dir)
    (site,) = world.sites
    start_worker(f"site.{site.key}", env={"SOYANG_DATASET_ROOT": str(dataset_root)})
    request = _approved(world, {"person": ["gender_concept_id"], "death": ["death_date"]})
    services.review_decide(review=request.reviews.get(), steward=world.steward_a, approve=True)
    wait_for(lambda: _state(request, RequestState.READY, RequestState.FAILED), timeout=120, what="the extraction")
    assert request.state == RequestState.READY, request.reason
    extract = request.extracts.get()
    assert extract.file_path.endswith(".zip") and (dataset_root / extract.file_path).is_file()
    assert set(extract.manifest["files"]) == {"person.parquet", "death.parquet", "data_dictionary.csv"}

    steward = Client()
    steward.force_login(world.steward_a)
    url = reverse("datasets:request_revoke", kwargs={"pk": request.pk})
    assert steward.post(url, {"reason": ""}).status_code == 302
    assert _state(request, RequestState.READY)  # no reason, nothing changed
    assert steward.post(url, {"reason": "Agreement withdrawn"}).status_code == 302
    assert _state(request, RequestState.REVOKED)
    assert files_under(dataset_root) == []
    partner = Client()
    partner.force_login(world.partner)
    assert (
        partner.post(reverse("datasets:request_revoke", kwargs={"pk": request.pk}), {"reason": "x"}).status_code == 403
    )
    assert partner.post(reverse("datasets:extract_download", kwargs={"pk": extract.pk})).status_code == 410
