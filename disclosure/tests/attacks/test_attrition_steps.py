"""Attrition steps: each rule "not aged a" of a definition removes the persons aged a, so two consecutive steps
differ by that group (the first step against the count of the first diagnosis alone). The issue's example: gout
76, "age ≥ 30" 72, so 4 persons under 30.

Every step is a cell of its own with its own cell key, so consecutive steps carry independent noise.
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
from disclosure.tests.attacks.plans import THRESHOLD, Chain
from disclosure.tests.attacks.portal import Portal, at_site, exact_by_grant, value

pytestmark = pytest.mark.django_db


def attrition_attack(portal: Portal, chains: list[Chain]) -> Outcome:
    instances = []
    for chain in chains:
        entry = at_site(portal.release(chain.base), "north")["persons"]
        steps = at_site(portal.release(chain.chain), "north")["attrition"]
        true_entry = {"persons": chain.base.result["persons"], "key": chain.base.result["persons_key"]}
        true_steps = [true_entry, *chain.chain.result["attrition"]]
        released_steps = [entry, *steps]
        for j in range(1, len(true_steps)):
            before, after = true_steps[j - 1], true_steps[j]
            instances.append(
                Instance(
                    target=before["persons"] - after["persons"],
                    estimate=estimate([value(released_steps[j - 1]), value(released_steps[j])], [1, -1]),
                    terms=(
                        Term(1, "north", before["persons"], before["key"]),
                        Term(-1, "north", after["persons"], after["key"]),
                    ),
                )
            )
    return Outcome("attrition steps", instances, portal.ptable())


def test_consecutive_attrition_steps_give_a_small_group_no_more_often_than_chance(portal, chains) -> None:
    outcome = attrition_attack(portal, chains)
    assert all(0 < target < THRESHOLD for target in targets(outcome.instances))
    assert_at_chance(outcome, at_least=200)
    with exact_by_grant():
        assert_attack_works(attrition_attack(portal, chains), at_least=200)
