"""Every output that carries a count of a cohort releases it perturbed: a walk over the pages, the JSON, the CSV
tables and the API, for a researcher, a partner and an admin.

The tracer: a demographics count on two sites (and a concept of the search counted there) whose true counts are
all distinct numbers over 1,000 that are not
multiples of 10, each cell carrying a cell key (the same key for the same persons, as a site computes it) chosen so
that its noise is never 0 — and so that the noise of every cell made of several (a total over the sites, a bucket
summing them) is never 0 either. An output that showed any count without its perturbation would therefore show a
true count, in either spelling ("1,357" or "1357"): none may appear anywhere as a number of its own (the true
counts lie at least 7 apart, so no count perturbed by at most 3 reads as another's truth). Each released number is
also checked to be the ptable's answer for its cell, and each output to say the rule next to its numbers.
"""

from __future__ import annotations

import itertools
import random
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.api.tokens import token_create
from accounts.choices import Role
from accounts.tests.factories import UserFactory, make_member
from cohorts.definitions.services import definition_create, definition_share
from cohorts.runs.choices import RunKind
from cohorts.runs.models import RunRequest
from cohorts.runs.selectors import RESULT_TABLES
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import DEFAULT_PTABLE, finished_run
from warehouse.models import Concept, ConceptCount

pytestmark = pytest.mark.django_db

RULE_TEXT = "perturbed (at most ±3), counts under 10 hidden"

#: Per site: the cohort's persons, the White and Asian among them, two top conditions, two rules' persons.
SITES = {
    "syuh": {"persons": 2357, "white": 1263, "asian": 1094, "top": (1211, 1043), "rules": (2101, 1987)},
    "crh": {"persons": 2739, "white": 1621, "asian": 1118, "top": (1187, 1003), "rules": (1607, 1501)},
}
#: A concept of the search, with its records and persons at each site (keys chosen like the cohort's).
TRACER_CONCEPT = 46_270_001
CONCEPT_COUNTS = {"syuh": (3571, 1153), "crh": (2683, 1317)}


def _counts(site: dict[str, Any]) -> list[int]:
    return [site["persons"], site["white"], site["asian"], *site["top"], *site["rules"]]


def _merged_counts() -> list[int]:
    """The true counts of the cells made of both sites: the total and each bucket of the merged breakdown."""
    a, b = SITES["syuh"], SITES["crh"]
    return [a[name] + b[name] for name in ("persons", "white", "asian")] + [
        x + y for x, y in zip(a["top"], b["top"], strict=True)
    ]


def _noise(count: int, key: int) -> int:
    adjustments = DEFAULT_PTABLE.adjustments(count)
    assert adjustments is not None
    return adjustments[key]


def _tracer_keys() -> dict[int, int]:
    """A cell key per true count such that no cell, alone or summed over the sites, is released unperturbed."""
    rng = random.Random(15)
    a, b = SITES["syuh"], SITES["crh"]
    pairs = [(a[n], b[n]) for n in ("persons", "white", "asian")] + list(zip(a["top"], b["top"], strict=True))
    concept_counts = [n for counts in CONCEPT_COUNTS.values() for n in counts]
    for _ in range(10_000):
        keys = {count: rng.randrange(256) for count in _counts(a) + _counts(b) + concept_counts}
        if any(_noise(count, key) == 0 for count, key in keys.items()):
            continue
        if all(_noise(x + y, (keys[x] + keys[y]) % 256) != 0 for x, y in pairs):
            return keys
    raise AssertionError("no tracer keys found")


KEYS = _tracer_keys()


def _cell(count: int) -> dict[str, int]:
    return {"persons": count, "key": KEYS[count]}


def _result(site: dict[str, Any]) -> dict[str, Any]:
    persons = site["persons"]
    return {
        "persons": persons,
        "persons_key": KEYS[persons],
        "rows": persons,
        "inclusion_rules": [{"name": f"rule {i}", **_cell(n)} for i, n in enumerate(site["rules"], start=1)],
        "attrition": [{"name": f"rule {i}", **_cell(n)} for i, n in enumerate(site["rules"], start=1)],
        "demographics": {
            "persons": persons,
            "persons_key": KEYS[persons],
            "age_pyramid": [
                {"age_group": "40-49", "gender_concept_id": 8532, "gender": "FEMALE", **_cell(persons)},
            ],
            "gender": [{"concept_id": 8532, "name": "FEMALE", **_cell(persons)}],
            "race": [
                {"concept_id": 8527, "name": "White", **_cell(site["white"])},
                {"concept_id": 8515, "name": "Asian", **_cell(site["asian"])},
            ],
            "ethnicity": [{"concept_id": 38003564, "name": "Not Hispanic or Latino", **_cell(persons)}],
            "index_year": [{"year": 2020, **_cell(persons)}],
            "top_at_index": {
                "conditions": [
                    {"concept_id": 201826, "name": "Type 2 diabetes", **_cell(site["top"][0])},
                    {"concept_id": 320128, "name": "Essential hypertension", **_cell(site["top"][1])},
                ]
            },
            "index_lookback_days": 30,
        },
    }


