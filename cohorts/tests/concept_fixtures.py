"""GiBleed's vocabulary and concept counts at a site of project P, with its members: the world of the concept
pages' tests (cohorts/tests/test_concepts.py) and of the same answers through the API
(tests/api/test_concepts_api.py). A pytest plugin, registered in the root conftest.py.

People (accounts.tests.fixtures): alice owns project P (on GiBleed), bob is an analyst of P, the partner a
partner viewer of P.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accounts.choices import Role
from accounts.tests.factories import UserFactory, gibleed_pg_source, make_member, make_project
from warehouse.models import Concept
from warehouse.vocabulary.counts import concept_counts_refresh
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
    concept_counts_refresh(source=source, engine=cdm_gibleed_pg.engine)
    return source


@pytest.fixture
def project_p(site: Any, alice: Any, steward: Any) -> Any:
    return make_project(principal_investigator=alice, created_by=steward, sources=[site], title="Project P")


@pytest.fixture
def members(project_p: Any, alice: Any, bob: Any, steward: Any) -> dict[str, Any]:
    partner = UserFactory(username="pharma", role=Role.PARTNER)
    make_member(project=project_p, user=bob, owner=alice, steward=steward)
    make_member(project=project_p, user=partner, owner=alice, steward=steward)
    return {"alice": alice, "bob": bob, "partner": partner}
