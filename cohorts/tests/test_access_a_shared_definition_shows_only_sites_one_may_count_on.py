"""A definition shared directly with somebody of another project shows them the definition, but of its counts only
the sites they may count it on themselves: the other sites are absent (not hidden), and a count with no such site
is missing (404), on the pages and through the API alike.

alice owns a definition without a project, and works in project P (site syuh) and in charlie's project Q (site
crh); she counted it on both. charlie works in Q only: he may count the definition on crh, never on syuh.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.api.tokens import token_create
from accounts.tests.factories import make_member, make_project
from cohorts.definitions.services import definition_create, definition_share
from cohorts.runs.selectors import latest_counts, run_request_sites_for_user
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import count_request, numbers_in

pytestmark = pytest.mark.django_db

SYUH_PERSONS = 1234
CRH_PERSONS = 57


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_for(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=user, name='script', days=30).secret}")
    return client


@pytest.fixture
def ready_sites(source: Any, other_source: Any) -> tuple[Any, Any]:
    for site in (source, other_source):
        site.fingerprint = "f" * 64
        site.save(update_fields=["fingerprint"])
    return source, other_source


@pytest.fixture
def shared(alice: Any, charlie: Any, admin: Any, other_steward: Any, project: Any, ready_sites: Any) -> Any:
    """alice's project-less definition, shared with charlie directly."""
    _, crh = ready_sites
    project_q = make_project(principal_investigator=charlie, created_by=admin, sources=[crh], title="Project Q")
    make_member(project=project_q, user=alice, owner=charlie, steward=other_steward)
    definition = definition_create(owner=alice, name="Shared across projects", expression=EXPRESSION)
    definition_share(definition=definition, by=alice, to_user=charlie)
    return definition


def test_charlie_sees_the_definition_but_a_count_on_syuh_alone_is_missing(alice, charlie, shared, ready_sites):
    syuh, _ = ready_sites
    request = count_request(shared.latest_version(), alice, {syuh: SYUH_PERSONS})

    client = client_for(charlie)
    assert client.get(reverse("cohorts:definition_detail", args=[shared.pk])).status_code == 200
    for url in (
        reverse("cohorts:run_detail", args=[request.pk]),
        reverse("cohorts:run_status", args=[request.pk]),
        reverse("cohorts:run_table_csv", args=[request.pk, "sites"]),
    ):
        assert client.get(url).status_code == 404, url
    assert api_for(charlie).get(reverse("api:run-detail", args=[request.pk])).status_code == 404
    # alice, who may count on syuh, still sees it.
    assert client_for(alice).get(reverse("cohorts:run_status", args=[request.pk])).status_code == 200


def test_charlie_sees_only_crh_and_a_total_over_crh_alone(alice, charlie, shared, ready_sites):
    syuh, crh = ready_sites
    request = count_request(shared.latest_version(), alice, {syuh: SYUH_PERSONS, crh: CRH_PERSONS})
    assert run_request_sites_for_user(charlie, request) == {crh.pk}

    status = client_for(charlie).get(reverse("cohorts:run_status", args=[request.pk])).json()
    assert [site["source"] for site in status["sites"]] == ["crh"]
    assert status["sites_answered"] == 1
    assert status["total"]["display"] == status["sites"][0]["persons"]["display"] == str(CRH_PERSONS)
    assert not {SYUH_PERSONS, SYUH_PERSONS + CRH_PERSONS} & numbers_in(status)
    assert "1,234" not in str(status) and "1,291" not in str(status)

    api = api_for(charlie).get(reverse("api:run-detail", args=[request.pk])).json()
    assert [site["source"] for site in api["sites"]] == ["crh"]
    assert api["total"] == status["total"]

    alice_status = client_for(alice).get(reverse("cohorts:run_status", args=[request.pk])).json()
    assert [site["source"] for site in alice_status["sites"]] == ["crh", "syuh"]


def test_charlies_csv_exports_and_run_page_leave_syuh_out(alice, charlie, shared, ready_sites):
    syuh, crh = ready_sites
    request = count_request(shared.latest_version(), alice, {syuh: SYUH_PERSONS, crh: CRH_PERSONS})
    client = client_for(charlie)

    csv = client.get(reverse("cohorts:run_table_csv", args=[request.pk, "sites"])).content.decode()
    assert [line.split(",")[0] for line in csv.splitlines()[1:]] == ["crh", "total"]
    attrition = client.get(reverse("cohorts:run_table_csv", args=[request.pk, "attrition"])).content.decode()
    assert "syuh" not in attrition and "1,234" not in attrition and str(SYUH_PERSONS) not in attrition

    page = client.get(reverse("cohorts:run_detail", args=[request.pk])).content.decode()
    assert "SYUH" not in page and "1,234" not in page


def test_charlies_latest_counts_cover_crh_alone(alice, charlie, shared, ready_sites):
    syuh, crh = ready_sites
    count_request(shared.latest_version(), alice, {syuh: SYUH_PERSONS, crh: CRH_PERSONS})
    newest_on_syuh = count_request(shared.latest_version(), alice, {syuh: SYUH_PERSONS + 1})

    counts = latest_counts([shared.pk], user=charlie)
    # The newest count charlie may see is the older one, and of it crh alone.
    assert counts[shared.pk]["display"] == str(CRH_PERSONS) and counts[shared.pk]["sites"] == 1
    assert latest_counts([shared.pk], user=alice)[shared.pk]["request"] == newest_on_syuh.pk

    listed = client_for(charlie).get(reverse("cohorts:definition_list")).content.decode()
    assert str(CRH_PERSONS) in listed and "1,234" not in listed and "1,235" not in listed
    summary = client_for(charlie).get(reverse("cohorts:definition_summary", args=[shared.pk])).content.decode()
    assert "CRH" in summary and "SYUH" not in summary and "1,23" not in summary
