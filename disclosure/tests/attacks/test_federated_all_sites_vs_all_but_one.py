"""Federated: all sites against all but one. Counting two definitions that differ by a small group on every site,
then on every site but one, and subtracting, gives the group at the site left out: (all sites, larger − smaller)
− (all but one, larger − smaller).

The total of several sites is one cell (its key the sum of the sites' cell keys), perturbed on its own rather than
summed from the sites' perturbed counts, so the four numbers carry four independent noises. Two sites here: GiBleed
at north and at south, each with its own record-key secret.
"""

from __future__ import annotations

import pytest

from disclosure.ptable import KEYS
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
from disclosure.tests.attacks.portal import Portal, exact_by_grant, value
from disclosure.tests.attacks.site import Generated

pytestmark = pytest.mark.django_db


def _merged(north: Generated, south: Generated, sign: int) -> Term:
    """The cell of both sites' cohorts together: counts add, cell keys add modulo 256."""
    count = north.result["persons"] + south.result["persons"]
    return Term(sign, "north+south", count, (north.result["persons_key"] + south.result["persons_key"]) % KEYS)


def _own(generated: Generated, sign: int) -> Term:
    return Term(sign, generated.site, generated.result["persons"], generated.result["persons_key"])


def federated_attack(portal: Portal, federated_pairs: list[tuple[Pair, Pair]]) -> Outcome:
    instances = []
    for north, south in federated_pairs:
        released = [
            portal.release(north.larger, south.larger)["total"],
            portal.release(north.smaller, south.smaller)["total"],
            portal.release(north.larger)["total"],
            portal.release(north.smaller)["total"],
        ]
        assert south.smaller.persons < south.larger.persons
        instances.append(
            Instance(
                target=len(south.larger.persons - south.smaller.persons),
                estimate=estimate([value(total) for total in released], [1, -1, -1, 1]),
                terms=(
                    _merged(north.larger, south.larger, 1),
                    _merged(north.smaller, south.smaller, -1),
                    _own(north.larger, -1),
                    _own(north.smaller, 1),
                ),
            )
        )
    return Outcome("federated: all sites vs all but one", instances, portal.ptable())


def test_all_sites_against_all_but_one_give_a_small_group_no_more_often_than_chance(portal, federated_pairs) -> None:
    outcome = federated_attack(portal, federated_pairs)
    assert all(0 < target < THRESHOLD for target in targets(outcome.instances))
    assert_at_chance(outcome, at_least=20)
    with exact_by_grant():
        assert_attack_works(federated_attack(portal, federated_pairs), at_least=20)
