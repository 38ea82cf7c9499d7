"""A site's review is decided by a data steward of that site, and by nobody else: not a steward of the request's
other site or of another site, not an admin, not the project's members, and never by the requester, even when the
requester is that site's steward."""

from __future__ import annotations

import pytest

from datasets import rules
from datasets.models import DatasetRequest
from datasets.tests.conftest import RulesWorld

ONLY_THE_SITES_STEWARD = "Only a data steward of this site decides for it."


def test_each_sites_steward_decides_the_review_of_their_site(rules_world: RulesWorld) -> None:
    w = rules_world
    assert rules.can_decide_review(w.steward_a, w.review_a)
    assert rules.can_decide_review(w.steward_b, w.review_b)


def test_a_steward_of_the_requests_other_site_does_not_decide_this_one(rules_world: RulesWorld) -> None:
    w = rules_world
    verdict = rules.can_decide_review(w.steward_b, w.review_a)
    assert not verdict and str(verdict) == ONLY_THE_SITES_STEWARD
    assert not rules.can_decide_review(w.steward_a, w.review_b)


@pytest.mark.parametrize("who", ["steward_c", "admin", "alice", "bob", "charlie"])
def test_a_steward_of_another_site_an_admin_members_and_outsiders_do_not_decide(
    rules_world: RulesWorld, who: str
) -> None:
    w = rules_world
    for review in (w.review_a, w.review_b):
        verdict = rules.can_decide_review(getattr(w, who), review)
        assert not verdict and str(verdict) == ONLY_THE_SITES_STEWARD


def test_the_requester_never_decides_their_own_request_even_as_the_sites_steward(rules_world: RulesWorld) -> None:
    w = rules_world
    verdict = rules.can_decide_review(w.partner, w.review_a)
    assert not verdict and str(verdict) == "Nobody approves or rejects their own request."

    DatasetRequest.objects.filter(pk=w.request.pk).update(requester=w.steward_a)
    w.review_a.refresh_from_db()
    verdict = rules.can_decide_review(w.steward_a, w.review_a)
    assert not verdict and str(verdict) == "Nobody approves or rejects their own request."
    # The other site's steward still decides for theirs.
    w.review_b.refresh_from_db()
    assert rules.can_decide_review(w.steward_b, w.review_b)
