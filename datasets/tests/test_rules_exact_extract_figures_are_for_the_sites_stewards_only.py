"""The exact figures of an extract (the cohort size, the persons suppressed for k-anonymity, the cap) are for the
site's own data stewards only: admins, the requester and everybody else who sees the extract get the manifest as
it is in the requester's file, with the cohort size perturbed under the site's rule."""

from __future__ import annotations

import pytest

from datasets import rules
from datasets.extraction import STEWARDS_ONLY
from datasets.tests.conftest import RulesWorld

MANIFEST = {
    "cohort_persons": {"value": 140, "display": "140", "hidden": False, "rule": "perturbed"},
    "persons_released": 131,
    STEWARDS_ONLY: {"cohort_persons": 137, "persons_suppressed_k_anonymity": 6, "suppression_cap": 6},
}


def test_the_sites_steward_sees_the_exact_figures(rules_world: RulesWorld) -> None:
    extract = rules_world.extract_a
    extract.manifest = MANIFEST
    assert rules.can_see_extract_counts(rules_world.steward_a, extract)
    assert rules.manifest_as_seen_by(rules_world.steward_a, extract) == MANIFEST


@pytest.mark.parametrize("who", ["admin", "partner", "alice", "bob", "charlie", "steward_b", "steward_c"])
def test_everybody_else_admins_included_sees_the_requesters_manifest(rules_world: RulesWorld, who: str) -> None:
    extract = rules_world.extract_a
    extract.manifest = MANIFEST
    verdict = rules.can_see_extract_counts(getattr(rules_world, who), extract)
    assert not verdict
    assert str(verdict) == "The exact counts of a site's dataset are for its data stewards."
    seen = rules.manifest_as_seen_by(getattr(rules_world, who), extract)
    assert STEWARDS_ONLY not in seen
    assert seen == {"cohort_persons": MANIFEST["cohort_persons"], "persons_released": 131}
