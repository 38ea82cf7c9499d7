"""Per-rule counts: a condition's first diagnosis counts N; the same definition with the rule "not aged a" says
how many meet that rule. N minus that is the number of persons aged a — a group of 1 to 9, never shown itself.

With the cell-key method the two numbers carry independent noise: the difference is the true group only when the
two adjustments happen to be equal (about 1 time in 5 for large counts). Without it the attack never misses.
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


def per_rule_attack(portal: Portal, chains: list[Chain]) -> Outcome:
    instances = []
    for chain in chains:
        total = value(at_site(portal.release(chain.base), "north")["persons"])
        released_rules = at_site(portal.release(chain.chain), "north")["inclusion_rules"]
        true_total, total_key = chain.base.result["persons"], chain.base.result["persons_key"]
        for released, true in zip(released_rules, chain.chain.result["inclusion_rules"], strict=True):
            assert released["name"] == true["name"]
            instances.append(
                Instance(
                    target=true_total - true["persons"],
                    estimate=estimate([total, value(released)], [1, -1]),
                    terms=(Term(1, "north", true_total, total_key), Term(-1, "north", true["persons"], true["key"])),
                )
            )
    return Outcome("per-rule counts", instances, portal.ptable())


def test_per_rule_counts_give_a_small_group_no_more_often_than_chance(portal, chains) -> None:
    outcome = per_rule_attack(portal, chains)
    assert all(0 < target < THRESHOLD for target in targets(outcome.instances))
    assert_at_chance(outcome, at_least=200)
    with exact_by_grant():
        assert_attack_works(per_rule_attack(portal, chains), at_least=200)
