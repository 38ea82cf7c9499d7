"""Subtraction attacks on a cohort comparison: the union, each cohort's total (also released on its own count
page) and the shown combinations must not give back any hidden combination, whatever the sizes.

The attacker here is the strongest one: exact counts (an exact-count grant, no perturbation) and every linear
combination of what is released (numpy's rank over the released equations, an implementation of its own). With
perturbation each released number carries its own noise on top; suppression must hold without it.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from accounts.choices import Role
from accounts.tests.factories import OrganisationFactory, SourceFactory, UserFactory, make_project
from cohorts.definitions.services import definition_create
from cohorts.runs.comparison_selectors import comparison_csv, comparison_result
from cohorts.runs.models import Comparison, ComparisonCohort, ComparisonRun
from cohorts.runs.overlap import all_masks
from cohorts.runs.selectors import run_request_result
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import count_request, unperturbed_key
from disclosure.overlaps import protect_overlap
from disclosure.rules import PrivacyRule, protect_breakdown
from jobs.choices import JobState

EXACT = PrivacyRule(min_cell=10)


def _totals(k: int, cells: dict[int, int]) -> list[int]:
    return [sum(n for mask, n in cells.items() if mask & (1 << i)) for i in range(k)]


def _released(k: int, cells: dict[int, int], rule: PrivacyRule = EXACT) -> tuple[Any, Any, Any, list[int]]:
    masks = all_masks(k)
    union = sum(cells.values())
    totals = _totals(k, cells)
    shown_union, shown_totals, shown_cells = protect_overlap(
        (union, 0), [(cells.get(m, 0), 0) for m in masks], masks, [(t, 0) for t in totals], rule
    )
    return shown_union, shown_totals, shown_cells, masks


def attacker_recovers(k: int, cells: dict[int, int]) -> list[int]:
    """The hidden combinations (with members) that the released numbers determine exactly: for each, whether its
    unit vector lies in the span of the released equations over the hidden cells (numpy's rank)."""
    shown_union, shown_totals, shown_cells, masks = _released(k, cells)
    if shown_cells is None:
        # Nothing but the cohorts' totals is released, which their own count pages release anyway.
        assert shown_union.hidden
        return []
    rows = []
    if not shown_union.hidden:
        rows.append([1] * len(masks))
    for i, total in enumerate(shown_totals):
        if not total.hidden:
            rows.append([1 if m & (1 << i) else 0 for m in masks])
    unknown = [j for j, (m, c) in enumerate(zip(masks, shown_cells, strict=True)) if c.hidden and cells.get(m, 0)]
    if not rows or not unknown:
        return []
    a = np.array([[row[j] for j in unknown] for row in rows], dtype=float)
    rank = np.linalg.matrix_rank(a)
    found = []
    for position, j in enumerate(unknown):
        unit = np.zeros(len(unknown))
        unit[position] = 1.0
        if np.linalg.matrix_rank(np.vstack([a, unit])) == rank:
            found.append(masks[j])
    return found


def test_a_cohorts_total_minus_its_other_shown_combinations_would_give_a_hidden_one_back() -> None:
    """Why a breakdown's suppression is not enough: under the union alone, hiding "A ∩ B ∩ C" (3) with its
    smallest partner keeps the union safe, but A's own total minus A's other combinations gives it back."""
    cells = {1: 300, 2: 250, 4: 40, 3: 60, 5: 45, 6: 120, 7: 3}
    masks = all_masks(3)
    union = sum(cells.values())
    plain = protect_breakdown((union, 0), [(cells[m], 0) for m in masks], EXACT)
    assert plain is not None
    hidden = [m for m, p in zip(masks, plain, strict=True) if p.hidden]
    assert hidden == [4, 7]  # "C only" (40) hides with "A ∩ B ∩ C" (3)
    shown = {m: p.value for m, p in zip(masks, plain, strict=True) if not p.hidden}
    total_a = _totals(3, cells)[0]
    # A = A only + A∩B + A∩C + A∩B∩C: the one hidden term is the subtraction's result.
    assert total_a - shown[1] - shown[3] - shown[5] == 3

    shown_union, shown_totals, protected, _ = _released(3, cells)
    assert not shown_union.hidden and protected is not None
    assert attacker_recovers(3, cells) == []
    by_mask = dict(zip(masks, protected, strict=True))
    assert by_mask[7].display == "<10"
    values = {p.value for p in protected if not p.hidden}
    assert total_a - sum(by_mask[m].value or 0 for m in (1, 3, 5)) != 3 or by_mask[1].hidden or by_mask[3].hidden
    assert sum(1 for p in protected if not p.hidden) >= 3  # still a useful chart
    assert 3 not in values


def test_two_cohorts_with_a_small_cell_release_no_union_at_all() -> None:
    """With two cohorts, A ∩ B = A + B - union: any hidden cell comes back from the union and the totals alone,
    so the union is withheld ("—", not "<10": the totals beside it are large) and no cell is shown."""
    cells = {1: 500, 2: 300, 3: 4}
    shown_union, shown_totals, protected, _ = _released(2, cells)
    assert protected is None
    assert shown_union.hidden and shown_union.display == "—"
    assert [t.value for t in shown_totals] == [504, 304]  # the totals, as their count pages show them
    assert attacker_recovers(2, cells) == []


def test_two_cohorts_without_a_small_cell_show_every_combination() -> None:
    cells = {1: 500, 2: 300, 3: 40}
    shown_union, _, protected, _ = _released(2, cells)
    assert shown_union.value == 840
    assert protected is not None and [p.value for p in protected] == [500, 300, 40]


def test_a_cohort_inside_another_lists_its_empty_combination_like_a_hidden_one() -> None:
    """B inside A: "B only" is empty. It is listed ("<10", as any hidden cell) and reveals nothing."""
    cells = {1: 500, 2: 0, 3: 40}
    shown_union, _, protected, _ = _released(2, cells)
    assert protected is not None
    assert [p.display for p in protected] == ["500", "<10", "40"]
    assert attacker_recovers(2, cells) == []


@pytest.mark.parametrize("k", [2, 3, 4])
def test_no_random_overlap_gives_a_hidden_combination_back(k: int) -> None:
    generator = random.Random(20261204 + k)
    masks = all_masks(k)
    released_any = 0
    for _ in range(300):
        cells = {m: generator.choice([0, 1, 2, 5, 9, 10, 12, 30, 80, 400]) for m in masks}
        if sum(cells.values()) == 0:
            continue
        assert attacker_recovers(k, cells) == [], cells
        _, _, protected, _ = _released(k, cells)
        released_any += protected is not None and any(not p.hidden for p in protected)
    assert released_any > 20  # the protection does not simply withhold everything


# --- through the service layer, as the page, the API and the CSV get it ----------------------------------------


@pytest.fixture
def two_sites(db: Any) -> Any:
    hospital, other = OrganisationFactory(), OrganisationFactory()
    big = SourceFactory(key="big", organisation=hospital, fingerprint="a" * 64)
    small = SourceFactory(key="small", organisation=other, fingerprint="b" * 64)
    alice = UserFactory(username="alice", organisation=hospital)
    admin = UserFactory(username="admin", role=Role.ADMIN, organisation=hospital)
    project = make_project(principal_investigator=alice, created_by=admin, sources=[big, small])
    versions = [
        definition_create(owner=alice, name=name, expression=EXPRESSION, project=project).latest_version()
        for name in ("Diabetes", "Kidney disease", "Statins")
    ]
    return versions, alice, big, small


def _finished_comparison(versions: list[Any], user: Any, per_site: dict[Any, dict[int, int]]) -> Comparison:
    """A comparison whose sites' workers stored these combinations (each with the key that leaves it unperturbed)."""
    comparison = Comparison.objects.create(requested_by=user)
    for position, version in enumerate(versions):
        ComparisonCohort.objects.create(comparison=comparison, position=position, version=version)
    k = len(versions)
    for source, cells in per_site.items():
        totals = _totals(k, cells)
        result = {
            "cohorts": [{"persons": t, "key": unperturbed_key(t)} for t in totals],
            "combinations": [
                {"mask": m, "persons": cells.get(m, 0), "key": unperturbed_key(cells.get(m, 0))} for m in all_masks(k)
            ],
            "union": {"persons": sum(cells.values()), "key": unperturbed_key(sum(cells.values()))},
        }
        ComparisonRun.objects.create(comparison=comparison, source=source, state=JobState.SUCCEEDED, result=result)
    return comparison


def test_the_page_csv_and_merge_keep_every_hidden_combination_hidden(two_sites: Any) -> None:
    versions, alice, big, small = two_sites
    big_cells = {1: 300, 2: 250, 4: 40, 3: 60, 5: 45, 6: 120, 7: 3}
    small_cells = {1: 30, 2: 25, 4: 14, 3: 16, 5: 15, 6: 12, 7: 11}
    comparison = _finished_comparison(versions, alice, {big: big_cells, small: small_cells})

    result = comparison_result(comparison=comparison, role="researcher")

    sites = {site["source"]: site for site in result["sites"]}
    big_shown = {c["mask"]: c for c in sites["big"]["combinations"]}
    assert big_shown[7]["display"] == "<10" and big_shown[7]["value"] is None
    # A's total on the comparison is its count page's number: same persons, same key, same rule.
    count = run_request_result(
        request=count_request(versions[0], alice, {big: _totals(3, big_cells)[0]}), role="researcher"
    )
    assert sites["big"]["cohorts"][0]["display"] == count["sites"][0]["persons"]["display"]
    # No subtraction of A's shown combinations from its total gives the hidden 3.
    hidden_a = [m for m in (1, 3, 5, 7) if big_shown[m]["hidden"]]
    assert len(hidden_a) >= 2
    # Merged: a combination hidden at a site is "the other sites + <10", never a number.
    merged = {c["mask"]: c for c in result["merged"]["combinations"]}
    for mask, cell in big_shown.items():
        if cell["hidden"]:
            assert merged[mask]["value"] is None and merged[mask]["display"].endswith("+ <10")
            assert merged[mask]["percent"] is None
    csv_cells = [row.split(",") for row in comparison_csv(result).splitlines()]
    big_rows = [row for row in csv_cells if row[0] == "big" and row[1] == "combination"]
    assert [row for row in big_rows if row[2] == "A ∩ B ∩ C"][0][6] == "<10"
    assert all(row[6] != "3" for row in big_rows)


def test_a_site_whose_union_is_small_shows_no_combination_and_no_merged_one(two_sites: Any) -> None:
    versions, alice, big, small = two_sites
    comparison = _finished_comparison(versions[:2], alice, {big: {1: 300, 2: 250, 3: 60}, small: {1: 3, 2: 2, 3: 1}})
    result = comparison_result(comparison=comparison, role="partner")
    sites = {site["source"]: site for site in result["sites"]}
    assert sites["small"]["breakdown_withheld"] and sites["small"]["combinations"] == []
    assert sites["small"]["union"]["display"] == "<10"
    assert result["merged"]["breakdown_withheld"] and result["merged"]["combinations"] == []
    assert result["merged"]["union"]["display"].endswith("+ <10")
    text = comparison_csv(result)
    assert ",3," not in text and ",6," not in text