@pytest.fixture
def world(alice: Any, project: Any, source: Any, other_source: Any, steward: Any, admin: Any) -> dict[str, Any]:
    project.sources.add(other_source)
    sources = {"syuh": source, "crh": other_source}
    for site in sources.values():
        site.fingerprint = "f" * 64
        site.save(update_fields=["fingerprint"])
    partner = UserFactory(username="pharma", role=Role.PARTNER, organisation=None)
    make_member(project=project, user=partner, owner=alice, steward=steward)
    definition = definition_create(owner=alice, name="Tracer cohort", expression=EXPRESSION, project=project)
    definition_share(definition=definition, by=alice, to_project=project)
    version = definition.latest_version()
    request = RunRequest.objects.create(
        definition=version.definition, version=version, kind=RunKind.DEMOGRAPHICS, requested_by=alice
    )
    count = RunRequest.objects.create(
        definition=version.definition, version=version, kind=RunKind.COUNT, requested_by=alice
    )
    for key, site in SITES.items():
        request.runs.add(
            finished_run(
                version, sources[key], alice, kind=RunKind.DEMOGRAPHICS, cache_key=f"tr-d-{key}", result=_result(site)
            )
        )
        count.runs.add(
            finished_run(
                version, sources[key], alice, kind=RunKind.COUNT, cache_key=f"tr-c-{key}", result=_result(site)
            )
        )
    Concept.objects.create(
        concept_id=TRACER_CONCEPT,
        concept_name="Tracer condition",
        domain_id="Condition",
        vocabulary_id="SNOMED",
        concept_class_id="Clinical Finding",
        standard_concept="S",
        concept_code="TRACER1",
    )
    for key, (records, persons) in CONCEPT_COUNTS.items():
        ConceptCount.objects.create(
            source=sources[key],
            concept_id=TRACER_CONCEPT,
            record_count=records,
            person_count=persons,
            record_key=KEYS[records],
            person_key=KEYS[persons],
            computed_at=timezone.now(),
        )
    return {"request": request, "count": count, "definition": definition, "users": [alice, partner, admin]}


def _outputs(user: Any, world: dict[str, Any]) -> dict[str, str]:
    """Every output carrying a count of the tracer cohort, as ``user`` reads it: name -> body."""
    client = Client()
    client.force_login(user)
    request, count, definition = world["request"], world["count"], world["definition"]
    out = {
        "run page": client.get(reverse("cohorts:run_detail", args=[request.pk])),
        "run status": client.get(reverse("cohorts:run_status", args=[request.pk])),
        "count page": client.get(reverse("cohorts:run_detail", args=[count.pk])),
        "count status": client.get(reverse("cohorts:run_status", args=[count.pk])),
        "definition list": client.get(reverse("cohorts:definition_list")),
        "definition page": client.get(reverse("cohorts:definition_detail", args=[definition.pk])),
        "definition summary": client.get(reverse("cohorts:definition_summary", args=[definition.pk])),
        "home": client.get("/"),
        "concept search": client.get(reverse("cohorts:concept_search_json"), {"q": "Tracer condition"}),
        "concept search page": client.get(reverse("cohorts:concept_search_page"), {"q": "Tracer condition"}),
        "concept page": client.get(reverse("cohorts:concept_detail_page", args=[TRACER_CONCEPT])),
        "concept json": client.get(reverse("cohorts:concept_detail_json", args=[TRACER_CONCEPT])),
    }
    for table in RESULT_TABLES:
        out[f"{table}.csv"] = client.get(reverse("cohorts:run_table_csv", args=[request.pk, table]))
    api = Client(HTTP_AUTHORIZATION=f"Token {token_create(user=user, name='walk', days=1).secret}")
    out["api run"] = api.get(f"/api/v1/runs/{request.pk}/")
    out["api count"] = api.get(f"/api/v1/runs/{count.pk}/")
    out["api runs"] = api.get("/api/v1/runs/")
    out["api definition"] = api.get(f"/api/v1/cohort-definitions/{definition.pk}/")
    out["api concept search"] = api.get("/api/v1/concepts/", {"q": "Tracer condition"})
    bodies = {}
    for name, response in out.items():
        assert response.status_code == 200, (user.username, name, response.status_code)
        bodies[name] = response.content.decode()
    return bodies


