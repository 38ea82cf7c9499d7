"""Submitting, withdrawing and downloading are the requester's alone: not a member of the project, not an
outsider, not a steward of one of its sites or of another site, not even an admin."""

from __future__ import annotations

import pytest

from datasets import rules
from datasets.tests.conftest import RulesWorld

OTHERS = ("alice", "bob", "charlie", "steward_a", "steward_b", "steward_c", "admin")


def test_the_requester_submits_withdraws_and_downloads_their_own_request(rules_world: RulesWorld) -> None:
    w = rules_world
    assert rules.can_submit(w.partner, w.request)
    assert rules.can_withdraw(w.partner, w.request)
    assert rules.can_download(w.partner, w.extract_a)


@pytest.mark.parametrize("who", OTHERS)
def test_nobody_else_submits_withdraws_or_downloads_it_and_is_told_why(rules_world: RulesWorld, who: str) -> None:
    w = rules_world
    user = getattr(w, who)
    answers = {
        "Only the requester submits a request.": rules.can_submit(user, w.request),
        "Only the requester withdraws a request.": rules.can_withdraw(user, w.request),
        "Only the requester downloads the dataset.": rules.can_download(user, w.extract_a),
    }
    for message, verdict in answers.items():
        assert not verdict
        assert str(verdict) == message
