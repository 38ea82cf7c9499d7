"""Revoking a membership ends at once what it gave: bob, an analyst of alice's project, loses the counts (his own
among them), the definitions shared through the project and their exports — in the browser session he is still
signed in with and through the API token he made before, with nothing cached in between."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.api.tokens import token_create
from accounts.services import membership_revoke
from cohorts.definitions.services import definition_create, definition_share
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import count_request

pytestmark = pytest.mark.django_db

NAME = "Shared through project P"


@pytest.fixture
def ready_source(source: Any) -> Any:
    source.fingerprint = "f" * 64
    source.save(update_fields=["fingerprint"])
    return source


@pytest.fixture
def definition(alice: Any, project: Any, bob_member: Any, ready_source: Any) -> Any:
    definition = definition_create(owner=alice, name=NAME, expression=EXPRESSION, project=project)
    definition_share(definition=definition, by=alice, to_project=project)
    return definition


@pytest.fixture
def signed_in_bob(bob: Any) -> tuple[Client, APIClient]:
    browser = Client()
    browser.force_login(bob)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=bob, name='notebook', days=30).secret}")
    return browser, api


def _pages(definition: Any, request: Any) -> list[str]:
    return [
        reverse("cohorts:run_detail", args=[request.pk]),
        reverse("cohorts:run_status", args=[request.pk]),
        reverse("cohorts:run_table_csv", args=[request.pk, "sites"]),
        reverse("cohorts:definition_detail", args=[definition.pk]),
        reverse("cohorts:definition_export", args=[definition.pk]),
        reverse("cohorts:definition_summary", args=[definition.pk]),
    ]


def _api(definition: Any, request: Any) -> list[str]:
    return [
        reverse("api:run-detail", args=[request.pk]),
        reverse("api:cohort-definition-detail", args=[definition.pk]),
        reverse("api:cohort-definition-export", args=[definition.pk]),
    ]


def test_bob_loses_his_counts_the_definition_and_its_exports_when_revoked(
    alice, bob, bob_member, definition, ready_source, signed_in_bob
):
    browser, api = signed_in_bob
    own = count_request(definition.latest_version(), bob, {ready_source: 120})
    for url in _pages(definition, own):
        assert browser.get(url).status_code == 200, url
    for url in _api(definition, own):
        assert api.get(url).status_code == 200, url

    membership_revoke(membership=bob_member, revoked_by=alice, reason="Left the study.")

    for url in _pages(definition, own):
        assert browser.get(url).status_code == 404, url
    for url in _api(definition, own):
        assert api.get(url).status_code == 404, url
    # alice's access is her own and stays.
    alice_browser = Client()
    alice_browser.force_login(alice)
    assert alice_browser.get(reverse("cohorts:run_status", args=[own.pk])).status_code == 200


def test_bobs_lists_and_home_forget_the_project_when_revoked(
    alice, bob, bob_member, definition, ready_source, signed_in_bob
):
    browser, api = signed_in_bob
    own = count_request(definition.latest_version(), bob, {ready_source: 120})
    assert [r["id"] for r in api.get(reverse("api:run-list")).json()["results"]] == [own.pk]
    assert NAME in browser.get(reverse("home")).content.decode()

    membership_revoke(membership=bob_member, revoked_by=alice, reason="Left the study.")

    assert api.get(reverse("api:run-list")).json()["results"] == []
    assert api.get(reverse("api:cohort-definition-list")).json()["results"] == []
    assert NAME not in browser.get(reverse("home")).content.decode()
    assert NAME not in browser.get(reverse("cohorts:definition_list")).content.decode()


def test_a_definition_shared_with_bob_himself_keeps_no_count_once_he_is_revoked(
    alice, bob, bob_member, project, ready_source, signed_in_bob
):
    # Shared with bob in person while he worked in the project: the share outlives the membership, the right to
    # count on the project's site does not — and with it go the results.
    definition = definition_create(owner=alice, name="Shared with bob", expression=EXPRESSION, project=project)
    definition_share(definition=definition, by=alice, to_user=bob)
    browser, api = signed_in_bob
    own = count_request(definition.latest_version(), bob, {ready_source: 120})
    assert browser.get(reverse("cohorts:run_status", args=[own.pk])).status_code == 200

    membership_revoke(membership=bob_member, revoked_by=alice, reason="Left the study.")

    for url in (
        reverse("cohorts:run_detail", args=[own.pk]),
        reverse("cohorts:run_status", args=[own.pk]),
        reverse("cohorts:run_table_csv", args=[own.pk, "sites"]),
    ):
        assert browser.get(url).status_code == 404, url
    assert api.get(reverse("api:run-detail", args=[own.pk])).status_code == 404
    assert api.get(reverse("api:run-list")).json()["results"] == []
    assert "120" not in browser.get(reverse("cohorts:definition_summary", args=[definition.pk])).content.decode()
