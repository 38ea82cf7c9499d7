"""The API's authorization matrix: every /api/ route × every kind of person × own/other project's object.

Same people and projects as the HTML matrix (tests/test_authorization_matrix.py), each calling with a personal
token. The rules, as in the views: anonymous → 401 (and a pending account's token too: it authenticates
nobody); objects of another project → 404, exactly like missing ones, never with their name in the body; 403
only where the person sees the object but the action is not theirs; nothing answers 500; every error has the
one JSON shape. ``test_every_api_route_is_classified`` fails on any API route without rows here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.urls import get_resolver, reverse
from rest_framework.test import APIClient

from tests.matrix import (
    Row,
    assert_every_object_route_has_an_own_and_an_other_row,
    body_of,
    cell_problems,
    row,
    row_failures,
    unclassified,
    url_patterns,
)
from tests.world import World

pytestmark = pytest.mark.django_db

# Rows are those of the HTML matrix (Row.obj may also be "own-token": the caller's own token).


REASON = {"reason": "Not this study."}
APPROVE_ACCOUNT = {"organisation": "Soyang University Hospital", "role": "researcher"}
U = 401  # anonymous, and the pending account's token

#   url name                             obj           side meth     anon pend member partner outsider steward admin
MATRIX: list[Row] = [
    # --- the schema and its viewers: public, they describe the API and hold no data ---
    row("api:schema",                     None,         "-", "GET",    200, 200, 200,  200,  200,  200,  200),
    row("api:docs",                       None,         "-", "GET",    200, 200, 200,  200,  200,  200,  200),
    row("api:redoc",                      None,         "-", "GET",    200, 200, 200,  200,  200,  200,  200),
    row("api:not_found",                  None,         "-", "GET",    404, 404, 404,  404,  404,  404,  404),
    # --- tokens: one's own only; tokens are made in the browser session, never with a token ---
    row("api:token-list",                 None,         "-", "GET",    U,   U,   200,  200,  200,  200,  200),
    row("api:token-list",                 None,         "-", "POST",   U,   U,   403,  403,  403,  403,  403,
        body={"name": "x", "days": 5}),
    row("api:token-detail",               "own-token",  "P", "GET",    U,   U,   200,  200,  200,  200,  200),
    row("api:token-detail",               "own-token",  "P", "DELETE", U,   U,   204,  204,  204,  204,  204),
    row("api:token-detail",               "token",      "Q", "GET",    U,   U,   404,  404,  404,  404,  404),
    row("api:token-detail",               "token",      "Q", "DELETE", U,   U,   404,  404,  404,  404,  404),
    # --- sources: those of one's running projects (admins: all) ---
    row("api:source-list",                None,         "-", "GET",    U,   U,   200,  200,  200,  200,  200),
    row("api:source-detail",              "source",     "P", "GET",    U,   U,   200,  200,  404,  404,  200),
    row("api:source-detail",              "source",     "Q", "GET",    U,   U,   404,  404,  404,  404,  200),
    # --- projects and memberships ---
    row("api:project-list",               None,         "-", "GET",    U,   U,   200,  200,  200,  200,  200),
    row("api:project-joinable",           None,         "-", "GET",    U,   U,   200,  200,  200,  200,  200),
    row("api:project-detail",             "project",    "P", "GET",    U,   U,   200,  200,  404,  200,  200),
    row("api:project-detail",             "project",    "Q", "GET",    U,   U,   404,  404,  404,  404,  200),
    row("api:membership-list",            "project",    "P", "GET",    U,   U,   200,  200,  404,  200,  200),
    row("api:membership-list",            "project",    "Q", "GET",    U,   U,   404,  404,  404,  404,  200),
    # Asking to join: titles of running projects are open to approved people (as on the projects page).
    row("api:membership-list",            "project",    "P", "POST",   U,   U,   400,  400,  201,  201,  201),
    row("api:membership-list",            "project",    "Q", "POST",   U,   U,   201,  201,  201,  201,  201),
    # Deciding: a request is visible with its project; visible but not yours to decide → 403.
    row("api:membership-approve",         "membership", "P", "POST",   U,   U,   403,  403,  404,  200,  403),
    row("api:membership-approve",         "membership", "Q", "POST",   U,   U,   404,  404,  404,  404,  403),
    row("api:membership-reject",          "membership", "P", "POST",   U,   U,   403,  403,  404,  200,  403,
        body=REASON),
    row("api:membership-reject",          "membership", "Q", "POST",   U,   U,   404,  404,  404,  404,  403,
        body=REASON),
    # Revoking needs an approved membership: this one is still a request, so nobody may revoke it.
    row("api:membership-revoke",          "membership", "P", "POST",   U,   U,   403,  403,  404,  403,  403,
        body=REASON),
    row("api:membership-revoke",          "membership", "Q", "POST",   U,   U,   404,  404,  404,  404,  403,
        body=REASON),
    # --- the pending-account queue (stewards: their organisation; admins: all) ---
    row("api:pending-account-list",       None,         "-", "GET",    U,   U,   404,  404,  404,  200,  200),
    row("api:pending-account-detail",     "account",    "P", "GET",    U,   U,   404,  404,  404,  200,  200),
    row("api:pending-account-detail",     "account",    "Q", "GET",    U,   U,   404,  404,  404,  404,  404),
    row("api:pending-account-approve",    "account",    "P", "POST",   U,   U,   404,  404,  404,  200,  200,
        body=APPROVE_ACCOUNT),
    row("api:pending-account-approve",    "account",    "Q", "POST",   U,   U,   404,  404,  404,  404,  404,
        body=APPROVE_ACCOUNT),
    row("api:pending-account-reject",     "account",    "P", "POST",   U,   U,   404,  404,  404,  200,  200,
        body=REASON),
    row("api:pending-account-reject",     "account",    "Q", "POST",   U,   U,   404,  404,  404,  404,  404,
        body=REASON),
    # --- cohort definitions ---
    row("api:cohort-definition-list",     None,         "-", "GET",    U,   U,   200,  200,  200,  200,  200),
    # Empty body: past the role check the input is refused (400); partners do not write definitions (403).
    row("api:cohort-definition-list",     None,         "-", "POST",   U,   U,   400,  403,  400,  400,  400),
    row("api:cohort-definition-import-atlas", None,     "-", "POST",   U,   U,   400,  403,  400,  400,  400),
    row("api:cohort-definition-detail",   "definition", "P", "GET",    U,   U,   200,  200,  404,  404,  200),
    row("api:cohort-definition-detail",   "definition", "Q", "GET",    U,   U,   404,  404,  404,  404,  200),
    row("api:cohort-definition-export",   "definition", "P", "GET",    U,   U,   200,  200,  404,  404,  200),
    row("api:cohort-definition-export",   "definition", "Q", "GET",    U,   U,   404,  404,  404,  404,  200),
    row("api:cohort-definition-versions", "definition", "P", "GET",    U,   U,   200,  200,  404,  404,  200),
    row("api:cohort-definition-versions", "definition", "Q", "GET",    U,   U,   404,  404,  404,  404,  200),
    # Saving a version is the owner's (admins may too): members see the definition but may not change it.
    row("api:cohort-definition-versions", "definition", "P", "POST",   U,   U,   403,  403,  404,  404,  400),
    row("api:cohort-definition-versions", "definition", "Q", "POST",   U,   U,   404,  404,  404,  404,  400),
    # Sharing needs the share permission (the owner's); without it the definition is as good as missing.
    row("api:cohort-definition-share",    "definition", "P", "POST",   U,   U,   404,  404,  404,  404,  400),
    row("api:cohort-definition-share",    "definition", "Q", "POST",   U,   U,   404,  404,  404,  404,  400),
    # --- runs ---
    row("api:run-list",                   None,         "-", "GET",    U,   U,   200,  200,  200,  200,  200),
    row("api:run-list",                   None,         "-", "POST",   U,   U,   400,  400,  400,  400,  400),
    # A set of counts: an empty body is refused (400) for every approved person.
    row("api:run-create-set",             None,         "-", "POST",   U,   U,   400,  400,  400,  400,  400),
    row("api:run-create-set",             None,         "-", "GET",    U,   U,   405,  405,  405,  405,  405),
    row("api:run-detail",                 "run",        "P", "GET",    U,   U,   200,  200,  404,  404,  200),
    row("api:run-detail",                 "run",        "Q", "GET",    U,   U,   404,  404,  404,  404,  200),
    # The member asked for P's count, which has finished (409); others who see it may not cancel it (403).
    row("api:run-cancel",                 "run",        "P", "POST",   U,   U,   409,  403,  404,  404,  403),
    row("api:run-cancel",                 "run",        "Q", "POST",   U,   U,   404,  404,  404,  404,  403),
    # A comparison: an empty body is refused (400); reading or cancelling one is its requester's alone (bob's in
    # P, finished: 409), anybody else's answers 404 as a missing one, admins' included.
    row("api:run-create-comparison",      None,         "-", "POST",   U,   U,   400,  400,  400,  400,  400),
    row("api:run-create-comparison",      None,         "-", "GET",    U,   U,   405,  405,  405,  405,  405),
    row("api:comparison-detail",          "comparison", "P", "GET",    U,   U,   200,  404,  404,  404,  404),
    row("api:comparison-detail",          "comparison", "Q", "GET",    U,   U,   404,  404,  404,  404,  404),
    row("api:comparison-cancel",          "comparison", "P", "POST",   U,   U,   409,  404,  404,  404,  404),
    row("api:comparison-cancel",          "comparison", "Q", "POST",   U,   U,   404,  404,  404,  404,  404),
    # --- the audit log (stewards: their site; admins: all; for others it does not exist) ---
    row("api:audit-event-list",           None,         "-", "GET",    U,   U,   404,  404,  404,  200,  200),
    row("api:audit-event-detail",         "event",      "P", "GET",    U,   U,   404,  404,  404,  200,  200),
    row("api:audit-event-detail",         "event",      "Q", "GET",    U,   U,   404,  404,  404,  404,  200),
    # --- exact-count grants: read-only (stewards: their sites; admins: all; for others it does not exist) ---
    row("api:exact-count-grant-list",     None,         "-", "GET",    U,   U,   404,  404,  404,  200,  200),
    row("api:exact-count-grant-detail",   "grant",      "P", "GET",    U,   U,   404,  404,  404,  200,  200),
    row("api:exact-count-grant-detail",   "grant",      "Q", "GET",    U,   U,   404,  404,  404,  404,  200),
    # --- the vocabulary: public to approved accounts (counts inside are per person); a search needs q ---
    row("api:concept-list",               None,         "-", "GET",    U,   U,   400,  400,  400,  400,  400),
    row("api:concept-detail",             None,         "-", "GET",    U,   U,   200,  200,  200,  200,  200),
    # --- concept sets: the project's members view, owners/analysts change, the creator deletes ---
    row("api:concept-set-list",           None,         "-", "GET",    U,   U,   200,  200,  200,  200,  200),
    # Empty body: refused as input (400) for those who save sets somewhere; 403 for those who save nowhere.
    row("api:concept-set-list",           None,         "-", "POST",   U,   U,   400,  403,  403,  403,  400),
    row("api:concept-set-resolve",        None,         "-", "POST",   U,   U,   400,  400,  400,  400,  400),
    row("api:concept-set-detail",         "concept_set", "P", "GET",   U,   U,   200,  200,  404,  404,  200),
    row("api:concept-set-detail",         "concept_set", "Q", "GET",   U,   U,   404,  404,  404,  404,  200),
    row("api:concept-set-detail",         "concept_set", "P", "PATCH", U,   U,   200,  403,  404,  404,  200),
    row("api:concept-set-detail",         "concept_set", "Q", "PATCH", U,   U,   404,  404,  404,  404,  200),
    row("api:concept-set-detail",         "concept_set", "P", "DELETE", U,  U,   204,  403,  404,  404,  204),
    row("api:concept-set-detail",         "concept_set", "Q", "DELETE", U,  U,   404,  404,  404,  404,  204),
    row("api:concept-set-resolved",       "concept_set", "P", "GET",   U,   U,   200,  200,  404,  404,  200),
    row("api:concept-set-resolved",       "concept_set", "Q", "GET",   U,   U,   404,  404,  404,  404,  200),
    # --- dataset requests: P's is the partner's, under review at the steward's site; Q's is dave's ---
    row("api:dataset-request-list",       None,         "-", "GET",    U,   U,   200,  200,  200,  200,  200),
    row("api:dataset-request-list",       None,         "-", "POST",   U,   U,   400,  400,  400,  400,  400),
    row("api:dataset-request-detail",     "dataset_request", "P", "GET", U, U,   404,  200,  404,  200,  200),
    row("api:dataset-request-detail",     "dataset_request", "Q", "GET", U, U,   404,  404,  404,  404,  200),
    row("api:dataset-request-timeline",   "dataset_request", "P", "GET", U, U,   404,  200,  404,  200,  200),
    row("api:dataset-request-timeline",   "dataset_request", "Q", "GET", U, U,   404,  404,  404,  404,  200),
    row("api:dataset-request-document",   "dataset_request", "P", "GET", U, U,   404,  200,  404,  200,  200),
    row("api:dataset-request-document",   "dataset_request", "Q", "GET", U, U,   404,  404,  404,  404,  200),
    # The requester's, already submitted (409); others who see it may not submit it (403).
    row("api:dataset-request-submit",     "dataset_request", "P", "POST", U, U,  404,  409,  404,  403,  403),
    row("api:dataset-request-submit",     "dataset_request", "Q", "POST", U, U,  404,  404,  404,  404,  403),
    # The requester's, still under review (200); others who see it may not withdraw it (403).
    row("api:dataset-request-withdraw",   "dataset_request", "P", "POST", U, U,  404,  200,  404,  403,  403),
    row("api:dataset-request-withdraw",   "dataset_request", "Q", "POST", U, U,  404,  404,  404,  404,  403),
    # Deciding is the site's steward's: never the requester's own, never an admin's.
    row("api:dataset-request-review-approve", "dataset_request", "P", "POST", U, U, 404, 403, 404, 200, 403),
    row("api:dataset-request-review-approve", "dataset_request", "Q", "POST", U, U, 404, 404, 404, 404, 403),
    row("api:dataset-request-review-reject", "dataset_request", "P", "POST", U, U, 404, 403, 404, 200, 403,
        body=REASON),
    row("api:dataset-request-review-reject", "dataset_request", "Q", "POST", U, U, 404, 404, 404, 404, 403,
        body=REASON),
    row("api:dataset-request-revoke",     "dataset_request", "P", "POST", U, U,  404,  403,  404,  200,  200,
        body=REASON),
    row("api:dataset-request-revoke",     "dataset_request", "Q", "POST", U, U,  404,  404,  404,  404,  200,
        body=REASON),
    # The requester's, but nothing is extracted yet (410); nobody else downloads (403).
    row("api:dataset-request-download",   "dataset_request", "P", "POST", U, U,  404,  410,  404,  403,  403),
    row("api:dataset-request-download",   "dataset_request", "Q", "POST", U, U,  404,  404,  404,  404,  403),
]  # fmt: skip


def _api_routes() -> set[str]:
    """Qualified names of every URL pattern under the api namespace."""
    return {
        f"{namespace}{pattern.name}"
        for namespace, _route, pattern in url_patterns(get_resolver().url_patterns)
        if namespace.startswith("api:") and pattern.name
    }


def test_every_api_route_is_classified() -> None:
    routes = _api_routes()
    missing, stale = unclassified(MATRIX, routes)
    assert not missing, f"API routes with no row in the API matrix (decide who may use them): {missing}"
    assert not stale, f"API matrix rows for routes that no longer exist: {stale}"


def test_every_object_route_has_an_own_and_an_other_row() -> None:
    assert_every_object_route_has_an_own_and_an_other_row(MATRIX)


def _url(r: Row, world: World, role: str) -> str:
    if r.name == "api:concept-detail":
        return reverse(r.name, kwargs={"concept_id": 201826})  # the world's one concept
    if r.obj is None:
        return reverse(r.name, kwargs={"path": "no-such-endpoint/"} if r.name == "api:not_found" else None)
    if r.obj == "own-token":
        token = world.P["tokens"][role] if role in world.P["tokens"] else world.Q["token"]
        return reverse(r.name, kwargs={"pk": token.pk})
    objects = world.P if r.side == "P" else world.Q
    obj = objects[r.obj]
    if r.name.startswith("api:membership-") and r.name != "api:membership-list":
        return reverse(r.name, kwargs={"project_pk": obj.project_id, "pk": obj.pk})
    if r.name == "api:membership-list":
        return reverse(r.name, kwargs={"project_pk": obj.pk})
    if r.name in (
        "api:dataset-request-review-approve",
        "api:dataset-request-review-reject",
        "api:dataset-request-download",
    ):
        return reverse(r.name, kwargs={"pk": obj.pk, "source": objects["source"].key})
    return reverse(r.name, kwargs={"pk": obj.pk})


def _problems(r: Row, role: str, response: Any) -> list[str]:
    # Downloads stream their file: read it, so the leak check sees what was sent.
    content = body_of(response)
    more = []
    if response.status_code >= 400:
        body = response.json() if response.get("Content-Type", "").startswith("application/json") else None
        if not (isinstance(body, dict) and {"code", "message"} <= set(body.get("error", {}))):
            more.append(f"error without the JSON error shape: {content[:200]!r}")
    if response.status_code == 401 and "WWW-Authenticate" not in response and r.name != "api:not_found":
        more.append("401 without a WWW-Authenticate header")
    return cell_problems(r, role, response, shown=f": {content[:300]!r}", more=more, body=content)


def _group(name: str) -> str:
    # Rows are run in groups of one resource, each group in one world (the world takes a second to build; the
    # savepoint per cell keeps every cell independent all the same).
    return name.split(":")[1].split("-")[0] if "-" in name else "schema"


GROUPS = sorted({_group(r.name) for r in MATRIX})


@pytest.mark.parametrize("group", GROUPS)
def test_api_authorization_matrix(group: str, api_world: World, api_client: Callable[[str], APIClient]) -> None:
    failures: list[str] = []
    for r in (r for r in MATRIX if _group(r.name) == group):
        failures += row_failures(
            r,
            client=api_client,
            url=partial(_url, r, api_world),
            problems=partial(_problems, r),
            format="json",
        )
    assert not failures, "\n".join(failures)
