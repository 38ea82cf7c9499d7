"""Comparison pages and API: 2-4 definitions the user may run, on sites where they may count every one; anybody
else, and the requester once they lost a definition or its site, gets the 404 of a missing comparison. Bad
choices (1 or 5 definitions, a repeated one, a site not offered) are refused with a clear message and write
nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.api.tokens import token_create
from accounts.services import membership_revoke
from accounts.tests.factories import make_project
from cohorts.definitions.services import definition_create, definition_share
from cohorts.runs.comparison_services import comparison_create
from cohorts.runs.models import Comparison, ComparisonRun
from cohorts.tests.expressions import EXPRESSION
from jobs.choices import JobState

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_for(user: Any) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=user, name='notebook', days=30).secret}")
    return api


@pytest.fixture
def ready_source(source: Any) -> Any:
    source.fingerprint = "f" * 64
    source.save(update_fields=["fingerprint"])
    return source


@pytest.fixture
def definitions(alice: Any, project: Any, bob_member: Any, ready_source: Any) -> list[Any]:
    made = []
    for name in ("Diabetes", "Kidney disease", "Statins", "Heart failure", "Gout"):
        definition = definition_create(owner=alice, name=name, expression=EXPRESSION, project=project)
        definition_share(definition=definition, by=alice, to_project=project)
        made.append(definition)
    return made


def _pages(comparison: Comparison) -> list[str]:
    return [
        reverse("cohorts:comparison_detail", args=[comparison.pk]),
        reverse("cohorts:comparison_status", args=[comparison.pk]),
        reverse("cohorts:comparison_csv", args=[comparison.pk]),
    ]


@pytest.mark.parametrize("chosen", [0, 1, 5])
def test_choosing_other_than_two_to_four_definitions_says_so_and_writes_nothing(
    alice: Any, definitions: list[Any], ready_source: Any, chosen: int
) -> None:
    ids = [d.pk for d in definitions[:chosen]]
    page = client_for(alice).get(reverse("cohorts:comparison_new"), {"definitions": ids})
    assert page.status_code == 400
    assert f"Choose 2 to 4 definitions to compare (you chose {chosen})." in page.content.decode()
    posted = client_for(alice).post(
        reverse("cohorts:comparison_new"), {"definitions": ids, "sources": [ready_source.pk]}
    )
    assert posted.status_code == 400
    api = api_for(alice).post(
        reverse("api:run-create-comparison"), {"definitions": ids, "sources": [ready_source.key]}, format="json"
    )
    assert api.status_code == 400 and "definitions" in api.json()["error"]["fields"]
    assert not Comparison.objects.exists()


def test_the_choice_page_offers_the_sites_every_definition_may_be_counted_on(
    alice: Any, definitions: list[Any], ready_source: Any
) -> None:
    page = client_for(alice).get(reverse("cohorts:comparison_new"), {"definitions": [d.pk for d in definitions[:3]]})
    assert page.status_code == 200
    assert list(page.context["form"].fields["sources"].queryset) == [ready_source]
    assert [letter for letter, _ in page.context["definitions"]] == ["A", "B", "C"]


def test_a_definition_one_may_not_run_is_a_404_as_a_missing_one(
    alice: Any, charlie: Any, definitions: list[Any], ready_source: Any
) -> None:
    ids = [d.pk for d in definitions[:2]]
    for user in (charlie,):
        assert client_for(user).get(reverse("cohorts:comparison_new"), {"definitions": ids}).status_code == 404
        response = api_for(user).post(
            reverse("api:run-create-comparison"), {"definitions": ids, "sources": [ready_source.key]}, format="json"
        )
        assert response.status_code == 404
    missing = client_for(alice).get(reverse("cohorts:comparison_new"), {"definitions": [ids[0], 999_999]})
    assert missing.status_code == 404
    assert not Comparison.objects.exists()


def test_a_site_where_one_definition_may_not_be_counted_is_refused(
    alice: Any, other_steward: Any, definitions: list[Any], ready_source: Any, other_source: Any
) -> None:
    other_source.fingerprint = "e" * 64
    other_source.save(update_fields=["fingerprint"])
    elsewhere = make_project(principal_investigator=alice, created_by=other_steward, sources=[other_source])
    foreign = definition_create(owner=alice, name="Elsewhere", expression=EXPRESSION, project=elsewhere)
    ids = [definitions[0].pk, foreign.pk]
    page = client_for(alice).get(reverse("cohorts:comparison_new"), {"definitions": ids})
    assert page.status_code == 200 and page.context["no_site"]
    for site in (ready_source, other_source):
        posted = client_for(alice).post(reverse("cohorts:comparison_new"), {"definitions": ids, "sources": [site.pk]})
        assert posted.status_code == 400
        api = api_for(alice).post(
            reverse("api:run-create-comparison"), {"definitions": ids, "sources": [site.key]}, format="json"
        )
        assert api.status_code == 400 and "sources" in api.json()["error"]["fields"]
    with pytest.raises(Exception, match="cannot count every one"):
        comparison_create(
            user=alice, versions=[definitions[0].latest_version(), foreign.latest_version()], sources=[other_source]
        )
    assert not Comparison.objects.exists()


def test_a_repeated_definition_is_refused(alice: Any, definitions: list[Any], ready_source: Any) -> None:
    version = definitions[0].latest_version()
    with pytest.raises(Exception, match="each definition once"):
        comparison_create(user=alice, versions=[version, version], sources=[ready_source])
    api = api_for(alice).post(
        reverse("api:run-create-comparison"),
        {"definitions": [definitions[0].pk, definitions[0].pk], "sources": [ready_source.key]},
        format="json",
    )
    assert api.status_code == 400


def test_over_the_limit_of_counts_running_a_comparison_is_refused_with_429(
    alice: Any, definitions: list[Any], ready_source: Any, settings: Any
) -> None:
    settings.SOYANG_MAX_CONCURRENT_RUNS = 0
    posted = client_for(alice).post(
        reverse("cohorts:comparison_new"),
        {"definitions": [d.pk for d in definitions[:2]], "sources": [ready_source.pk]},
    )
    assert posted.status_code == 429 and "the limit is 0" in posted.content.decode()
    assert not Comparison.objects.exists()


def test_a_comparison_is_its_requesters_and_ends_with_their_access(
    alice: Any, bob: Any, charlie: Any, bob_member: Any, definitions: list[Any], ready_source: Any
) -> None:
    comparison = comparison_create(
        user=bob, versions=[d.latest_version() for d in definitions[:3]], sources=[ready_source]
    )
    assert ComparisonRun.objects.get(comparison=comparison).state == JobState.QUEUED
    for url in _pages(comparison):
        assert client_for(bob).get(url).status_code == 200, url
    api_url = reverse("api:comparison-detail", args=[comparison.pk])
    assert api_for(bob).get(api_url).status_code == 200
    # alice owns the definitions and works in the project, charlie is a stranger: neither sees bob's comparison.
    for user in (alice, charlie):
        for url in _pages(comparison):
            assert client_for(user).get(url).status_code == 404, (user, url)
        assert api_for(user).get(api_url).status_code == 404
        cancel = client_for(user).post(reverse("cohorts:comparison_cancel", args=[comparison.pk]))
        assert cancel.status_code == 404
    missing = reverse("cohorts:comparison_detail", args=[comparison.pk + 1000])
    assert client_for(bob).get(missing).status_code == 404
    listed = reverse("cohorts:comparison_list")
    detail = reverse("cohorts:comparison_detail", args=[comparison.pk])
    assert detail in client_for(bob).get(listed).content.decode()
    for user in (alice, charlie):
        assert detail not in client_for(user).get(listed).content.decode()

    membership_revoke(membership=bob_member, revoked_by=alice, reason="Left the study.")

    for url in _pages(comparison):
        assert client_for(bob).get(url).status_code == 404, url
    assert api_for(bob).get(api_url).status_code == 404
    assert detail not in client_for(bob).get(listed).content.decode()


def test_the_list_offers_compare_the_selected(alice: Any, definitions: list[Any]) -> None:
    page = client_for(alice).get(reverse("cohorts:definition_list")).content.decode()
    assert 'id="compare-selected"' in page and reverse("cohorts:comparison_new") in page
