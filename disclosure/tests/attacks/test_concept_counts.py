"""Concept counts: the concept search shows, per site, how many persons have a record of each concept. For a
condition whose every record is a first diagnosis in an observation period, that is the same set of persons as the
cohort "first diagnosis of the condition"; a definition's per-rule count "not aged a" subtracted from it gives the
persons aged a — the per-rule attack with the search's number in place of the cohort's.

The site keys the concept counts by their persons, so the concept count of those persons is the very number the
cohort shows (same persons, same cell key), and the attack stays at the per-rule attack's chance.
"""

from __future__ import annotations

import pytest

from cohorts.concept_sets.selectors import concept_counts_for_user
from disclosure.record_keys import record_keys_ensure
from disclosure.rules import NOT_RELEASED
from disclosure.tests.attacks.library import Instance, Outcome, Term, assert_at_chance, assert_attack_works, estimate
from disclosure.tests.attacks.plans import Chain
from disclosure.tests.attacks.portal import Portal, at_site, exact_by_grant, value
from disclosure.tests.attacks.site import Warehouse
from warehouse.models import ConceptCount
from warehouse.vocabulary.counts import concept_counts_refresh


def _released_persons(portal: Portal, chains: list[Chain]) -> dict[int, int | str | None]:
    counts = concept_counts_for_user(portal.researcher, [chain.condition for chain in chains])
    return {
        condition: next(entry["persons"] for entry in entries if entry["source"] == "north")
        for condition, entries in counts.items()
    }


def concept_count_attack(portal: Portal, chains: list[Chain]) -> Outcome:
    shown = _released_persons(portal, chains)
    instances = []
    for chain in chains:
        released = shown[chain.condition]
        number = released if isinstance(released, int) else None
        rules = at_site(portal.release(chain.chain), "north")["inclusion_rules"]
        persons = chain.base.result["persons"]
        for released_rule, true in zip(rules, chain.chain.result["inclusion_rules"], strict=True):
            instances.append(
                Instance(
                    target=persons - true["persons"],
                    estimate=estimate([number, value(released_rule)], [1, -1]),
                    # The cell of the concept's persons: those of the cohort (checked below).
                    terms=(
                        Term(1, "north", persons, chain.base.result["persons_key"]),
                        Term(-1, "north", true["persons"], true["key"]),
                    ),
                )
            )
    return Outcome("concept counts", instances, portal.ptable())


@pytest.mark.django_db
def test_concept_counts_give_a_small_group_no_more_often_than_chance(portal, chains, warehouse: Warehouse) -> None:
    north = portal.sources["north"]
    concept_counts_refresh(
        source=north, engine=warehouse.engine, record_keys=record_keys_ensure(warehouse.engine, source=north)
    )
    # The truth at the site: the persons with a record of the concept are the cohort's (same count).
    stored = dict(ConceptCount.objects.filter(source=portal.sources["north"]).values_list("concept_id", "person_count"))
    same = [chain for chain in chains if stored.get(chain.condition) == chain.base.result["persons"]]
    assert len(same) >= 6, "too few conditions whose concept count is their cohort's persons"

    for chain in same:
        released = _released_persons(portal, same)[chain.condition]
        cohort = at_site(portal.release(chain.base), "north")["persons"]
        # The same persons, the same number.
        assert released != NOT_RELEASED and released == value(cohort), (chain.condition, released, cohort)

    outcome = concept_count_attack(portal, same)
    assert_at_chance(outcome, at_least=140)
    with exact_by_grant():
        assert_attack_works(concept_count_attack(portal, same), at_least=140)
