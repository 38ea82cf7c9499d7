"""Every combination of the quasi-identifiers a GiBleed extract releases (age group, year of birth, sex, race,
ethnicity) is shared by at least k persons of the released person file.

The check is independent of the code under test: a plain ``Counter`` over the rows of the downloaded file, every
person column but the pseudonym taken as a quasi-identifier. Real worker process, GiBleed on a private DuckDB file.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from datasets.extraction import zip_members
from datasets.models import DatasetPolicy
from datasets.tests.conftest import ALL_PERSON_COLUMNS, build_world, extract_ready, signed_in_client

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_combination_of_released_person_columns_has_at_least_k_persons(
    start_worker: Any, cdm_gibleed_duckdb_private: Any, oracle_dir: Path, dataset_root: Path
) -> None:
    world = build_world([cdm_gibleed_duckdb_private], oracle_dir)
    extract = extract_ready(world, ALL_PERSON_COLUMNS, dataset_root, start_worker)
    k = DatasetPolicy(source=extract.source).k_anonymity

    response = signed_in_client(world.partner).post(reverse("datasets:extract_download", kwargs={"pk": extract.pk}))
    assert response.status_code == 200
    members = zip_members(response.content)
    persons = list(csv.DictReader(io.StringIO(members["person.csv"].decode("utf-8"))))
    assert len(persons) >= k

    header = list(persons[0])
    quasi = [column for column in header if column != "person_id"]
    assert set(quasi) == {"age_group", *ALL_PERSON_COLUMNS["person"]}
    groups = Counter(tuple(person[column] for column in quasi) for person in persons)
    assert min(groups.values()) >= k, sorted(groups.items(), key=lambda item: item[1])[:5]
    # And over every smaller combination too (a coarser view of the same rows can only merge groups).
    for column in quasi:
        assert min(Counter(person[column] for person in persons).values()) >= k, column

    manifest = json.loads(members["manifest.json"])
    assert manifest["generalization"]["quasi_identifiers"] == quasi
    assert manifest["generalization"]["k"] == k
    # Exact years of birth of a GiBleed cohort come in groups of year x sex far below k: the year is withheld.
    assert manifest["generalization"]["step"] != "exact"
    assert {person["year_of_birth"] for person in persons} == {""}
