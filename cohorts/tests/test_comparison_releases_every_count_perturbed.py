"""Every count a comparison releases is perturbed: its page, status JSON, CSV and API never show a true count.

The tracer (as ``test_every_released_count_is_perturbed``): two sites whose combinations, cohort totals and union
are distinct numbers over 1,000, at least 7 apart, each with a cell key whose noise is never
0 — nor that of any merged number (the sum of the sites' cells and keys). A true count seen anywhere, as "1,357"
or "1357", would be a count released unperturbed.
"""

from __future__ import annotations

import itertools
import random
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.api.tokens import token_create
from accounts.tests.factories import make_project
from cohorts.definitions.services import definition_create
from cohorts.runs.models import Comparison, ComparisonCohort, ComparisonRun
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import DEFAULT_PTABLE
from disclosure.ptable import KEYS
from jobs.choices import JobState

pytestmark = pytest.mark.django_db

#: Per site, the persons of "A only", "B only", "A ∩ B": every total, union and merged sum distinct and > 1,000.
SITES = {"north": {1: 1357, 2: 2468, 3: 1579}, "south": {1: 1123, 2: 1231, 3: 1303}}


def _noisy(count: int, key: int) -> bool:
    adjustments = DEFAULT_PTABLE.adjustments(count)
    return adjustments is not None and adjustments[key] != 0


def _keys(generator: random.Random) -> dict[str, dict[int, int]]:
    """Cell keys for every site's combinations such that every released number has a noise (see the module)."""
    while True:
        keys = {site: {mask: generator.randrange(KEYS) for mask in cells} for site, cells in SITES.items()}
        numbers: list[tuple[int, int]] = []
        for site, cells in SITES.items():
            numbers += [(cells[m], keys[site][m]) for m in cells]
            numbers.append((cells[1] + cells[3], (keys[site][1] + keys[site][3]) % KEYS))
            numbers.append((cells[2] + cells[3], (keys[site][2] + keys[site][3]) % KEYS))
            numbers.append((sum(cells.values()), sum(keys[site].values()) % KEYS))
        for mask in (1, 2, 3):
            numbers.append((sum(c[mask] for c in SITES.values()), sum(k[mask] for k in keys.values()) % KEYS))
        for subset in ((1, 3), (2, 3), (1, 2, 3)):
            numbers.append(
                (
                    sum(c[m] for c in SITES.values() for m in subset),
                    sum(k[m] for k in keys.values() for m in subset) % KEYS,
                )
            )
        if all(_noisy(n, key) for n, key in numbers):
            return keys


def _truths() -> set[int]:
    truths: set[int] = set()
    for cells in SITES.values():
        truths |= set(cells.values()) | {cells[1] + cells[3], cells[2] + cells[3], sum(cells.values())}
    for subset in ((1,), (2,), (3,), (1, 3), (2, 3), (1, 2, 3)):
        truths.add(sum(c[m] for c in SITES.values() for m in subset))
    return truths


def test_no_output_of_a_comparison_shows_a_true_count(alice: Any, steward: Any, hospital: Any) -> None:
    from accounts.tests.factories import SourceFactory

    sources = [SourceFactory(key=key, organisation=hospital, fingerprint=key[0] * 64) for key in SITES]
    project = make_project(principal_investigator=alice, created_by=steward, sources=sources)
    versions = [
        definition_create(owner=alice, name=name, expression=EXPRESSION, project=project).latest_version()
        for name in ("Asthma", "Eczema")
    ]
    comparison = Comparison.objects.create(requested_by=alice)
    for position, version in enumerate(versions):
        ComparisonCohort.objects.create(comparison=comparison, position=position, version=version)
    keys = _keys(random.Random(17))
    for source in sources:
        cells, key = SITES[source.key], keys[source.key]
        result = {
            "cohorts": [
                {"persons": cells[1] + cells[3], "key": (key[1] + key[3]) % KEYS},
                {"persons": cells[2] + cells[3], "key": (key[2] + key[3]) % KEYS},
            ],
            "combinations": [{"mask": m, "persons": cells[m], "key": key[m]} for m in (1, 2, 3)],
            "union": {"persons": sum(cells.values()), "key": sum(key.values()) % KEYS},
        }
        ComparisonRun.objects.create(comparison=comparison, source=source, state=JobState.SUCCEEDED, result=result)
    truths = _truths()
    assert len(truths) == 18 and all(abs(a - b) >= 7 for a, b in itertools.combinations(truths, 2))

    browser = Client()
    browser.force_login(alice)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=alice, name='notebook', days=30).secret}")
    outputs = {
        "page": browser.get(reverse("cohorts:comparison_detail", args=[comparison.pk])).content.decode(),
        "status": browser.get(reverse("cohorts:comparison_status", args=[comparison.pk])).content.decode(),
        "csv": browser.get(reverse("cohorts:comparison_csv", args=[comparison.pk])).content.decode(),
        "api": api.get(reverse("api:comparison-detail", args=[comparison.pk])).content.decode(),
    }
    status = browser.get(reverse("cohorts:comparison_status", args=[comparison.pk])).json()
    released = [
        cell["value"]
        for block in [*status["sites"], status["merged"]]
        for cell in [block["union"], *block["cohorts"], *block["combinations"]]
    ]
    assert all(value is not None for value in released)  # every number shown: nothing here is small
    for name, text in outputs.items():
        assert "perturbed (at most " in text, name
        for truth in truths:
            for spelling in (f"{truth:,}", str(truth)):
                assert not re.search(rf"(?<![\d,.]){re.escape(spelling)}(?![\d,])", text), (name, truth)
