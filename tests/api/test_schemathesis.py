"""Fuzzing the live schema: schemathesis generates requests for every operation of /api/schema/ and sends them
through the Django WSGI application, as a researcher and as a data steward (each with a personal token). Checks:
no 5xx, and every response conforms to the schema (status documented, body matching its declared shape).

Bounded for CI: a fixed number of examples per operation, derandomized so a failure reproduces. Half the
examples aim path ids at real objects of the world (the caller's project P) so that they reach past the 404s.
Each request runs in a savepoint that is rolled back, so every example sees the same world.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.world import World

pytestmark = pytest.mark.django_db
EXAMPLES_PER_OPERATION = 10
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture
def wsgi_app() -> Iterator[WSGIHandler]:
    # As Django's test client does: the test's connection (and its open transaction) must survive each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _real_ids(world: World, role: str) -> dict[str, int]:
    """Ids of objects in project P, by the path's collection."""
    return {
        "tokens": world.P["tokens"][role].pk,
        "sources": world.P["source"].pk,
        "projects": world.P["project"].pk,
        "memberships": world.P["membership"].pk,
        "pending": world.P["account"].pk,
        "cohort-definitions": world.P["definition"].pk,
        "runs": world.P["run"].pk,
        "comparisons": world.P["comparison"].pk,
        "audit-events": world.P["event"].pk,
        "concepts": 201826,
        "concept-sets": world.P["concept_set"].pk,
        "dataset-requests": world.P["dataset_request"].pk,
    }


#: The site of project P (its dataset request's reviews and extracts are addressed by it).
world_source_key = "syuh"


def _aim_at_real_objects(case: Any, ids: dict[str, int]) -> None:
    parts = case.operation.path.strip("/").split("/")
    for index, part in enumerate(parts):
        if part in ("{id}", "{project_pk}", "{concept_id}") and index > 0 and parts[index - 1] in ids:
            case.path_parameters[part.strip("{}")] = ids[parts[index - 1]]
        elif part == "{source}":
            case.path_parameters["source"] = world_source_key


@pytest.mark.parametrize("role", ["member", "steward"])
def test_every_operation_answers_within_its_schema_and_never_500(
    role: str, api_world: World, wsgi_app: WSGIHandler
) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app)
    headers = {"Authorization": f"Token {api_world.secrets[role]}"}  # type: ignore[attr-defined]
    ids = _real_ids(api_world, role)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25, [op.label for op in operations]
    tried: list[str] = []

    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), aim=st.booleans())
        def check(case: Any, aim: bool) -> None:
            if aim:
                _aim_at_real_objects(case, ids)
            with transaction.atomic():
                response = case.call(headers=headers)
                transaction.set_rollback(True)
            case.validate_response(response, checks=CHECKS)

        check()
        tried.append(operation.label)
    assert "POST /api/v1/cohort-definitions/import/" in tried
