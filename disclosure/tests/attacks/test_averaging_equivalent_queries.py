"""Averaging: asking the same thing many times, or in different words, and averaging the answers. With noise
drawn afresh per query (Leaf, i2b2), the average converges on the truth. With the cell-key method the noise is a
function of the persons counted, so every way of asking for the same persons gives the same number, and the
average is the single answer.

The ways of asking: the same definition again (a new definition, a new run, a new cohort id); the concept set of
the diagnosis listed concept by concept instead of "with descendants"; the rules in reverse order; each rule
"not aged a" written as "younger than a, or older than a". Every released number that counts the same persons must
be identical — the totals, each rule's count and the whole demographic breakdown — and the per-rule subtraction
attack, averaged over all the ways of asking, recovers a small group no more often than it does from one.
"""

from __future__ import annotations

import pytest

from disclosure.tests.attacks.library import Instance, Outcome, Term, assert_at_chance, assert_attack_works
from disclosure.tests.attacks.plans import Variants
from disclosure.tests.attacks.portal import Portal, at_site, exact_by_grant, value

pytestmark = pytest.mark.django_db


def averaging_attack(portal: Portal, variants: list[Variants]) -> Outcome:
    instances = []
    for variant in variants:
        totals = [value(at_site(portal.release(base), "north")["persons"]) for base in variant.bases]
        rules = [
            {rule["name"]: value(rule) for rule in at_site(portal.release(chain), "north")["inclusion_rules"]}
            for chain in variant.chains
        ]
        base = variant.bases[0].result
        for true in variant.chains[0].result["inclusion_rules"]:
            differences = [total - asked[true["name"]] for total in totals for asked in rules]  # type: ignore[operator]
            instances.append(
                Instance(
                    target=base["persons"] - true["persons"],
                    estimate=round(sum(differences) / len(differences)),
                    terms=(
                        Term(1, "north", base["persons"], base["persons_key"]),
                        Term(-1, "north", true["persons"], true["key"]),
                    ),
                )
            )
    return Outcome("averaging equivalent queries", instances, portal.ptable())


def test_every_way_of_asking_for_the_same_persons_gives_the_same_numbers(portal, variants) -> None:
    for variant in variants:
        # The truth: every variant counts the same persons.
        assert len({base.persons for base in variant.bases}) == 1
        assert len({chain.persons for chain in variant.chains}) == 1
        bases = [at_site(portal.release(base), "north") for base in variant.bases]
        for other in bases[1:]:
            assert other["persons"] == bases[0]["persons"]
            assert other["demographics"] == bases[0]["demographics"]
        chains = [at_site(portal.release(chain), "north") for chain in variant.chains]
        by_rule = [sorted(chain["inclusion_rules"], key=lambda rule: rule["name"]) for chain in chains]
        for other, chain in zip(by_rule[1:], chains[1:], strict=True):
            assert chain["persons"] == chains[0]["persons"]
            assert other == by_rule[0]
        # The last attrition step is the cohort itself, whatever the order of the rules.
        assert len({chain["attrition"][-1]["value"] for chain in chains} | {chains[0]["persons"]["value"]}) == 1


def test_averaging_equivalent_queries_gives_a_small_group_no_more_often_than_one_query(portal, variants) -> None:
    outcome = averaging_attack(portal, variants)
    assert_at_chance(outcome, at_least=60)
    with exact_by_grant():
        assert_attack_works(averaging_attack(portal, variants), at_least=60)
