"""Subtraction between definitions: "first fracture of the forearm, male" and "first fracture of the forearm,
male, not aged 47" are two definitions whose counts, both large, differ by the men aged 47 — a group of 1 to 9.

The two cohorts are different sets of persons, so their cell keys, hence their noises, are independent.
"""

from __future__ import annotations

import pytest

from disclosure.tests.attacks.library import (
    Instance,
    Outcome,
    Term,
    assert_at_chance,
    assert_attack_works,
    estimate,
    targets,
)
from disclosure.tests.attacks.plans import THRESHOLD, Pair
from disclosure.tests.attacks.portal import Portal, at_site, exact_by_grant, value

pytestmark = pytest.mark.django_db


def subtraction_attack(portal: Portal, pairs: list[Pair]) -> Outcome:
    instances = []
    for pair in pairs:
        larger = value(at_site(portal.release(pair.larger), "north")["persons"])
        smaller = value(at_site(portal.release(pair.smaller), "north")["persons"])
        # The truth from the engine's rows: the smaller cohort is the larger one without the group.
        assert pair.smaller.persons < pair.larger.persons
        instances.append(
            Instance(
                target=len(pair.larger.persons - pair.smaller.persons),
                estimate=estimate([larger, smaller], [1, -1]),
                terms=(
                    Term(1, "north", pair.larger.result["persons"], pair.larger.result["persons_key"]),
                    Term(-1, "north", pair.smaller.result["persons"], pair.smaller.result["persons_key"]),
                ),
            )
        )
    return Outcome("subtraction between definitions", instances, portal.ptable())


def test_two_definitions_differing_by_a_small_group_give_it_no_more_often_than_chance(portal, pairs) -> None:
    outcome = subtraction_attack(portal, pairs)
    assert all(0 < target < THRESHOLD for target in targets(outcome.instances))
    assert_at_chance(outcome, at_least=55)
    with exact_by_grant():
        assert_attack_works(subtraction_attack(portal, pairs), at_least=55)
