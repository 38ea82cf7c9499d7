"""The "all sites" numbers of a result — the federated total, the merged demographics and their CSV rows — are
computed over the sites the reader is shown, never over a site left out: otherwise the total minus the shown sites
would give the left-out site's count.

The admin counted alice's project definition on three sites: syuh and crh (the project's) and kmc (another
hospital's). alice works in the project: she is shown syuh and crh only.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.tests.factories import SourceFactory
from cohorts.definitions.services import definition_create, definition_share
from cohorts.runs.choices import RunKind
from cohorts.runs.models import CohortRun, RunRequest
from cohorts.runs.selectors import run_request_result
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import finished_run, numbers_in, released_sum

pytestmark = pytest.mark.django_db

#: Persons per site, and their split by race (concept 8527, 8515).
SITES = {"syuh": (40, [(8527, 25), (8515, 15)]), "crh": (30, [(8527, 20), (8515, 10)]), "kmc": (500, [(8527, 500)])}


def demographics_run(version: Any, source: Any, user: Any, persons: int, race: list[tuple[int, int]]) -> CohortRun:
    demographics = {
        "persons": persons,
        "age_pyramid": [{"age_group": "40-49", "gender_concept_id": 8532, "gender": "FEMALE", "persons": persons}],
        "gender": [{"concept_id": 8532, "name": "FEMALE", "persons": persons}],
        "race": [{"concept_id": concept_id, "name": f"race {concept_id}", "persons": n} for concept_id, n in race],
        "ethnicity": [],
        "index_year": [{"year": 2020, "persons": persons}],
        "top_at_index": {"conditions": [{"concept_id": 201826, "name": "Diabetes", "persons": persons}]},
    }
    return finished_run(
        version,
        source,
        user,
        kind=RunKind.DEMOGRAPHICS,
        cache_key=f"merged-{source.key}",
        result={
            "persons": persons,
            "rows": persons,
            "inclusion_rules": [],
            "attrition": [],
            "demographics": demographics,
        },
    )


@pytest.fixture
def three_site_count(alice: Any, admin: Any, project: Any, source: Any, other_source: Any) -> RunRequest:
    kmc = SourceFactory(key="kmc", fingerprint="f" * 64)
    project.sources.add(other_source)
    sites = {"syuh": source, "crh": other_source, "kmc": kmc}
    for site in (source, other_source):
        site.fingerprint = "f" * 64
        site.save(update_fields=["fingerprint"])
    definition = definition_create(owner=alice, name="Across hospitals", expression=EXPRESSION, project=project)
    definition_share(definition=definition, by=alice, to_project=project)
    version = definition.latest_version()
    request = RunRequest.objects.create(
        definition=version.definition, version=version, kind=RunKind.DEMOGRAPHICS, requested_by=admin
    )
    for key, (persons, race) in SITES.items():
        request.runs.add(demographics_run(version, sites[key], admin, persons, race))
    return request


def status_for(user: Any, request: RunRequest) -> dict[str, Any]:
    client = Client()
    client.force_login(user)
    return client.get(reverse("cohorts:run_status", args=[request.pk])).json()


def test_alices_total_and_merged_demographics_are_over_syuh_and_crh_alone(
    alice, three_site_count, source, other_source
):
    status = status_for(alice, three_site_count)
    assert sorted(site["source"] for site in status["sites"]) == ["crh", "syuh"]
    # The total of the two shown sites is one cell, perturbed with the sum of their keys.
    total = released_sum(40, 30)
    assert status["total"]["display"] == str(total) and status["total"]["value"] == total
    merged = status["merged_demographics"]
    assert merged["persons"]["display"] == str(total)
    # Every race of the fixed list is there; those without persons at either site are hidden at both.
    assert {row["concept_id"]: row["persons"]["display"] for row in merged["race"]} == {
        8527: str(released_sum(25, 20)),
        8516: "2 × <10",
        8515: str(released_sum(15, 10)),
        0: "2 × <10",
    }
    everywhere = {released_sum(40, 30, 500) + d for d in range(-3, 4)} | {500 + d for d in range(-3, 4)}
    assert not numbers_in(status) & everywhere
    # Exactly the result of the two shown sites, as if the third had never been asked.
    shown = run_request_result(request=three_site_count, role="researcher", sites={source.pk, other_source.pk})
    assert {k: v for k, v in status.items() if k != "can_cancel"} == shown


def test_the_admin_who_may_count_everywhere_gets_all_three(admin, three_site_count):
    status = status_for(admin, three_site_count)
    assert status["total"]["value"] == released_sum(40, 30, 500)
    assert len(status["sites"]) == 3


def test_alices_csv_all_sites_rows_are_over_the_shown_sites(alice, three_site_count):
    client = Client()
    client.force_login(alice)
    race = client.get(reverse("cohorts:run_table_csv", args=[three_site_count.pk, "race"])).content.decode()
    merged = sorted(line.split(",")[1:4] for line in race.splitlines() if line.startswith("all sites,"))
    assert merged == [
        ["0", "Other or unknown", "2 × <10"],
        ["8515", "Asian", str(released_sum(15, 10))],
        ["8516", "Black or African American", "2 × <10"],
        ["8527", "White", str(released_sum(25, 20))],
    ]
    sites = client.get(reverse("cohorts:run_table_csv", args=[three_site_count.pk, "sites"])).content.decode()
    assert "kmc" not in sites and str(released_sum(40, 30, 500)) not in sites
    total = [line.split(",")[2] for line in sites.splitlines() if line.startswith("total,")]
    assert total == [str(released_sum(40, 30))]
