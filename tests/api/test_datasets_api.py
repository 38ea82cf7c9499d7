"""The dataset journey through the API only, on GiBleed at two sites (PostgreSQL and DuckDB) with a real Celery
worker process: request with its document (multipart) → submit → projection at both sites → approval by each
site's steward (one narrowing the window) → extraction → download by the requester, byte for byte the zip
recorded → revocation. Plus the upload checks of the create call: a document of the wrong type or over the size
limit is refused with a clear message and nothing is written.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.api.tokens import token_create
from audit.models import AuditEvent
from datasets.choices import RequestState
from datasets.extraction import zip_members
from datasets.models import DatasetRequest, Extract
from datasets.tests.conftest import PDF, SELECTION, World, build_world, dataset_root, files_under  # noqa: F401
from worker.tests.conftest import cdm_gibleed_duckdb_private  # noqa: F401 (fixture)
from worker.tests.helpers import wait_for

API = "/api/v1/dataset-requests"


def _client(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=user, name='script', days=1).secret}")
    return client


def _document(data: bytes = PDF, name: str = "irb.pdf") -> io.BytesIO:
    document = io.BytesIO(data)
    document.name = name
    return document


def _form(world: World, **overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "definition": world.definition.pk,
        "sites": [s.key for s in world.sites],
        "selection": json.dumps(SELECTION),
        "days_before": 365,
        "days_after": 365,
        "purpose": "Risk of GI bleeding after NSAID exposure",
        "legal_basis": "irb",
        "document": _document(),
    }
    form.update(overrides)
    return form


def _state(pk: int, *states: str) -> bool:
    return DatasetRequest.objects.filter(pk=pk, state__in=states).exists()


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.django_db(transaction=True)
def test_partner_requests_and_downloads_a_dataset_approved_at_two_sites_through_the_api_only(
    start_worker: Any,
    cdm_gibleed_pg: Any,
    cdm_gibleed_duckdb_private: Any,  # noqa: F811
    oracle_dir: Path,
    dataset_root: Path,  # noqa: F811
) -> None:
    world = build_world([cdm_gibleed_pg, cdm_gibleed_duckdb_private], oracle_dir)
    pg, duck = world.sites
    start_worker(f"site.{pg.key},site.{duck.key},portal", concurrency=2, env={"SOYANG_DATASET_ROOT": str(dataset_root)})
    partner, steward_a, steward_b = _client(world.partner), _client(world.steward_a), _client(world.steward_b)

    created = partner.post(f"{API}/", _form(world), format="multipart")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert created.json()["state"] == "draft" and created.json()["has_document"]
    assert created.json()["sites"] == sorted(s.key for s in world.sites)

    # Only the requester submits; a steward who sees the request is told so.
    refused = steward_a.post(f"{API}/{pk}/submit/")
    assert refused.status_code == 403 and "requester" in refused.json()["error"]["message"]
    submitted = partner.post(f"{API}/{pk}/submit/")
    assert submitted.status_code == 200 and submitted.json()["state"] == "submitted"
    again = partner.post(f"{API}/{pk}/submit/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

    wait_for(lambda: _state(pk, RequestState.UNDER_REVIEW), timeout=120, what="both projections")
    # Patient counts are for the stewards: the requester sees the reviews' states only.
    partner_view = {r["source"]: r for r in partner.get(f"{API}/{pk}/").json()["reviews"]}
    steward_view = {r["source"]: r for r in steward_a.get(f"{API}/{pk}/").json()["reviews"]}
    assert partner_view[pg.key]["cohort_persons"] is None and partner_view[pg.key]["projected_rows"] is None
    assert steward_view[pg.key]["cohort_persons"] > 0 and steward_view[pg.key]["projected_rows"]["person"] > 0

    # Nobody decides their own request, nor another site's.
    own = partner.post(f"{API}/{pk}/reviews/{pg.key}/approve/", {}, format="json")
    assert own.status_code == 403 and "own request" in own.json()["error"]["message"]
    other_site = steward_a.post(f"{API}/{pk}/reviews/{duck.key}/approve/", {}, format="json")
    assert other_site.status_code == 403
    wider = steward_a.post(f"{API}/{pk}/reviews/{pg.key}/approve/", {"days_before": 400}, format="json")
    assert wider.status_code == 400
    narrowed = steward_a.post(f"{API}/{pk}/reviews/{pg.key}/approve/", {"days_before": 180}, format="json")
    assert narrowed.status_code == 200, narrowed.content
    decided = {r["source"]: r for r in narrowed.json()["reviews"]}
    assert decided[pg.key]["decision"] == "approved" and decided[pg.key]["approved_days_before"] == 180
    approved = steward_b.post(f"{API}/{pk}/reviews/{duck.key}/approve/", {}, format="json")
    assert approved.status_code == 200, approved.content
    twice = steward_b.post(f"{API}/{pk}/reviews/{duck.key}/approve/", {}, format="json")
    assert twice.status_code == 409

    wait_for(lambda: _state(pk, RequestState.READY, RequestState.FAILED), timeout=180, what="both extracts")
    ready = partner.get(f"{API}/{pk}/").json()
    assert ready["state"] == "ready", ready["reason"]

    # The download: the requester only, the zip exactly the one recorded, audited.
    url = f"{API}/{pk}/extracts/{pg.key}/download/"
    assert steward_a.post(url).status_code == 403
    assert partner.get(url).status_code == 405
    downloaded = partner.post(url)
    assert downloaded.status_code == 200 and downloaded["Content-Type"] == "application/zip"
    data = _body(downloaded)
    extract = Extract.objects.get(request_id=pk, source=pg)
    assert hashlib.sha256(data).hexdigest() == extract.sha256
    assert extract.download_count == 1 and "manifest.json" in zip_members(data)
    assert AuditEvent.objects.filter(action="export", object_id=str(pk), outcome="success").count() == 1
    recorded = {e["source"]: e for e in partner.get(f"{API}/{pk}/").json()["extracts"]}
    assert recorded[pg.key]["sha256"] == extract.sha256 and recorded[pg.key]["download_count"] == 1

    timeline = partner.get(f"{API}/{pk}/timeline/").json()
    assert [t["to_state"] for t in timeline] == [
        "draft",
        "submitted",
        "under_review",
        "approved",
        "extracting",
        "ready",
        "downloaded",
    ]

    # Revoked by a steward: the files go at once, and the link with them.
    assert partner.post(f"{API}/{pk}/revoke/", {"reason": "Mine"}, format="json").status_code == 403
    revoked = steward_b.post(f"{API}/{pk}/revoke/", {"reason": "The agreement ended."}, format="json")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert files_under(dataset_root) == []
    gone = partner.post(url)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "gone"


@pytest.mark.django_db
def test_a_document_of_the_wrong_type_or_too_large_is_refused_and_nothing_is_written(
    cdm_gibleed_duckdb_private: Any,  # noqa: F811
    oracle_dir: Path,
    dataset_root: Path,  # noqa: F811
) -> None:
    world = build_world([cdm_gibleed_duckdb_private], oracle_dir)
    partner = _client(world.partner)
    before = (DatasetRequest.objects.count(), AuditEvent.objects.filter(action="dataset_request").count())

    cases = {
        "an executable named .pdf": _document(b"MZ\x90\x00" + b"\x00" * 200, "irb.pdf"),
        "a text file": _document(b"I approve this study.", "irb.txt"),
    }
    for label, document in cases.items():
        response = partner.post(f"{API}/", _form(world, document=document), format="multipart")
        assert response.status_code == 400, (label, response.content)
        assert "PDF, PNG or JPEG" in response.json()["error"]["message"], label

    empty = partner.post(f"{API}/", _form(world, document=_document(b"")), format="multipart")
    assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]

    with override_settings(SOYANG_DATASET_MAX_UPLOAD_BYTES=1024):
        big = _document(PDF + b"0" * 4096)
        response = partner.post(f"{API}/", _form(world, document=big), format="multipart")
        assert response.status_code == 400
        assert "larger than the limit" in response.json()["error"]["message"]
        # Far past the limit: refused by its declared size before the body is read.
        with override_settings(SOYANG_API_MAX_BODY_BYTES=1024):
            huge = _document(PDF + b"0" * 10_000)
            response = partner.post(f"{API}/", _form(world, document=huge), format="multipart")
            assert response.status_code == 413
            assert response.json()["error"]["code"] == "request_too_large"

    # Submitting needs the document; a selection outside the catalogue names what is wrong.
    no_document = _form(world, submit="true")
    no_document.pop("document")
    response = partner.post(f"{API}/", no_document, format="multipart")
    assert response.status_code == 400 and "document" in response.json()["error"]["fields"]
    bad_columns = _form(world, selection=json.dumps({"person": ["person_source_value"]}))
    response = partner.post(f"{API}/", bad_columns, format="multipart")
    assert response.status_code == 400 and "person_source_value" in response.json()["error"]["message"]
    not_json = _form(world, selection="{person")
    assert partner.post(f"{API}/", not_json, format="multipart").status_code == 400

    after = (DatasetRequest.objects.count(), AuditEvent.objects.filter(action="dataset_request").count())
    assert after == before
    assert not [p for p in dataset_root.rglob("*") if p.is_file()]

    # The good form works, so the refusals were about the input.
    good = partner.post(f"{API}/", _form(world), format="multipart")
    assert good.status_code == 201, good.content
