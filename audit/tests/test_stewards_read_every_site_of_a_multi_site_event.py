"""An event that spans sites ("syuh,crh": a federated count, a multi-site request) belongs to the audit log of
each of its sites' stewards — and to no other steward's: a key matches whole, "syuh" never matches "syuh2"."""

from __future__ import annotations

from django.test import Client
from rest_framework.test import APIClient

from accounts.tests.factories import OrganisationFactory, SourceFactory, UserFactory, enroll_totp
from audit.services import audit_record


def _page(user) -> str:
    client = Client()
    client.force_login(user)
    return client.get("/audit/").content.decode()


def _api_actions(user) -> set[str]:
    client = APIClient()
    client.force_authenticate(user)
    return {event["action"] for event in client.get("/api/v1/audit-events/").json()["results"]}


def test_each_sites_steward_reads_the_events_of_a_multi_site_count(
    steward, other_steward, source, other_source
) -> None:
    third = OrganisationFactory(name="Gangneung Hospital")
    SourceFactory(key="syuh2", organisation=third)
    third_steward = UserFactory(username="thirdstew", role="steward", organisation=third)
    enroll_totp(third_steward)
    audit_record(action="count_syuh_crh", source_key="syuh,crh")
    audit_record(action="count_crh_syuh2", source_key="crh,syuh2")
    audit_record(action="count_three", source_key="crh,syuh,syuh2")
    audit_record(action="count_syuh2_only", source_key="syuh2")

    assert _api_actions(steward) == {"count_syuh_crh", "count_three"}
    assert _api_actions(other_steward) == {"count_syuh_crh", "count_crh_syuh2", "count_three"}
    assert _api_actions(third_steward) == {"count_crh_syuh2", "count_three", "count_syuh2_only"}

    page = _page(steward)
    assert "count_syuh_crh" in page and "count_three" in page
    assert "count_crh_syuh2" not in page and "count_syuh2_only" not in page
    assert "count_crh_syuh2" in _page(other_steward)
