"""Authorization matrix: every URL of the project × every kind of person × own/other project's object.

The test walks ``get_resolver().url_patterns`` and fails when a pattern is neither in ``MATRIX`` nor in
``SKIPPED`` — a new URL cannot be added without deciding who may use it (NetBox's generic tests: permission on
A → 200 for A, 404 for B, for every endpoint). Objects of another project answer 404 exactly like missing ones
(Zulip), never 403 and never with their name in the body; 403 only where a view refuses an action on an object
the person may see (deciding a request, cancelling somebody else's count); anonymous people go to the login
page; nothing answers 500.

People (``world``, tests/world.py): anonymous; ``pending`` (signed-up, not approved); ``member`` (bob,
researcher analyst of project P); ``partner`` (pharma, partner viewer of P); ``outsider`` (charlie, approved
researcher of no project); ``steward`` (data steward of the hospital whose source P uses; TOTP enrolled);
``admin`` (TOTP enrolled). Project Q runs on another hospital's source, owned by dave; nobody above but the admin
is in it.

Every request runs inside a savepoint that is rolled back, so each cell of the table sees the same world.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse

from tests.matrix import (
    L,
    Row,
    assert_every_object_route_has_an_own_and_an_other_row,
    cell_problems,
    row,
    row_failures,
    send,
    unclassified,
    url_patterns,
)
from tests.world import World, build_world

pytestmark = pytest.mark.django_db

# ---------------------------------------------------------------------------------------------------------------
# What is not in the matrix, and why.
# ---------------------------------------------------------------------------------------------------------------

SKIPPED: dict[str, str] = {
    "admin/": "Django admin: guarded by staff + allauth's secure_admin_login and the MFA middleware "
    "(accounts/tests/test_mfa.py, tests/test_login.py), not by project permissions",
    "accounts/ (allauth.urls)": "django-allauth's own sign-up, password, e-mail and MFA management pages: "
    "per-person pages of the signed-in account, with no project object behind them",
    "static/": "static files (whitenoise / staticfiles), no data",
    "api/": "the REST API has its own matrix, same people and projects, token authentication: "
    "tests/api/test_api_matrix.py (it fails on any API route without rows)",
}


def _skip_reason(route: str, pattern: Any) -> str | None:
    if route.startswith("admin/"):
        return SKIPPED["admin/"]
    if route.startswith(("static/", "media/")):
        return SKIPPED["static/"]
    if route.startswith("api/"):
        return SKIPPED["api/"]
    if isinstance(pattern, URLResolver) and getattr(pattern.urlconf_module, "__name__", "") == "allauth.urls":
        return SKIPPED["accounts/ (allauth.urls)"]
    return None


# ---------------------------------------------------------------------------------------------------------------
# The world (tests/world.py), built for each test.
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def world(db, settings, tmp_path) -> World:
    settings.SOYANG_DATASET_ROOT = tmp_path / "datasets"
    return build_world()


# ---------------------------------------------------------------------------------------------------------------
# The matrix. One row: url name, which object (None: no object), method, body, expected status per role.
# An expected value is a status or a set of statuses; "login" = 302 to the login page.
# ---------------------------------------------------------------------------------------------------------------

# Pending account: the authentication backend does not accept it (force_login leaves it anonymous), and the
# middleware signs out any account that stops being approved → 302 to the login page; public pages answer 200.
OUT = "login"

OK_FORM_ERR = frozenset({200, 400})
REDIRECT = 302

#   url name                          obj           side meth   anon  pending member partner outsider steward admin
MATRIX: list[Row] = [
    row("home",                        None,        "-", "GET",  L,   OUT,  200,  200,  200,  200,  200),
    row("health",                      None,        "-", "GET",  200, 200,  200,  200,  200,  200,  200),
    row("login",                       None,        "-", "GET",  200, 200,  302,  302,  302,  302,  302),
    row("logout",                      None,        "-", "GET",  302, OUT,  200,  200,  200,  200,  200),
    row("logout",                      None,        "-", "POST", 302, OUT,  302,  302,  302,  302,  302),
    # Django's language switcher: public (the sign-in page has it too); it only sets a cookie and redirects.
    row("javascript-catalog",          None,        "-", "GET",  200, 200,  200,  200,  200,  200,  200),
    row("set_language",                None,        "-", "GET",  302, 302,  302,  302,  302,  302,  302),
    row("set_language",                None,        "-", "POST", 302, 302,  302,  302,  302,  302,  302,
        body={"language": "ko", "next": "/"}),
    # --- projects and approvals (accounts) ---
    row("accounts:project_list",       None,        "-", "GET",  L,   OUT,  200,  200,  200,  200,  200),
    row("accounts:project_create",     None,        "-", "GET",  L,   OUT,  404,  404,  404,  200,  200),
    row("accounts:project_create",     None,        "-", "POST", L,   OUT,  404,  404,  404,  200,  200),
    row("accounts:project_detail",     "project",   "P", "GET",  L,   OUT,  200,  200,  404,  200,  200),
    row("accounts:project_detail",     "project",   "Q", "GET",  L,   OUT,  404,  404,  404,  404,  200),
    # Joining: titles of running projects are public to approved people by design (project_join_candidates).
    row("accounts:project_join",       "project",   "P", "GET",  L,   OUT,  405,  405,  405,  405,  405),
    row("accounts:project_join",       "project",   "P", "POST", L,   OUT,  302,  302,  302,  302,  302),
    row("accounts:project_join",       "project",   "Q", "POST", L,   OUT,  302,  302,  302,  302,  302),
    # Deciding: the request is visible with its project; a visible request not yours to decide → 403 by design.
    row("accounts:membership_decide",  "membership", "P", "GET", L,   OUT,  405,  405,  405,  405,  405),
    # The admin sees every project but is neither its owner nor its steward: visible, not theirs → 403.
    row("accounts:membership_decide",  "membership", "P", "POST", L,  OUT,  403,  403,  404,  302,  403,
        body={"decision": "approve"}),
    row("accounts:membership_decide",  "membership", "Q", "POST", L,  OUT,  404,  404,  404,  404,  403,
        body={"decision": "approve"}),
    row("accounts:approvals",          None,        "-", "GET",  L,   OUT,  404,  404,  404,  200,  200),
    row("accounts:account_decide",     "account",   "P", "GET",  L,   OUT,  405,  405,  405,  405,  405),
    row("accounts:account_decide",     "account",   "P", "POST", L,   OUT,  404,  404,  404,  302,  302),
    row("accounts:account_decide",     "account",   "Q", "POST", L,   OUT,  404,  404,  404,  404,  302),
    # Personal API tokens: everybody's own page; an empty form is refused (400); only the owner revokes.
    row("accounts:tokens",             None,        "-", "GET",  L,   OUT,  200,  200,  200,  200,  200),
    row("accounts:tokens",             None,        "-", "POST", L,   OUT,  400,  400,  400,  400,  400),
    row("accounts:token_revoke",       "token",     "P", "GET",  L,   OUT,  405,  405,  405,  405,  405),
    row("accounts:token_revoke",       "token",     "P", "POST", L,   OUT,  302,  404,  404,  404,  404),
    row("accounts:token_revoke",       "token",     "Q", "POST", L,   OUT,  404,  404,  404,  404,  404),
    # --- audit ---
    row("audit:event_list",            None,        "-", "GET",  L,   OUT,  404,  404,  404,  200,  200),
    row("audit:export",                None,        "-", "GET",  L,   OUT,  404,  404,  404,  200,  200),
    # --- exact-count grants: the site's stewards grant and revoke; admins read; everybody else is refused ---
    row("disclosure:grant_list",       None,        "-", "GET",  L,   OUT,  403,  403,  403,  200,  200),
    # An empty form is shown again with its errors (200); only stewards grant.
    row("disclosure:grant_list",       None,        "-", "POST", L,   OUT,  403,  403,  403,  200,  403),
    row("disclosure:grant_revoke",     "grant",     "P", "GET",  L,   OUT,  405,  405,  405,  405,  405),
    # The admin sees every grant but revoking is the site's steward's decision: visible, not theirs → 403.
    row("disclosure:grant_revoke",     "grant",     "P", "POST", L,   OUT,  404,  404,  404,  302,  403,
        body={"reason": "protocol closed"}),
    row("disclosure:grant_revoke",     "grant",     "Q", "POST", L,   OUT,  404,  404,  404,  404,  403,
        body={"reason": "protocol closed"}),
    # --- cohort definitions ---
    row("cohorts:definition_list",     None,        "-", "GET",  L,   OUT,  200,  200,  200,  200,  200),
    row("cohorts:definition_list",     None,        "-", "POST", L,   OUT,  405,  405,  405,  405,  405),
    row("cohorts:definition_import",   None,        "-", "GET",  L,   OUT,  200,  404,  200,  200,  200),
    row("cohorts:definition_import",   None,        "-", "POST", L,   OUT,  400,  404,  400,  400,  400),
    row("cohorts:definition_new",      None,        "-", "GET",  L,   OUT,  200,  404,  200,  200,  200),
    # The builder page only renders; it saves through builder_create (JSON body: a form body is refused, 400).
    row("cohorts:definition_new",      None,        "-", "POST", L,   OUT,  405,  405,  405,  405,  405),
    row("cohorts:builder_create",      None,        "-", "GET",  L,   OUT,  405,  405,  405,  405,  405),
    row("cohorts:builder_create",      None,        "-", "POST", L,   OUT,  400,  404,  400,  400,  400),
    row("cohorts:builder_describe",    None,        "-", "GET",  L,   OUT,  405,  405,  405,  405,  405),
    row("cohorts:builder_describe",    None,        "-", "POST", L,   OUT,  400,  404,  400,  400,  400),
    # Editing needs the change permission (owner's, admins'): a viewer of a shared definition gets 403.
    row("cohorts:definition_edit",     "definition", "P", "GET", L,   OUT,  403,  403,  404,  404,  200),
    row("cohorts:definition_edit",     "definition", "Q", "GET", L,   OUT,  404,  404,  404,  404,  200),
    row("cohorts:builder_save",        "definition", "P", "GET", L,   OUT,  405,  405,  405,  405,  405),
    row("cohorts:builder_save",        "definition", "P", "POST", L,  OUT,  403,  403,  404,  404,  400),
    row("cohorts:builder_save",        "definition", "Q", "POST", L,  OUT,  404,  404,  404,  404,  400),
    # Counting the unsaved draft needs the same change permission as saving it.
    row("cohorts:builder_count",       "definition", "P", "GET", L,   OUT,  405,  405,  405,  405,  405),
    row("cohorts:builder_count",       "definition", "P", "POST", L,  OUT,  403,  403,  404,  404,  400),
    row("cohorts:builder_count",       "definition", "Q", "POST", L,  OUT,  404,  404,  404,  404,  400),
    row("cohorts:definition_detail",   "definition", "P", "GET", L,   OUT,  200,  200,  404,  404,  200),
    row("cohorts:definition_detail",   "definition", "Q", "GET", L,   OUT,  404,  404,  404,  404,  200),
    row("cohorts:definition_export",   "definition", "P", "GET", L,   OUT,  200,  200,  404,  404,  200),
    row("cohorts:definition_export",   "definition", "Q", "GET", L,   OUT,  404,  404,  404,  404,  200),
    # Sharing needs the share permission (owner's); without it the selector answers 404 like a missing object.
    row("cohorts:definition_share",    "definition", "P", "GET", L,   OUT,  405,  405,  405,  405,  405),
    row("cohorts:definition_share",    "definition", "P", "POST", L,  OUT,  404,  404,  404,  404,  302),
    row("cohorts:definition_share",    "definition", "Q", "POST", L,  OUT,  404,  404,  404,  404,  302),
    # Unsharing needs the share permission, like sharing; an empty body is refused with a message (302).
    row("cohorts:definition_unshare",  "definition", "P", "GET", L,   OUT,  405,  405,  405,  405,  405),
    row("cohorts:definition_unshare",  "definition", "P", "POST", L,  OUT,  404,  404,  404,  404,  302),
    row("cohorts:definition_unshare",  "definition", "Q", "POST", L,  OUT,  404,  404,  404,  404,  302),
    # Duplicating: whoever sees the definition and may write definitions (partners see it but do not write → 403).
    row("cohorts:definition_duplicate", "definition", "P", "GET", L,  OUT,  405,  405,  405,  405,  405),
    row("cohorts:definition_duplicate", "definition", "P", "POST", L, OUT,  302,  403,  404,  404,  302),
    row("cohorts:definition_duplicate", "definition", "Q", "POST", L, OUT,  404,  404,  404,  404,  302),
    row("cohorts:definition_versions", "definition", "P", "GET", L,   OUT,  200,  200,  404,  404,  200),
    row("cohorts:definition_versions", "definition", "Q", "GET", L,   OUT,  404,  404,  404,  404,  200),
    # No version numbers given: past the access check the form refuses (400).
    row("cohorts:version_compare",     "definition", "P", "GET", L,   OUT,  400,  400,  404,  404,  400),
    row("cohorts:version_compare",     "definition", "Q", "GET", L,   OUT,  404,  404,  404,  404,  400),
    # Restoring is the owner's (change permission): a viewer sees the versions but may not restore → 403.
    row("cohorts:version_restore",     "definition", "P", "GET", L,   OUT,  405,  405,  405,  405,  405,
        extra_kwargs={"number": 1}),
    row("cohorts:version_restore",     "definition", "P", "POST", L,  OUT,  403,  403,  404,  404,  302,
        extra_kwargs={"number": 1}),
    row("cohorts:version_restore",     "definition", "Q", "POST", L,  OUT,  404,  404,  404,  404,  302,
        extra_kwargs={"number": 1}),
    row("cohorts:definition_summary",  "definition", "P", "GET", L,   OUT,  200,  200,  404,  404,  200),
    row("cohorts:definition_summary",  "definition", "Q", "GET", L,   OUT,  404,  404,  404,  404,  200),
    # --- counts ---
    # Empty body: past the access check the form refuses (400). Partner viewers view; they do not run counts
    # (accounts/permissions.py: partner_viewer holds view_project only; grant(..., project_roles=["owner",
    # "analyst"]) "so that partner viewers only view"). KNOWN FAILURE for the lead: definition_share(to_project=)
    # grants run_cohortdefinition to every project role, so the partner passes this gate (400, not 404) and
    # sources_for_user_and_definition offers them P's sources.
    row("cohorts:run_create",          "definition", "P", "GET", L,   OUT,  405,  405,  405,  405,  405),
    # Partners may count a definition shared with their project: they see it rounded (disclosure).
    row("cohorts:run_create",          "definition", "P", "POST", L,  OUT,  400,  400,  404,  404,  400),
    row("cohorts:run_create",          "definition", "Q", "POST", L,  OUT,  404,  404,  404,  404,  400),
    row("cohorts:run_detail",          "run",       "P", "GET",  L,   OUT,  200,  200,  404,  404,  200),
    row("cohorts:run_detail",          "run",       "Q", "GET",  L,   OUT,  404,  404,  404,  404,  200),
    row("cohorts:run_status",          "run",       "P", "GET",  L,   OUT,  200,  200,  404,  404,  200),
    row("cohorts:run_status",          "run",       "Q", "GET",  L,   OUT,  404,  404,  404,  404,  200),
    # Cancelling somebody else's visible count is refused with 403 by design (cohorts/views.py run_cancel).
    row("cohorts:run_cancel",          "run",       "P", "GET",  L,   OUT,  405,  405,  405,  405,  405),
    row("cohorts:run_cancel",          "run",       "P", "POST", L,   OUT,  302,  403,  404,  404,  403),
    row("cohorts:run_cancel",          "run",       "Q", "POST", L,   OUT,  404,  404,  404,  404,  403),
    row("cohorts:run_table_csv",       "run",       "P", "GET",  L,   OUT,  200,  200,  404,  404,  200,
        extra_kwargs={"table": "sites"}),
    row("cohorts:run_table_csv",       "run",       "Q", "GET",  L,   OUT,  404,  404,  404,  404,  200,
        extra_kwargs={"table": "sites"}),
    # A set of definitions counted together: nothing chosen (no ids in the query) answers 404 like a definition
    # one may not count; the set page without counts likewise.
    row("cohorts:run_set_new",         None,        "-", "GET",  L,   OUT,  404,  404,  404,  404,  404),
    row("cohorts:run_set_new",         None,        "-", "POST", L,   OUT,  404,  404,  404,  404,  404),
    row("cohorts:run_set_detail",      None,        "-", "GET",  L,   OUT,  404,  404,  404,  404,  404),
    # A comparison is its requester's alone (bob's in P, dave's in Q): nobody else sees it, admins included, and
    # it answers 404 as a missing one. Nothing chosen on the list: the page says 2 to 4 are needed (400).
    row("cohorts:comparison_list",     None,        "-", "GET",  L,   OUT,  200,  200,  200,  200,  200),
    row("cohorts:comparison_new",      None,        "-", "GET",  L,   OUT,  400,  400,  400,  400,  400),
    row("cohorts:comparison_new",      None,        "-", "POST", L,   OUT,  400,  400,  400,  400,  400),
    row("cohorts:comparison_detail",   "comparison", "P", "GET", L,   OUT,  200,  404,  404,  404,  404),
    row("cohorts:comparison_detail",   "comparison", "Q", "GET", L,   OUT,  404,  404,  404,  404,  404),
    row("cohorts:comparison_status",   "comparison", "P", "GET", L,   OUT,  200,  404,  404,  404,  404),
    row("cohorts:comparison_status",   "comparison", "Q", "GET", L,   OUT,  404,  404,  404,  404,  404),
    row("cohorts:comparison_csv",      "comparison", "P", "GET", L,   OUT,  200,  404,  404,  404,  404),
    row("cohorts:comparison_csv",      "comparison", "Q", "GET", L,   OUT,  404,  404,  404,  404,  404),
    # Finished: cancelling it says so and goes back to the page (302).
    row("cohorts:comparison_cancel",   "comparison", "P", "GET", L,   OUT,  405,  405,  405,  405,  405),
    row("cohorts:comparison_cancel",   "comparison", "P", "POST", L,  OUT,  302,  404,  404,  404,  404),
    row("cohorts:comparison_cancel",   "comparison", "Q", "POST", L,  OUT,  404,  404,  404,  404,  404),
    # A site's count store: its stewards and admins ask for a (re)build; the test sites are DuckDB files, which
    # keep none, so the request is answered with a message (302); anybody else gets 404 as for a missing site.
    row("cohorts:count_store_sync",    "source",    "P", "GET",  L,   OUT,  405,  405,  405,  405,  405),
    row("cohorts:count_store_sync",    "source",    "P", "POST", L,   OUT,  404,  404,  404,  302,  302),
    row("cohorts:count_store_sync",    "source",    "Q", "POST", L,   OUT,  404,  404,  404,  404,  302),
    # The plotting library's code: public, no data.
    row("cohorts:plotly_js",           None,        "-", "GET",  200, 200,  200,  200,  200,  200,  200),
    # --- vocabulary search and concept sets --- The vocabulary is public to every approved account; counts per
    # site inside it are filtered per person (cohorts/tests/test_concepts.py). An unknown concept answers 404, an
    # empty search 400. Concept sets: P's members view (partner too), owner/analysts change, the creator (bob)
    # deletes; the outsider, steward and everybody for Q's set get 404. Creating needs an owner/analyst project.
    row("cohorts:concept_search_page", None,        "-", "GET",  L,   OUT,  200,  200,  200,  200,  200),
    row("cohorts:concept_search_json", None,        "-", "GET",  L,   OUT,  400,  400,  400,  400,  400),
    row("cohorts:concept_search_json", None,        "-", "POST", L,   OUT,  405,  405,  405,  405,  405),
    row("cohorts:concept_detail_page", None,        "-", "GET",  L,   OUT,  404,  404,  404,  404,  404,
        extra_kwargs={"concept_id": 1}),
    row("cohorts:concept_detail_json", None,        "-", "GET",  L,   OUT,  404,  404,  404,  404,  404,
        extra_kwargs={"concept_id": 1}),
    row("cohorts:concept_set_list",    None,        "-", "GET",  L,   OUT,  200,  200,  200,  200,  200),
    row("cohorts:concept_set_new",     None,        "-", "GET",  L,   OUT,  200,  404,  404,  404,  200),
    row("cohorts:concept_set_new",     None,        "-", "POST", L,   OUT,  400,  404,  404,  404,  400),
    row("cohorts:concept_set_resolve", None,        "-", "GET",  L,   OUT,  405,  405,  405,  405,  405),
    row("cohorts:concept_set_resolve", None,        "-", "POST", L,   OUT,  400,  400,  400,  400,  400),
    row("cohorts:concept_set_edit",    "concept_set", "P", "GET", L,  OUT,  200,  200,  404,  404,  200),
    row("cohorts:concept_set_edit",    "concept_set", "Q", "GET", L,  OUT,  404,  404,  404,  404,  200),
    row("cohorts:concept_set_edit",    "concept_set", "P", "POST", L, OUT,  400,  403,  404,  404,  400),
    row("cohorts:concept_set_edit",    "concept_set", "Q", "POST", L, OUT,  404,  404,  404,  404,  400),
    row("cohorts:concept_set_json",    "concept_set", "P", "GET", L,  OUT,  200,  200,  404,  404,  200),
    row("cohorts:concept_set_json",    "concept_set", "Q", "GET", L,  OUT,  404,  404,  404,  404,  200),
    row("cohorts:concept_set_delete",  "concept_set", "P", "GET", L,  OUT,  405,  405,  405,  405,  405),
    row("cohorts:concept_set_delete",  "concept_set", "P", "POST", L, OUT,  302,  403,  404,  404,  302),
    row("cohorts:concept_set_delete",  "concept_set", "Q", "POST", L, OUT,  404,  404,  404,  404,  302),
    # --- dataset requests --- P's request is the partner's, under review at the steward's site; Q's is dave's.
    # A request is seen by its requester, the stewards of its sites and admins (404 for anybody else); seeing is
    # not acting: only the requester submits and downloads, only the site's steward decides (403 otherwise).
    row("datasets:request_list",       None,        "-", "GET",  L,   OUT,  200,  200,  200,  200,  200),
    # Requesting needs request_dataset on the definition, in a running project of one's own (admins: any).
    row("datasets:request_new",        "definition", "P", "GET", L,   OUT,  200,  200,  404,  404,  200),
    row("datasets:request_new",        "definition", "P", "POST", L,  OUT,  400,  400,  404,  404,  400),
    row("datasets:request_new",        "definition", "Q", "GET", L,   OUT,  404,  404,  404,  404,  200),
    row("datasets:request_new",        "definition", "Q", "POST", L,  OUT,  404,  404,  404,  404,  400),
    row("datasets:request_detail",     "dataset_request", "P", "GET", L, OUT, 404, 200,  404,  200,  200),
    row("datasets:request_detail",     "dataset_request", "Q", "GET", L, OUT, 404, 404,  404,  404,  200),
    # Already submitted: the requester gets the refusal as a message (302).
    row("datasets:request_submit",     "dataset_request", "P", "GET", L, OUT, 405, 405,  405,  405,  405),
    row("datasets:request_submit",     "dataset_request", "P", "POST", L, OUT, 404, 302, 404,  403,  403),
    row("datasets:request_submit",     "dataset_request", "Q", "POST", L, OUT, 404, 404, 404,  404,  403),
    # Withdrawing is the requester's alone (still under review: withdrawn, 302); others who see it → 403.
    row("datasets:request_withdraw",   "dataset_request", "P", "GET", L, OUT, 405, 405,  405,  405,  405),
    row("datasets:request_withdraw",   "dataset_request", "P", "POST", L, OUT, 404, 302, 404,  403,  403),
    row("datasets:request_withdraw",   "dataset_request", "Q", "POST", L, OUT, 404, 404, 404,  404,  403),
    row("datasets:request_document",   "dataset_request", "P", "GET", L, OUT, 404, 200,  404,  200,  200),
    row("datasets:request_document",   "dataset_request", "Q", "GET", L, OUT, 404, 404,  404,  404,  200),
    # Revoking is for the site's stewards and admins; an empty reason is refused with a message (302).
    row("datasets:request_revoke",     "dataset_request", "P", "GET", L, OUT, 405, 405,  405,  405,  405),
    row("datasets:request_revoke",     "dataset_request", "P", "POST", L, OUT, 404, 403, 404,  302,  302),
    row("datasets:request_revoke",     "dataset_request", "Q", "POST", L, OUT, 404, 404, 404,  404,  302),
    # Deciding: the site's steward only; the requester never (own request) and the admin neither → 403.
    row("datasets:review",             "review",    "P", "GET",  L,   OUT,  404,  403,  404,  200,  403),
    row("datasets:review",             "review",    "P", "POST", L,   OUT,  404,  403,  404,  400,  403),
    row("datasets:review",             "review",    "Q", "GET",  L,   OUT,  404,  404,  404,  404,  403),
    row("datasets:review",             "review",    "Q", "POST", L,   OUT,  404,  404,  404,  404,  403),
    # Downloading: the requester only; not ready yet → 410 with the reason.
    row("datasets:extract_download",   "extract",   "P", "GET",  L,   OUT,  405,  405,  405,  405,  405),
    row("datasets:extract_download",   "extract",   "P", "POST", L,   OUT,  404,  410,  404,  403,  403),
    row("datasets:extract_download",   "extract",   "Q", "POST", L,   OUT,  404,  404,  404,  404,  403),
]  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# The tests.
# ---------------------------------------------------------------------------------------------------------------


def test_every_url_pattern_is_classified_in_the_matrix() -> None:
    found = {
        f"{namespace}{pattern.name}" if pattern.name else route
        for namespace, route, pattern in url_patterns(get_resolver().url_patterns, skip=_skip_reason)
    }
    missing, stale = unclassified(MATRIX, found)
    assert not missing, f"URL patterns with no row in the authorization matrix (decide who may use them): {missing}"
    assert not stale, f"matrix rows for URL names that no longer exist: {stale}"


def test_every_object_url_has_an_own_and_an_other_row() -> None:
    assert_every_object_route_has_an_own_and_an_other_row(MATRIX)


def _client(user: Any) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _url(r: Row, world: World) -> str:
    if r.obj is None:
        return reverse(r.name, kwargs=r.extra_kwargs or None)
    objects = world.P if r.side == "P" else world.Q
    return reverse(r.name, kwargs={"pk": objects[r.obj].pk, **r.extra_kwargs})


def _problems(r: Row, role: str, response: Any) -> list[str]:
    return cell_problems(r, role, response, shown=f" {response.get('Location', '')!r}")


@pytest.mark.parametrize("r", MATRIX, ids=lambda r: r.id)
def test_authorization_matrix(r: Row, world: World) -> None:
    url = _url(r, world)
    failures = row_failures(
        r, client=lambda role: _client(world.users[role]), url=lambda role: url, problems=partial(_problems, r)
    )
    assert not failures, "\n".join(failures)


def test_unenrolled_steward_is_sent_to_totp_setup_before_any_matrix_page(world: World) -> None:
    """The matrix runs stewards and admins with TOTP enrolled; without it every page sends them to set it up."""
    Authenticator.objects.filter(user=world.users["steward"]).delete()
    client = _client(world.users["steward"])
    for r in MATRIX:
        if r.name in ("health", "logout", "javascript-catalog"):
            continue  # exempt by design (accounts/middleware.py)
        response = send(client, r, _url(r, world))
        assert response.status_code == 302, r.id
        assert response["Location"] == reverse("mfa_activate_totp"), r.id
