"""A tracker: the issue's attack on the one female gout patient under 35. The target group T is a condition's
youngest persons (1 to 9, under some age a). Rule 1, "aged a or more", counts everyone but T; each further rule,
"aged a or more, or ever took drug X", counts them plus the members of T who took X. The difference tells which
drugs T's members received — a profile of fewer than 10 persons, from counts that are all large.

Each rule's count is a cell of its own. Where some of the group took the drug, the two counts are different
persons with independent noise. Where none did, they are the same persons and the same number: the difference is
0, which is the truth. That is the price of "the same persons, the same number" (without it, averaging would
remove the noise): a tracker still learns that none of a small group took a drug, though a difference of 0 also
arises by chance when some did (about 1 time in 6 for one person). docs/privacy.md says so.
"""

from __future__ import annotations

import pytest

from disclosure.tests.attacks.library import Instance, Outcome, Term, assert_at_chance, assert_attack_works, estimate
from disclosure.tests.attacks.plans import THRESHOLD, Tracker
from disclosure.tests.attacks.portal import Portal, at_site, exact_by_grant, value
from disclosure.tests.attacks.site import Warehouse

pytestmark = pytest.mark.django_db


def tracker_attack(portal: Portal, trackers: list[Tracker]) -> Outcome:
    instances = []
    for tracker in trackers:
        released = at_site(portal.release(tracker.generated), "north")["inclusion_rules"]
        true = tracker.generated.result["inclusion_rules"]
        everyone_but_target, *with_drugs = zip(released, true, strict=True)
        shown_base, true_base = everyone_but_target
        for shown_rule, true_rule in with_drugs:
            instances.append(
                Instance(
                    target=true_rule["persons"] - true_base["persons"],
                    estimate=estimate([value(shown_rule), value(shown_base)], [1, -1]),
                    terms=(
                        Term(1, "north", true_rule["persons"], true_rule["key"]),
                        Term(-1, "north", true_base["persons"], true_base["key"]),
                    ),
                )
            )
    return Outcome("tracker", instances, portal.ptable())


def test_a_tracker_tells_what_a_small_group_took_no_more_often_than_chance(
    portal, trackers, warehouse: Warehouse
) -> None:
    for tracker in trackers:
        # The target group, from the engine's rows: the condition's persons under the tracker's age, fewer than 10;
        # rule 1 counts all the others.
        younger = sum(n for age, n in warehouse.ages(tracker.base).items() if age < tracker.age)
        assert 0 < younger < THRESHOLD
        assert tracker.generated.result["inclusion_rules"][0]["persons"] == len(tracker.base.persons) - younger
    outcome = tracker_attack(portal, trackers)
    assert_at_chance(outcome, at_least=150)
    # Where nobody of the group took the drug, both rules count the same persons: the same number, a difference of
    # 0, every time (the method's promise, not luck). Where somebody did, the difference is exact by chance only.
    none_took = Outcome(outcome.attack, [i for i in outcome.instances if i.target == 0], outcome.ptable)
    some_took = Outcome(outcome.attack, [i for i in outcome.instances if i.target > 0], outcome.ptable)
    print(f"  nobody took the drug: {none_took.summary()}")
    assert none_took.recovered == none_took.tried
    assert_at_chance(some_took, at_least=50)
    with exact_by_grant():
        assert_attack_works(tracker_attack(portal, trackers), at_least=150)
