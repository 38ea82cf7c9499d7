"""The bad-input catalogue: every write endpoint fed malformed JSON, wrong types, huge and negative numbers,
negative windows, bad concept ids, hostile unicode, empty and oversized bodies. Always a 4xx in the error shape,
never a 500, and nothing written: the rows of every table an endpoint could touch are counted before and after.

Each endpoint is called by somebody who may use it (so a refusal is about the input, not the person).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from guardian.models import GroupObjectPermission, UserObjectPermission
from rest_framework.test import APIClient

from accounts.api.tokens import token_create
from accounts.models import ApiToken, ProjectMembership, User
from audit.models import AuditEvent
from cohorts.concept_sets.models import ConceptSet
from cohorts.definitions.models import CohortDefinition, CohortDefinitionVersion
from cohorts.runs.models import CohortRun, RunRequest
from cohorts.tests.expressions import EXPRESSION
from datasets.models import DatasetRequest, SiteReview
from tests.world import World

pytestmark = pytest.mark.django_db
API = "/api/v1"
HUGE = [10**30, 2**63, -(2**63) - 1, -1, 0, 1.5, 1e308]
WRONG_TYPES = [None, True, [], {}, "", "12abc", 3.25, [1, 2]]
# NUL (no database text holds it), a direction override (spoofs how a name reads), far too long.
HOSTILE_TEXT = ["a\u0000b", "\u202eevil", "x" * 100_000]
CONCEPT_SET = {"items": [{"concept": {"CONCEPT_ID": 201826}, "includeDescendants": True}]}


def _snapshot() -> tuple[Any, ...]:
    return (
        CohortDefinition.objects.count(),
        CohortDefinitionVersion.objects.count(),
        RunRequest.objects.count(),
        CohortRun.objects.count(),
        tuple(ProjectMembership.objects.order_by("pk").values_list("pk", "status", "owner_approved_by_id")),
        tuple(User.objects.order_by("pk").values_list("pk", "status", "role", "organisation_id")),
        ApiToken.objects.count(),
        UserObjectPermission.objects.count(),
        GroupObjectPermission.objects.count(),
        AuditEvent.objects.count(),
        tuple(ConceptSet.objects.order_by("pk").values_list("pk", "name", "expression")),
        tuple(DatasetRequest.objects.order_by("pk").values_list("pk", "state")),
        tuple(SiteReview.objects.order_by("pk").values_list("pk", "decision")),
    )


def _with(base: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(base)
    body[key] = value
    return body


def _expression(path: list[Any], value: Any) -> dict[str, Any]:
    expression = copy.deepcopy(EXPRESSION)
    target: Any = expression
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return expression


def bad_expressions() -> Iterator[tuple[str, Any]]:
    """Expressions that must be refused: wrong types, negative windows, bad concept ids and code set ids, depth."""
    yield "expression as list", []
    yield "expression as string", "PrimaryCriteria"
    yield "expression empty object", {}
    yield "no primary criteria", {k: v for k, v in EXPRESSION.items() if k != "PrimaryCriteria"}
    yield "negative prior days", _expression(["PrimaryCriteria", "ObservationWindow", "PriorDays"], -30)
    yield "huge post days", _expression(["PrimaryCriteria", "ObservationWindow", "PostDays"], 10**30)
    yield "window days as text", _expression(["PrimaryCriteria", "ObservationWindow", "PriorDays"], "365")
    concept = ["ConceptSets", 0, "expression", "items", 0, "concept", "CONCEPT_ID"]
    yield "negative concept id", _expression(concept, -5)
    yield "concept id over 64 bits", _expression(concept, 2**64)
    yield "concept id as text", _expression(concept, "201826; DROP TABLE person")
    yield "concept id fractional", _expression(concept, 2.5)
    yield (
        "unknown code set id",
        _expression(["PrimaryCriteria", "CriteriaList", 0, "ConditionOccurrence", "CodesetId"], 99),
    )
    yield "unknown criterion", _expression(["PrimaryCriteria", "CriteriaList"], [{"NoSuchDomain": {}}])
    yield "unknown limit type", _expression(["QualifiedLimit", "Type"], "Most")
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(400):
        node["Group"] = {}
        node = node["Group"]
    yield "absurd depth", _expression(["InclusionRules"], [{"name": "deep", "expression": deep}])


@dataclass(frozen=True)
class Endpoint:
    name: str
    role: str  # who calls: somebody who may use the endpoint
    url: Callable[[World], str]
    good: Callable[[World], dict[str, Any]]  # a valid body, mutated into bad ones
    numbers: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    expressions: bool = False
    optional: tuple[str, ...] = ()  # fields with a default: leaving them out (or null, for project) is fine


ENDPOINTS = [
    Endpoint(
        "tokens",
        "session:member",
        lambda w: f"{API}/tokens/",
        lambda w: {"name": "script", "days": 30},
        numbers=("days",),
        texts=("name",),
        optional=("days",),
    ),
    Endpoint(
        "definition create",
        "member",
        lambda w: f"{API}/cohort-definitions/",
        lambda w: {"name": "T2DM", "project": w.P["project"].pk, "expression": EXPRESSION},
        numbers=("project",),
        texts=("name", "description"),
        expressions=True,
        optional=("project", "description"),
    ),
    Endpoint(
        "definition import",
        "member",
        lambda w: f"{API}/cohort-definitions/import/",
        lambda w: {"name": "T2DM", "project": w.P["project"].pk, "expression": json.dumps(EXPRESSION)},
        numbers=("project",),
        texts=("name",),
        expressions=True,
        optional=("project",),
    ),
    Endpoint(
        "definition version",
        "owner",
        lambda w: f"{API}/cohort-definitions/{w.P['definition'].pk}/versions/",
        lambda w: {"expression": EXPRESSION, "note": "v2"},
        texts=("note",),
        expressions=True,
        optional=("note",),
    ),
    Endpoint(
        "definition share",
        "owner",
        lambda w: f"{API}/cohort-definitions/{w.P['definition'].pk}/share/",
        lambda w: {"username": "bob"},
        numbers=("project",),
        texts=("username",),
    ),
    Endpoint(
        "run start",
        "member",
        lambda w: f"{API}/runs/",
        lambda w: {"definition": w.P["definition"].pk, "sources": ["syuh"], "kind": "count"},
        numbers=("definition",),
        texts=("kind",),
        optional=("kind",),
    ),
    Endpoint(
        "membership reject",
        "steward",
        lambda w: f"{API}/projects/{w.P['project'].pk}/memberships/{w.P['membership'].pk}/reject/",
        lambda w: {"reason": "Not this study."},
        texts=("reason",),
    ),
    Endpoint(
        "account approve",
        "steward",
        lambda w: f"{API}/accounts/pending/{w.P['account'].pk}/approve/",
        lambda w: {"organisation": "Soyang University Hospital", "role": "researcher"},
        texts=("organisation", "role"),
    ),
    Endpoint(
        "account reject",
        "steward",
        lambda w: f"{API}/accounts/pending/{w.P['account'].pk}/reject/",
        lambda w: {"reason": "Unknown person."},
        texts=("reason",),
    ),
    Endpoint(
        "concept set create",
        "member",
        lambda w: f"{API}/concept-sets/",
        lambda w: {"project": w.P["project"].pk, "name": "Diabetes", "expression": CONCEPT_SET},
        numbers=("project",),
        texts=("name",),
    ),
    Endpoint(
        "concept set resolve",
        "member",
        lambda w: f"{API}/concept-sets/resolve/",
        lambda w: {"expression": CONCEPT_SET},
    ),
    Endpoint(
        "dataset request create",
        "partner",
        lambda w: f"{API}/dataset-requests/",
        lambda w: {
            "definition": w.P["definition"].pk,
            "sites": ["syuh"],
            "selection": {"person": ["year_of_birth"]},
            "purpose": "Bleeding risk",
            "legal_basis": "irb",
        },
        numbers=("definition",),
        texts=("purpose",),
    ),
    Endpoint(
        "dataset review reject",
        "steward",
        lambda w: f"{API}/dataset-requests/{w.P['dataset_request'].pk}/reviews/syuh/reject/",
        lambda w: {"reason": "Not this study."},
        texts=("reason",),
    ),
    Endpoint(
        "dataset request revoke",
        "steward",
        lambda w: f"{API}/dataset-requests/{w.P['dataset_request'].pk}/revoke/",
        lambda w: {"reason": "The agreement ended."},
        texts=("reason",),
    ),
]


def _cases(endpoint: Endpoint, world: World) -> Iterator[tuple[str, Any]]:
    """(label, body) pairs; a body that is a str is sent raw as application/json."""
    good = endpoint.good(world)
    yield "malformed json", '{"name": "x",'
    yield "trailing garbage", json.dumps(good) + "}"
    yield "NaN", json.dumps(good)[:-1] + ', "x": NaN}'
    yield "empty body", ""
    yield "empty object", "{}"
    yield "json array", "[]"
    yield "json null", "null"
    yield "json number", "12"
    yield "lone surrogate", json.dumps(good)[:-1] + ', "z": "\\ud800"}'
    yield "deeply nested", "[" * 100_000 + "]" * 100_000
    yield "latin-1 bytes", b'{"name": "caf\xe9"}'
    for key in good:
        for value in WRONG_TYPES:
            if isinstance(good[key], str) and value == "12abc":
                continue  # a string where a string is expected is a good input
            if key in ("description", "note") and value == "":
                continue  # optional texts may be empty
            if key == "project" and value is None:
                continue  # a definition without a project is allowed
            yield f"{key}={value!r}", _with(good, key, value)
        if key not in endpoint.optional:
            yield f"missing {key}", {k: v for k, v in good.items() if k != key}
    for key in endpoint.numbers:
        for value in HUGE:
            yield f"{key}={value!r}", _with(good, key, value)
    for key in endpoint.texts:
        for value in HOSTILE_TEXT:
            if key in ("reason", "description", "purpose") and value == "\u202eevil":
                continue  # free, multi-line text: any character but NUL is fine there
            yield f"{key}={value[:20]!r}", _with(good, key, value)
    if endpoint.expressions:
        for label, expression in bad_expressions():
            yield (
                f"expression: {label}",
                _with(
                    good,
                    "expression",
                    expression
                    if not isinstance(good["expression"], str) or isinstance(expression, str)
                    else json.dumps(expression),
                ),
            )


def _client(endpoint: Endpoint, world: World, api_client: Callable[[str], APIClient]) -> APIClient:
    if endpoint.role == "session:member":
        client = APIClient()
        client.force_login(world.users["member"])
        return client
    if endpoint.role == "owner":
        client = APIClient()
        secret = token_create(user=world.P["definition"].owner, name="owner's", days=1).secret
        client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
        return client
    return api_client(endpoint.role)


def _send(client: APIClient, url: str, body: Any) -> Any:
    if isinstance(body, bytes):
        return client.post(url, data=body, content_type="application/json")
    if isinstance(body, str):
        return client.post(url, data=body, content_type="application/json")
    return client.post(url, body, format="json")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_every_bad_input_is_a_4xx_in_the_error_shape_and_writes_nothing(
    endpoint: Endpoint, api_world: World, api_client: Callable[[str], APIClient]
) -> None:
    client = _client(endpoint, api_world, api_client)
    url = endpoint.url(api_world)
    before = _snapshot()
    failures = []
    count = 0
    for label, body in _cases(endpoint, api_world):
        count += 1
        with transaction.atomic():
            response = _send(client, url, body)
            transaction.set_rollback(True)
        if not 400 <= response.status_code < 500:
            failures.append(f"{label}: {response.status_code} {response.content[:200]!r}")
            continue
        error = response.json().get("error", {}) if response["Content-Type"].startswith("application/json") else {}
        if not (error.get("code") and error.get("message")):
            failures.append(f"{label}: no error shape: {response.content[:200]!r}")
    assert not failures, f"{len(failures)} of {count} bad inputs:\n" + "\n".join(failures)
    assert _snapshot() == before

    # An oversized body (here over a lowered limit) is refused with 413 before it is parsed.
    with override_settings(SOYANG_API_MAX_BODY_BYTES=10_000):
        padded = json.dumps({**endpoint.good(api_world), "padding": "x" * 20_000})
        response = client.post(url, data=padded, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert _snapshot() == before

    # And the good body works, so the refusals above were about the input, not the person.
    good = _send(client, url, endpoint.good(api_world))
    assert good.status_code in (200, 201), good.content


def test_ids_that_name_nothing_answer_404_in_the_error_shape(
    api_world: World, api_client: Callable[[str], APIClient]
) -> None:
    before = _snapshot()
    member, steward = api_client("member"), api_client("steward")
    project = api_world.P["project"].pk
    for pk in ("0", "99999999999999999999999", "-1", "%F0%9F%A7%AC", "1e3"):
        for client, url in (
            (member, f"{API}/runs/{pk}/cancel/"),
            (member, f"{API}/projects/{pk}/memberships/"),
            (steward, f"{API}/projects/{project}/memberships/{pk}/approve/"),
            (steward, f"{API}/accounts/pending/{pk}/approve/"),
            (member, f"{API}/cohort-definitions/{pk}/versions/"),
            (member, f"{API}/tokens/{pk}/"),
        ):
            response = client.delete(url) if "/tokens/" in url else client.post(url, {}, format="json")
            assert response.status_code == 404, (url, response.content)
            assert response.json()["error"]["code"] == "not_found"
    assert _snapshot() == before


# Approving takes only optional fields (an empty body approves as requested), so it has its own catalogue: each
# bad value with the words its refusal must contain.
APPROVE_BAD_INPUTS: list[tuple[str, Any, str]] = [
    ("selection as a list", {"selection": ["person"]}, "selection"),
    ("selection as text", {"selection": "person"}, "selection"),
    ("selection empty", {"selection": {}}, "at least one table"),
    ("selection of an unknown table", {"selection": {"note": ["note_text"]}}, "cannot be requested"),
    ("selection wider than requested", {"selection": {"person": ["year_of_birth"]}}, "were not requested"),
    ("window negative", {"days_before": -1}, "days_before"),
    ("window huge", {"days_after": 10**30}, "days_after"),
    ("window as text", {"days_before": "30"}, "whole number"),
    ("window as a fraction", {"days_after": 2.5}, "whole number"),
    ("window wider than requested", {"days_before": 366}, "between 0 and the requested"),
    ("reason as a number", {"reason": 12}, "Expected text"),
    ("reason too long", {"reason": "x" * 3000}, "reason"),
]


def test_every_bad_approval_is_a_400_with_the_reason_and_decides_nothing(
    api_world: World, api_client: Callable[[str], APIClient]
) -> None:
    steward = api_client("steward")
    review = api_world.P["review"]
    url = f"{API}/dataset-requests/{review.request_id}/reviews/syuh/approve/"
    failures = []
    for label, body, message in APPROVE_BAD_INPUTS:
        response = steward.post(url, body, format="json")
        error = response.json().get("error", {}) if response.status_code < 500 else {}
        text = f"{error.get('message', '')} {json.dumps(error.get('fields', {}))}"
        if response.status_code != 400 or message not in text:
            failures.append(f"{label}: {response.status_code} {text[:200]}")
    assert not failures, "\n".join(failures)
    assert SiteReview.objects.get(pk=review.pk).decision == "pending"
    assert DatasetRequest.objects.get(pk=review.request_id).state == "under_review"
    rejected = steward.post(
        f"{API}/dataset-requests/{review.request_id}/reviews/syuh/reject/", {"reason": " "}, format="json"
    )
    assert rejected.status_code == 400 and "reason" in rejected.json()["error"]["message"]
    narrowed = steward.post(url, {"selection": {"person": ["gender_concept_id"]}, "days_before": 30}, format="json")
    assert narrowed.status_code == 200, narrowed.content
