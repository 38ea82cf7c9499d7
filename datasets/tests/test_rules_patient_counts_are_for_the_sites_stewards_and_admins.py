"""The patient counts of a site's review (its projection) are for that site's data stewards, who decide on them,
and for admins; the requester, the project's members, outsiders and the stewards of other sites see the state
only."""

from __future__ import annotations

import pytest

from datasets import rules
from datasets.tests.conftest import RulesWorld


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