def _shown_as_a_number(count: int, body: str) -> bool:
    """Whether ``body`` holds ``count`` as a number of its own, in either spelling ("1,357" or "1357"): not a part
    of a longer number, a time's fraction of a second or an id."""
    return any(
        re.search(rf"(?<![\w.,]){re.escape(spelling)}(?![\w]|[.,]\d)", body) for spelling in {f"{count:,}", str(count)}
    )


def test_no_output_shows_a_true_count_to_anyone(world: dict[str, Any]) -> None:
    true_counts = [n for site in SITES.values() for n in _counts(site)] + _merged_counts()
    true_counts += [n for counts in CONCEPT_COUNTS.values() for n in counts]
    for user in world["users"]:
        outputs = _outputs(user, world)
        assert "Tracer condition" in outputs["concept search"] and "Tracer condition" in outputs["api concept search"]
        for name, body in outputs.items():
            leaked = [n for n in true_counts if _shown_as_a_number(n, body)]
            assert not leaked, f"{user.username} reads the true count(s) {leaked} in {name}"


def test_every_number_shown_is_the_ptables_answer_for_its_cell_with_the_rule_beside_it(world: dict[str, Any]) -> None:
    alice, partner, _ = world["users"]
    client = Client()
    client.force_login(alice)
    status = client.get(reverse("cohorts:run_status", args=[world["request"].pk])).json()
    by_key = {site["source"]: site for site in status["sites"]}
    for key, site in SITES.items():
        shown = by_key[key]
        assert shown["privacy"]["description"] == RULE_TEXT and shown["privacy"]["method"] == "perturbed"
        assert shown["persons"]["value"] == site["persons"] + _noise(site["persons"], KEYS[site["persons"]])
        for step, n in zip(shown["attrition"], site["rules"], strict=True):
            assert step["value"] == n + _noise(n, KEYS[n])
        race = {row["concept_id"]: row["persons"]["value"] for row in shown["demographics"]["race"]}
        assert race[8527] == site["white"] + _noise(site["white"], KEYS[site["white"]])
    merged_total = sum(site["persons"] for site in SITES.values())
    merged_key = sum(KEYS[site["persons"]] for site in SITES.values()) % 256
    assert status["total"]["value"] == merged_total + _noise(merged_total, merged_key)
    assert status["merged_demographics"]["privacy"]["method"] == "perturbed"
    # The concept search shows each site's records and persons perturbed with their own keys.
    found = client.get(reverse("cohorts:concept_search_json"), {"q": "Tracer condition"}).json()
    (concept,) = [c for c in found["results"] if c["concept_id"] == TRACER_CONCEPT]
    shown = {entry["source"]: (entry["records"], entry["persons"]) for entry in concept["counts"]}
    assert shown == {
        key: (records + _noise(records, KEYS[records]), persons + _noise(persons, KEYS[persons]))
        for key, (records, persons) in CONCEPT_COUNTS.items()
    }
    # Each page and table says the rule next to its numbers.
    outputs = _outputs(alice, world)
    for name in ("run page", "count page", "sites.csv", "attrition.csv", "race.csv", "definition summary"):
        assert "perturbed (at most ±3)" in outputs[name], name
    # The partner reads the same perturbed numbers, rounded on top.
    partner_client = Client()
    partner_client.force_login(partner)
    seen = partner_client.get(reverse("cohorts:run_status", args=[world["request"].pk])).json()
    for site in seen["sites"]:
        truth = SITES[site["source"]]["persons"]
        perturbed = truth + _noise(truth, KEYS[truth])
        assert site["persons"]["value"] == ((perturbed + 5) // 10) * 10
        assert site["privacy"]["description"] == RULE_TEXT + ", rounded to the nearest 10"


def test_the_tracer_keys_perturb_every_cell_and_every_sum() -> None:
    # The premise of the walk: no cell nor sum of cells of the tracer is released unperturbed.
    for count, key in KEYS.items():
        assert _noise(count, key) != 0, count
    assert set(KEYS) >= {n for counts in CONCEPT_COUNTS.values() for n in counts}
    every = sorted([n for site in SITES.values() for n in _counts(site)] + _merged_counts() + list(KEYS))
    assert all(b - a >= 7 for a, b in itertools.pairwise(sorted(set(every))))
    a, b = SITES["syuh"], SITES["crh"]
    for x, y in itertools.chain(
        ((a[n], b[n]) for n in ("persons", "white", "asian")), zip(a["top"], b["top"], strict=True)
    ):
        assert _noise(x + y, (KEYS[x] + KEYS[y]) % 256) != 0
