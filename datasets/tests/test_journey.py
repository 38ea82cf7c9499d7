"""The whole journey on GiBleed at two sites (PostgreSQL and DuckDB), with real Celery worker processes:
request → projection → approval at both sites → extraction → download → expiry → files gone. The output is
scanned against the source: no original id or date, no source value, k-anonymity on the quasi-identifiers.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import current_app
from cryptography.fernet import Fernet
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from datasets import catalogue
from datasets.choices import RequestState
from datasets.extraction import zip_members
from datasets.models import DatasetPolicy, DatasetRequest, Extract
from datasets.tests.conftest import World, build_world, files_under, request_form_data
from datasets.tests.conftest import signed_in_client as _client
from jobs.choices import JobState
from worker.tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _state(request: DatasetRequest, *states: str) -> bool:
    request.refresh_from_db()
    return request.state in states


def _csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def _source_rows(cdm: Any, sql: str) -> list[tuple[Any, ...]]:
    engine = cdm.connect()
    try:
        return engine.fetchall(sql)
    finally:
        engine.close()


def assert_deidentified(members: dict[str, bytes], cdm: Any, *, k: int, shift_days: int, max_age: int) -> None:
    """The scan of one site's dataset against that site's warehouse."""
    manifest = json.loads(members["manifest.json"])
    assert set(members) == {*manifest["files"], "manifest.json"}
    for name, facts in manifest["files"].items():
        assert hashlib.sha256(members[name]).hexdigest() == facts["sha256"], name

    source_ids: set[str] = set()
    for table in ("person", "visit_occurrence", "condition_occurrence", "drug_exposure"):
        id_column = "person_id" if table == "person" else f"{table}_id"
        source_ids |= {str(r[0]) for r in _source_rows(cdm, f"SELECT {id_column} FROM {cdm.cdm_schema}.{table}")}

    tables = {name.removesuffix(".csv"): _csv(data) for name, data in members.items() if name.endswith(".csv")}
    tables.pop("data_dictionary")
    assert set(tables) == set(manifest["rows"])
    for name, rows in tables.items():
        allowed = set(catalogue.TABLES[name].columns) | {catalogue.AGE_GROUP}
        header = set(rows[0]) if rows else set()
        assert header <= allowed, (name, header - allowed)
        assert not any(c.endswith("_source_value") or c.endswith("_datetime") for c in header)
        assert len(rows) == manifest["rows"][name]
        for row in rows:
            for column, value in row.items():
                if column.endswith("_id") and not column.endswith("_concept_id"):
                    # Pseudonyms and surrogates: never a number of the source.
                    assert value == "" or not value.isdigit(), (name, column, value)
                    assert value not in source_ids

    persons = tables["person"]
    assert len(persons) == manifest["persons_released"] > 0
    groups = Counter((p["age_group"], p["gender_concept_id"]) for p in persons)
    assert min(groups.values()) >= k, groups
    for person in persons:
        if person["age_group"] == f"{max_age + 1}+":
            assert person["year_of_birth"] == ""

    # Dates: each released person's conditions are exactly some source person's conditions moved by one constant,
    # non-zero offset of at most shift_days; never at their original dates.
    by_event: dict[tuple[str, str], set[int]] = defaultdict(set)
    for person_id, concept, start in _source_rows(
        cdm, f"SELECT person_id, condition_concept_id, condition_start_date FROM {cdm.cdm_schema}.condition_occurrence"
    ):
        by_event[(str(concept), str(start)[:10])].add(int(person_id))
    released: dict[str, set[tuple[str, date]]] = defaultdict(set)
    for row in tables["condition_occurrence"]:
        released[row["person_id"]].add((row["condition_concept_id"], date.fromisoformat(row["condition_start_date"])))
    # Who a released person can be: the source persons of the same gender and race, and of the same year of birth
    # where it is released. Two source persons can share the same conditions a few days apart (GiBleed has such
    # pairs): the events of one, moved, can then land on the other's own dates, and the demographics tell them
    # apart.
    demographics: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    for person_id, *values in _source_rows(
        cdm, f"SELECT person_id, gender_concept_id, year_of_birth, race_concept_id FROM {cdm.cdm_schema}.person"
    ):
        gender, year, race = ("" if v is None else str(v) for v in values)
        demographics[(gender, year, race)].add(int(person_id))
        demographics[(gender, "", race)].add(int(person_id))  # a released person whose year of birth is withheld
    alike = {
        p["person_id"]: demographics[(p["gender_concept_id"], p["year_of_birth"], p["race_concept_id"])]
        for p in persons
    }

    def owners(person: str, events: set[tuple[str, date]], shift: int) -> set[int]:
        candidates = alike[person]
        for concept, day in events:
            candidates = candidates & by_event.get((concept, (day - timedelta(days=shift)).isoformat()), set())
            if not candidates:
                return set()
        return candidates

    assert released
    for person, events in released.items():
        matches = [d for d in range(-shift_days, shift_days + 1) if owners(person, events, d)]
        assert matches and 0 not in [d for d in matches if len(events) >= 3], (events, matches)
        assert any(d != 0 for d in matches)


def test_partner_gets_a_de_identified_dataset_approved_at_two_sites_until_it_expires(
    start_worker: Any,
    cdm_gibleed_pg: Any,
    cdm_gibleed_duckdb_private: Any,
    oracle_dir: Path,
    dataset_root: Path,
    settings: Any,
) -> None:
    key = Fernet.generate_key().decode()
    settings.SOYANG_DATASET_KEY = key
    world: World = build_world([cdm_gibleed_pg, cdm_gibleed_duckdb_private], oracle_dir)
    pg, duck = world.sites
    DatasetPolicy.objects.create(source=pg, max_downloads=2)
    queues = f"site.{pg.key},site.{duck.key},portal"
    start_worker(queues, concurrency=2, env={"SOYANG_DATASET_ROOT": str(dataset_root), "SOYANG_DATASET_KEY": key})

    partner = _client(world.partner)
    response = partner.post(
        reverse("datasets:request_new", kwargs={"pk": world.definition.pk}), request_form_data(world)
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    request = DatasetRequest.objects.get(requester=world.partner)
    wait_for(lambda: _state(request, RequestState.UNDER_REVIEW), timeout=120, what="both projections")
    reviews = {r.source_id: r for r in request.reviews.all()}
    assert all(r.projection_state == JobState.SUCCEEDED and r.cohort_persons for r in reviews.values())
    # The same GiBleed at both sites: the same cohort, the same projected rows.
    assert reviews[pg.pk].projected_rows == reviews[duck.pk].projected_rows

    for steward, site in ((world.steward_a, pg), (world.steward_b, duck)):
        client = _client(steward)
        page = client.get(reverse("datasets:review", kwargs={"pk": reviews[site.pk].pk}))
        assert str(reviews[site.pk].cohort_persons) in page.content.decode()
        columns = [f"{t}.{c}" for t, cols in request.selection.items() for c in cols]
        decided = client.post(
            reverse("datasets:review", kwargs={"pk": reviews[site.pk].pk}),
            {"decision": "approve", "columns": columns, "days_before": 365, "days_after": 365},
        )
        assert decided.status_code == 302, decided.content.decode()[:2000]
    wait_for(lambda: _state(request, RequestState.READY, RequestState.FAILED), timeout=180, what="both extracts")
    assert request.state == RequestState.READY, request.reason
    extracts = {e.source_id: e for e in request.extracts.all()}
    for extract in extracts.values():
        stored = (dataset_root / extract.file_path).read_bytes()
        assert extract.encrypted and not stored.startswith(b"PK")  # encrypted at rest
    assert not [p for p in dataset_root.iterdir() if p.name.startswith(".work")]

    # Downloads: the requester only, at most max_downloads, every one audited.
    pg_extract, duck_extract = extracts[pg.pk], extracts[duck.pk]
    url = reverse("datasets:extract_download", kwargs={"pk": pg_extract.pk})
    assert partner.get(url).status_code == 405
    assert _client(world.alice).post(url).status_code == 404
    assert _client(world.steward_a).post(url).status_code == 403
    first = partner.post(url)
    assert first.status_code == 200 and first["Content-Type"] == "application/zip"
    assert _state(request, RequestState.DOWNLOADED)
    assert partner.post(url).status_code == 200
    over = partner.post(url)
    assert over.status_code == 410 and "most allowed" in over.content.decode()
    assert Extract.objects.get(pk=pg_extract.pk).download_count == 2
    assert AuditEvent.objects.filter(action="export", object_id=str(request.pk), outcome="success").count() == 2
    assert AuditEvent.objects.filter(action="export", object_id=str(request.pk), outcome="refused").count() == 1

    policy = DatasetPolicy(source=pg)
    members = zip_members(first.content)
    assert_deidentified(
        members, cdm_gibleed_pg, k=policy.k_anonymity, shift_days=policy.date_shift_days, max_age=policy.max_age
    )
    duck_members = zip_members(
        partner.post(reverse("datasets:extract_download", kwargs={"pk": duck_extract.pk})).content
    )
    assert_deidentified(
        duck_members,
        cdm_gibleed_duckdb_private,
        k=policy.k_anonymity,
        shift_days=policy.date_shift_days,
        max_age=policy.max_age,
    )
    # Two sites, two independent pseudonymisations of the same patients: nothing links them.
    pg_people = {r["person_id"] for r in _csv(members["person.csv"])}
    duck_people = {r["person_id"] for r in _csv(duck_members["person.csv"])}
    assert len(pg_people) == len(duck_people) and not pg_people & duck_people

    # A file changed on disk is never handed out.
    tampered = dataset_root / duck_extract.file_path
    tampered.write_bytes(tampered.read_bytes()[:-10] + b"0123456789")
    refused = partner.post(reverse("datasets:extract_download", kwargs={"pk": duck_extract.pk}))
    assert refused.status_code == 410 and "integrity" in refused.content.decode()

    # Expiry by the beat task, run by the worker: files deleted, downloads refused.
    DatasetRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    current_app.send_task("worker.tasks.datasets_expire", queue="portal")
    wait_for(lambda: _state(request, RequestState.EXPIRED), timeout=60, what="expiry")
    assert files_under(dataset_root) == []
    gone = partner.post(reverse("datasets:extract_download", kwargs={"pk": duck_extract.pk}))
    assert gone.status_code == 410
    assert [t.to_state for t in request.transitions.all()] == [
        "draft",
        "submitted",
        "under_review",
        "approved",
        "extracting",
        "ready",
        "downloaded",
        "expired",
    ]
    assert settings.CELERY_BEAT_SCHEDULE["datasets-expire"]["task"] == "worker.tasks.datasets_expire"
