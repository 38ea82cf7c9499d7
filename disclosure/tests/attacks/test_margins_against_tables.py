"""Margins against tables: a table's margin minus its shown cells is the sum of its hidden cells. The issue's
example: essential hypertension, men 1,355 and the men's row of the age pyramid shown but for 90+, so 90+ = 1,355 −
1,353 = 2. Here every breakdown of a cohort is attacked so: each sex's row of the age pyramid against that sex's
count in the sex table, and every table (sex, race, ethnicity, index period, the whole pyramid) against the
cohort's total.

A margin is a cell of its own (its persons' cell key), perturbed on its own rather than summed from the cells, so
the estimate carries the noise of the margin and of every shown cell. When the hidden cells hold persons, the
margin's key is independent of the shown cells' keys; when they are all empty, it is the sum of them, and the
chance of an exact estimate follows from the ptable's layout (``library.chance``).

An instance where one shown cell holds every person of its margin (all persons of one race, say) is the same set
of persons as the margin, hence the same number: the hidden cells are then known to be empty, with or without
perturbation, as they are from any table whose only shown cell equals its total. Those are counted apart and
left out of the rate (their chance is 1 by construction, not by luck).
"""

from __future__ import annotations

from typing import Any

import pytest

from cohorts.runs.breakdowns import GENDERS, fixed_buckets
from disclosure.tests.attacks.library import Instance, Outcome, Term, assert_at_chance, assert_attack_works, chance
from disclosure.tests.attacks.portal import Portal, at_site, exact_by_grant, value
from disclosure.tests.attacks.site import Generated

pytestmark = pytest.mark.django_db

TABLES = ("gender", "race", "ethnicity", "index_year", "age_pyramid")


def _groups(generated: Generated, shown: dict[str, Any]) -> list[tuple[Any, Any, list[Any], list[dict]]]:
    """(true margin cell, released margin, true cells, released cells) of every margin and the cells it adds up."""
    buckets = fixed_buckets(generated.result["demographics"])
    total = (generated.result["persons"], generated.result["persons_key"])
    groups = [
        (total, shown["persons"], [cell for _, cell in buckets[t]], [row["persons"] for row in shown[t]])
        for t in TABLES
    ]
    sexes = {
        labels["concept_id"]: (cell, row["persons"])
        for (labels, cell), row in zip(buckets["gender"], shown["gender"], strict=True)
    }
    for concept_id, _ in GENDERS:
        row = [i for i, (labels, _) in enumerate(buckets["age_pyramid"]) if labels["gender_concept_id"] == concept_id]
        margin, released_margin = sexes[concept_id]
        groups.append(
            (
                margin,
                released_margin,
                [buckets["age_pyramid"][i][1] for i in row],
                [shown["age_pyramid"][i]["persons"] for i in row],
            )
        )
    return groups


def margins_attack(portal: Portal, cohorts: list[Generated]) -> tuple[Outcome, int]:
    """The attack over every cohort's tables; also the number of instances left out as the same persons."""
    instances, same_persons = [], 0
    ptable = portal.ptable()
    for generated in cohorts:
        shown = at_site(portal.release(generated), "north")["demographics"]
        for margin, released_margin, cells, released_cells in _groups(generated, shown):
            hidden = [i for i, released in enumerate(released_cells) if released["hidden"]]
            visible = [i for i, released in enumerate(released_cells) if not released["hidden"]]
            if released_margin["hidden"] or not hidden or not visible:
                continue
            target = sum(cells[i][0] for i in hidden)
            instance = Instance(
                target=target,
                estimate=value(released_margin) - sum(value(released_cells[i]) for i in visible),
                terms=(Term(1, "north", *margin), *(Term(-1, "north", *cells[i]) for i in visible)),
                # Hidden cells all empty: the margin is exactly the shown cells' persons, its key their keys' sum.
                keys_add_up=target == 0,
            )
            if chance(instance, ptable) > 1 - 1e-9:
                same_persons += 1
                continue
            instances.append(instance)
    return Outcome("margins against tables", instances, ptable), same_persons


def test_a_margin_minus_the_shown_cells_gives_the_hidden_ones_no_more_often_than_chance(portal, broken_down) -> None:
    outcome, same_persons = margins_attack(portal, broken_down)
    print(f"margins against tables: {same_persons} instances left out (one shown cell holds all of its margin)")
    for empty in (True, False):
        part = Outcome(outcome.attack, [i for i in outcome.instances if i.keys_add_up is empty], outcome.ptable)
        print(f"  hidden cells {'all empty' if empty else 'holding persons'}: {part.summary()}")
    assert_at_chance(outcome, at_least=100)
    with exact_by_grant():
        exact, _ = margins_attack(portal, broken_down)
        assert_attack_works(exact, at_least=100)
