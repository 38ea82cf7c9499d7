"""Demographics merged over sites: each bucket is the sum of what the sites show, and no hidden value returns.

Crafted site results, no database: the same functions the result page and the CSV go through.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cohorts.runs.selectors import merged_demographics
from disclosure.rules import PrivacyRule

RULE = PrivacyRule()
PARTNER = PrivacyRule(round_to=10)


#: The race concepts of these sites, by the short names the tests use.
RACE_IDS = {"White": 8527, "Asian": 8515, "Black": 8516, "Other": 0}


def demographics(cells: dict[str, int], *, top: dict[int, int] | None = None) -> dict[str, Any]:
    """A site's raw demographics with race buckets ``cells`` (name → persons) adding up to its total."""
    ids = RACE_IDS
    total = sum(cells.values())
    return {
        "persons": total,
        "age_pyramid": [
            {"age_group": "40-49", "gender_concept_id": 8532, "gender": "FEMALE", "persons": total},
        ],
        "gender": [{"concept_id": 8532, "name": "FEMALE", "persons": total}],
        "race": [{"concept_id": ids[name], "name": name, "persons": n} for name, n in cells.items()],
        "ethnicity": [],
        "index_year": [{"year": 2020, "persons": total}],
        "top_at_index": {
            "conditions": [
                {"concept_id": concept_id, "name": f"c{concept_id}", "persons": n}
                for concept_id, n in (top or {}).items()
            ]
        },
        "index_lookback_days": 30,
    }


def race(merged: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = {concept_id: name for name, concept_id in RACE_IDS.items()}
    return {names[row["concept_id"]]: row["persons"] for row in merged["race"]}


def test_merged_buckets_are_exact_sums_when_every_site_shows_them():
    merged = merged_demographics(
        [(demographics({"White": 30, "Asian": 25}), RULE), (demographics({"White": 40, "Asian": 15}), RULE)]
    )
    assert merged["persons"]["value"] == 110
    assert race(merged)["White"]["value"] == 70 and race(merged)["White"]["display"] == "70"
    assert race(merged)["Asian"]["value"] == 40
    # Every fixed bucket is listed; the one with persons is exact, the empty ones are hidden like small ones.
    pyramid = {(row["age_group"], row["gender_concept_id"]): row["persons"] for row in merged["age_pyramid"]}
    assert len(pyramid) == 30 and pyramid["40-49", 8532]["display"] == "110"
    years = {row["year"]: row["persons"] for row in merged["index_year"]}
    assert years["2020-2024"]["display"] == "110"
    assert {p["display"] for year, p in years.items() if year != "2020-2024"} == {"2 × <10"}
    assert merged["privacy"]["description"] == "counts under 10 hidden"


def test_a_bucket_hidden_at_one_site_is_shown_as_the_others_plus_under_ten():
    merged = merged_demographics(
        [
            (demographics({"White": 50, "Asian": 12, "Black": 4}), RULE),
            (demographics({"White": 20, "Asian": 20, "Black": 20}), RULE),
        ]
    )
    assert race(merged)["Black"]["display"] == "20 + <10"
    # The Asian bucket was hidden at the first site only to protect its Black bucket: it says "<10" all the same,
    # so that nothing tells it from the small one.
    assert race(merged)["Asian"]["display"] == "20 + <10"
    assert race(merged)["White"]["display"] == "70"


def test_merged_bucket_minus_the_other_sites_visible_bucket_never_gives_a_hidden_value():
    site_a = demographics({"White": 50, "Asian": 12, "Black": 4})
    site_b = demographics({"White": 20, "Asian": 20, "Black": 20})
    merged = merged_demographics([(site_a, RULE), (site_b, RULE)])
    for name, hidden_value in (("Black", 4), ("Asian", 12)):
        bucket = race(merged)[name]
        assert bucket["value"] is None and bucket["hidden"]
        assert bucket["lower_bound"] - 20 == 0 != hidden_value
    # No number anywhere in the merged result is a hidden cell or a hidden cell plus the other site's.
    numbers = {int(n) for n in re.findall(r"\d+", json.dumps(merged))}
    assert not numbers & {4, 12, 24, 32}


def test_a_site_whose_total_is_hidden_withholds_the_merged_breakdown():
    # The merged total would be "55 + <10": not shown, so no merged bucket either (the hidden site's buckets would
    # show as "+ <10" where it has members).
    merged = merged_demographics([(demographics({"White": 6}), RULE), (demographics({"White": 40, "Asian": 15}), RULE)])
    assert merged is None


def test_merged_counts_for_partners_are_rounded_like_each_site():
    merged = merged_demographics([(demographics({"White": 33}), PARTNER), (demographics({"White": 41}), PARTNER)])
    assert merged["persons"]["display"] == "70"
    assert merged["privacy"]["round_to"] == 10


def test_a_top_concept_missing_at_a_site_is_marked_partial_not_counted_as_zero():
    merged = merged_demographics(
        [
            (demographics({"White": 60}, top={1: 30, 2: 20}), RULE),
            (demographics({"White": 60}, top={1: 25, 3: 5}), RULE),
        ]
    )
    top = {row["concept_id"]: row["persons"] for row in merged["top_at_index"]["conditions"]}
    assert top[1]["display"] == "55" and top[1]["value"] == 55
    assert top[2]["display"] == "20 + 1 × not in top" and top[2]["value"] is None and top[2]["partial_sites"] == 1
    # Concept 3 has a hidden count at its only site: not listed there, so not merged either.
    assert 3 not in top
    assert [row["concept_id"] for row in merged["top_at_index"]["conditions"]] == [1, 2]
