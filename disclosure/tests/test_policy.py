"""A site's disclosure policy: its defaults when nobody set one, and an admin setting one."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.choices import Role
from accounts.tests.factories import SourceFactory, UserFactory, enroll_totp
from audit.models import AuditEvent
from disclosure.models import DisclosurePolicy
from disclosure.selectors import policy_for, rule_for
from warehouse.models import Source

pytestmark = pytest.mark.django_db


def test_a_site_without_a_policy_gets_the_defaults() -> None:
    source = SourceFactory(key="fresh")
    policy = policy_for(source)
    assert policy.pk is None
    assert (policy.min_cell_size, policy.round_to, policy.aggregate_only_roles) == (10, 10, ["partner"])
    assert rule_for(source=source, role="researcher").describe() == "perturbed (at most ±3), counts under 10 hidden"
    assert rule_for(source=source, role="partner").describe() == (
        "perturbed (at most ±3), counts under 10 hidden, rounded to the nearest 10"
    )
    assert (policy.perturbation_max_adjustment, policy.perturbation_variance) == (3, "2")
    assert not DisclosurePolicy.objects.exists()


def test_a_saved_policy_gives_the_rule_of_its_site() -> None:
    source = SourceFactory(key="strict")
    DisclosurePolicy.objects.create(
        source=source, min_cell_size=20, round_to=5, aggregate_only_roles=["partner", "researcher"]
    )
    source = Source.objects.select_related("disclosure_policy").get(key="strict")
    assert rule_for(source=source, role="researcher").describe() == (
        "perturbed (at most ±3), counts under 20 hidden, rounded to the nearest 5"
    )
    assert rule_for(source=source, role="steward").describe() == "perturbed (at most ±3), counts under 20 hidden"
    ptable = rule_for(source=source, role="steward").ptable
    assert ptable is not None and ptable.parameters.threshold == 20


def test_an_admin_sets_a_sites_policy_in_the_admin_and_the_change_is_audited() -> None:
    source = SourceFactory(key="site_a")
    admin = UserFactory(username="admin", role=Role.ADMIN, is_staff=True, is_superuser=True)
    enroll_totp(admin)
    client = Client()
    client.force_login(admin)

    fields = {
        "source": source.pk,
        "min_cell_size": 5,
        "round_to": 20,
        "aggregate_only_roles": '["partner", "researcher"]',
        "perturbation_max_adjustment": 5,
        "perturbation_variance": "3",
    }
    # A variance no ptable can have (more than the uniform noise on -2..2 holds) is refused and nothing is saved.
    refused = client.post(
        reverse("admin:disclosure_disclosurepolicy_add"),
        {**fields, "perturbation_max_adjustment": 2, "perturbation_variance": "3"},
    )
    assert refused.status_code == 200 and "more than the uniform noise" in refused.content.decode()
    assert not DisclosurePolicy.objects.exists()

    response = client.post(reverse("admin:disclosure_disclosurepolicy_add"), fields)
    assert response.status_code == 302, response.content.decode()[:2000]
    policy = DisclosurePolicy.objects.get(source=source)
    assert (policy.min_cell_size, policy.round_to) == (5, 20)
    rule = rule_for(source=Source.objects.get(pk=source.pk), role="researcher")
    assert rule.describe() == "perturbed (at most ±5), counts under 5 hidden, rounded to the nearest 20"
    assert rule.as_dict()["perturbation"] == {"ptable": "ptable-v2-D5-V3-k5.csv", "max_adjustment": 5, "variance": "3"}
    event = AuditEvent.objects.get(action="configuration_change", object_type="disclosure.disclosurepolicy")
    assert event.source_key == "site_a" and event.actor == admin
    assert event.detail["changed"] == [
        "aggregate_only_roles",
        "min_cell_size",
        "perturbation_max_adjustment",
        "perturbation_variance",
        "round_to",
        "source",
    ]

    assert client.get(reverse("admin:disclosure_disclosurepolicy_changelist")).status_code == 200
    assert client.get(reverse("admin:disclosure_disclosurepolicy_change", args=[policy.pk])).status_code == 200
    assert client.get(reverse("admin:warehouse_source_change", args=[source.pk])).status_code == 200
