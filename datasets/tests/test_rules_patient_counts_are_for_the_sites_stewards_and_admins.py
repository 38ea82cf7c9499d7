"""The patient counts of a site's review (its projection) are for that site's data stewards, who decide on them,
and for admins; the requester, the project's members, outsiders and the stewards of other sites see the state
only. The stewards see them exact; admins see each count perturbed with its own cell key under the site's rule
(expected values from the ptable itself, ``disclosure.cellkey.perturb``)."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.choices import Role
from datasets import rules
from datasets.tests.conftest import RulesWorld
from disclosure.cellkey import perturb
from disclosure.selectors import rule_for


@pytest.mark.parametrize("who", ["steward_a", "admin"])
def test_the_sites_steward_and_admins_see_the_counts(rules_world: RulesWorld, who: str) -> None:
    assert rules.can_see_review_counts(getattr(rules_world, who), rules_world.review_a)


@pytest.mark.parametrize("who", ["partner", "alice", "bob", "charlie", "steward_b", "steward_c"])
def test_nobody_else_sees_them_not_even_the_steward_of_the_requests_other_site(
    rules_world: RulesWorld, who: str
) -> None:
    verdict = rules.can_see_review_counts(getattr(rules_world, who), rules_world.review_a)
    assert not verdict
    assert str(verdict) == "The patient counts of a site's review are for its data stewards and the admins."


def _projected(review: Any, keys: dict[str, int] | None) -> None:
    """The review as its site's worker records a projection: 137 persons and their rows, with cell keys (or
    without, as recorded before the sites computed keys)."""
    review.cohort_persons = 137
    review.projected_rows = {"person": 137, "condition_occurrence": 2345, "drug_exposure": 3}
    review.cohort_persons_key = None if keys is None else keys["person"]
    review.projected_row_keys = keys or {}
    review.save()


def _perturbed(count: int, key: int, source: Any) -> int:
    ptable = rule_for(source=source, role=Role.ADMIN).ptable
    assert ptable is not None
    value = perturb(count, key, ptable)
    assert value is not None
    return value


def test_the_sites_steward_sees_the_projection_exact_and_an_admin_perturbed_with_each_cells_key(
    rules_world: RulesWorld,
) -> None:
    w = rules_world
    keys = {"person": 201, "condition_occurrence": 17, "drug_exposure": 90}
    _projected(w.review_a, keys)

    steward = rules.review_counts_as_seen_by(w.steward_a, w.review_a)
    assert steward == {
        "cohort_persons": 137,
        "projected_rows": {"person": 137, "condition_occurrence": 2345, "drug_exposure": 3},
        "rule": "exact, for the site's data stewards",
    }
    admin = rules.review_counts_as_seen_by(w.admin, w.review_a)
    source = w.review_a.source
    assert admin == {
        "cohort_persons": _perturbed(137, 201, source),
        "projected_rows": {
            "person": _perturbed(137, 201, source),
            "condition_occurrence": _perturbed(2345, 17, source),
            "drug_exposure": "<10",
        },
        "rule": rule_for(source=source, role=Role.ADMIN).describe(),
    }
    assert admin["rule"].startswith("perturbed")


def test_a_projection_recorded_without_cell_keys_is_not_released_to_admins(rules_world: RulesWorld) -> None:
    w = rules_world
    _projected(w.review_a, None)
    admin = rules.review_counts_as_seen_by(w.admin, w.review_a)
    assert admin is not None
    assert admin["cohort_persons"] == "not released (count again)"
    assert admin["projected_rows"]["condition_occurrence"] == "not released (count again)"
    seen = rules.review_counts_as_seen_by(w.steward_a, w.review_a)
    assert seen is not None and seen["cohort_persons"] == 137


@pytest.mark.parametrize("who", ["partner", "alice", "bob", "charlie", "steward_b", "steward_c"])
def test_nobody_else_gets_the_projection_in_any_form(rules_world: RulesWorld, who: str) -> None:
    _projected(rules_world.review_a, {"person": 201, "condition_occurrence": 17, "drug_exposure": 90})
    assert rules.review_counts_as_seen_by(getattr(rules_world, who), rules_world.review_a) is None
