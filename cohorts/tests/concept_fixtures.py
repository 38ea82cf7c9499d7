"""GiBleed's vocabulary and concept counts at a site of project P, with its members: the world of the concept
pages' tests (cohorts/tests/test_concepts.py) and of the same answers through the API
(tests/api/test_concepts_api.py). A pytest plugin, registered in the root conftest.py.

People (accounts.tests.fixtures): alice owns project P (on GiBleed), bob is an analyst of P, the partner a
partner viewer of P.

The site counts through the cohorts-side service, as its worker does (record keys made at the site, counts
stored with their cell keys). ``released`` computes what a role must see from the CDM and the site's secret, by
the cell-key arithmetic itself (``disclosure.cellkey``), not through the code under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accounts.choices import Role
from accounts.tests.factories import UserFactory, gibleed_pg_source, make_member, make_project
from cohorts.concept_sets.counts import concept_counts_refresh_at_site
from disclosure.cellkey import perturb, record_key
from disclosure.record_keys import record_key_secret, record_keys_rebuild
from disclosure.selectors import rule_for
from warehouse.models import Concept
from warehouse.vocabulary.load import vocabulary_copy_from_directory


@pytest.fixture(scope="module")
def gibleed_vocabulary(django_db_setup: Any, django_db_blocker: Any, shared_data_dir: Path) -> Iterator[None]:
    """GiBleed's vocabulary, loaded once for the module (committed), emptied again after it."""
    from django.db import connection, transaction

    with django_db_blocker.unblock(), transaction.atomic():
        vocabulary_copy_from_directory(directory=shared_data_dir / "omop" / "gibleed")
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE warehouse_concept, warehouse_conceptancestor, warehouse_conceptrelationship, "
            "warehouse_vocabulary, warehouse_domain"
        )


@pytest.fixture
def site(gibleed_vocabulary: None, cdm_gibleed_pg: Any, hospital: Any) -> Any:
    source = gibleed_pg_source(cdm_gibleed_pg, name="GiBleed hospital", organisation=hospital)
    assert Concept.objects.count() == 444
    # Other tests' sources share this warehouse (and its key table) under other keys: key it with this site's.
    record_keys_rebuild(cdm_gibleed_pg.engine, source=source)
    concept_counts_refresh_at_site(source_id=source.pk)
    return source


def condition_cells(cdm: Any, source: Any, concept_id: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The true (records, record cell key) and (persons, person cell key) of a condition concept at the site,
    from its CDM and the site's secret: every record carries its person's record key."""
    secret = record_key_secret(source.key)
    per_person = cdm.engine.fetchall(
        "SELECT person_id, COUNT(*) FROM gibleed.condition_occurrence WHERE condition_concept_id = %(id)s "
        "GROUP BY person_id",
        {"id": concept_id},
    )
    keys = {int(person): record_key(secret, int(person)) for person, _ in per_person}
    records = sum(int(n) for _, n in per_person)
    record_cell_key = sum(int(n) * keys[int(person)] for person, n in per_person) % 256
    return (records, record_cell_key), (len(keys), sum(keys.values()) % 256)


def released(cell: tuple[int, int], source: Any, role: str) -> int | str:
    """What ``role`` must see of a cell of the site: "<10" under the threshold, else the ptable's perturbed count,
    rounded half up to ten (never below ten) for partners."""
    count, key = cell
    if 0 < count < 10:
        return "<10"
    ptable = rule_for(source=source, role=role).ptable
    assert ptable is not None
    value = perturb(count, key, ptable)
    assert value is not None
    if role == Role.PARTNER:
        value = max(10, (value + 5) // 10 * 10)
    return value


@pytest.fixture
def project_p(site: Any, alice: Any, steward: Any) -> Any:
    return make_project(principal_investigator=alice, created_by=steward, sources=[site], title="Project P")


@pytest.fixture
def members(project_p: Any, alice: Any, bob: Any, steward: Any) -> dict[str, Any]:
    partner = UserFactory(username="pharma", role=Role.PARTNER)
    make_member(project=project_p, user=bob, owner=alice, steward=steward)
    make_member(project=project_p, user=partner, owner=alice, steward=steward)
    return {"alice": alice, "bob": bob, "partner": partner}
