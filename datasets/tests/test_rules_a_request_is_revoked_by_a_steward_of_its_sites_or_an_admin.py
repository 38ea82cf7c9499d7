"""A request is revoked by a data steward of one of its sites or by an admin; not by its requester, the project's
members, an outsider or the steward of a site it does not ask."""

from __future__ import annotations

import pytest

from datasets import rules
from datasets.tests.conftest import RulesWorld


@pytest.mark.parametrize("who", ["steward_a", "steward_b", "admin"])
def test_a_steward_of_either_site_or_an_admin_revokes(rules_world: RulesWorld, who: str) -> None:
    assert rules.can_revoke(getattr(rules_world, who), rules_world.request)


@pytest.mark.parametrize("who", ["partner", "alice", "bob", "charlie", "steward_c"])
def test_the_requester_members_outsiders_and_another_sites_steward_do_not(rules_world: RulesWorld, who: str) -> None:
    verdict = rules.can_revoke(getattr(rules_world, who), rules_world.request)
    assert not verdict
    assert str(verdict) == "Only a steward of one of the sites or an admin revokes a request."
