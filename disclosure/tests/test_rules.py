"""Small counts never leave the service layer; what is hidden cannot be recovered by subtraction."""

from __future__ import annotations

from types import SimpleNamespace

from disclosure.models import DisclosurePolicy
from disclosure.rules import PrivacyRule, protect, protect_federated, protect_group
from disclosure.selectors import rule_for

#: The exact rule (no ptable): what these tests check is the thresholds, suppression and rounding around the
#: perturbation; ``test_rules_perturbation.py`` checks the perturbation itself.
RULE = PrivacyRule()


def exact_cells(*counts: int) -> list[tuple[int, None]]:
    return [(n, None) for n in counts]


def site(**fields):
    """A source with its policy in memory (no database): what ``rule_for`` reads of a saved one."""
    values = {"min_cell_size": 10, "round_to": 10, "aggregate_only_roles": ["partner"]}
    values.update(fields)
    return SimpleNamespace(disclosure_policy=DisclosurePolicy(**values))


def test_counts_from_one_to_nine_are_shown_as_under_ten_never_the_number() -> None:
    rule = PrivacyRule(min_cell=10)
    for n in range(1, 10):
        shown = protect(n, rule)
        assert shown.hidden and shown.value is None and shown.display == "<10"
    assert protect(0, rule).display == "0"
    assert protect(10, rule).value == 10
    assert protect(1234, rule).display == "1,234"


def key_with(adjustment: int, rule: PrivacyRule, count: int) -> int:
    """A cell key whose noise under ``rule``'s ptable is ``adjustment`` for a true ``count``."""
    assert rule.ptable is not None
    return rule.ptable.adjustments(count).index(adjustment)


def test_every_role_gets_perturbed_counts_and_partners_get_them_rounded_on_top() -> None:
    source = site()
    partner, researcher = rule_for(source=source, role="partner"), rule_for(source=source, role="researcher")
    assert researcher.perturbs and partner.perturbs
    for adjustment in (-3, -1, 0, 2, 3):
        key = key_with(adjustment, researcher, 1234)
        assert protect(1234, researcher, key).value == 1234 + adjustment
        # Perturbed first, then rounded: 1231..1234 round to 1230, 1235..1237 to 1240.
        assert protect(1234, partner, key).value == (1230 if adjustment < 1 else 1240)
    assert protect(12, partner, key_with(0, partner, 12)).value == 10
    assert researcher.describe() == "perturbed (at most ±3), counts under 10 hidden"
    assert partner.describe() == "perturbed (at most ±3), counts under 10 hidden, rounded to the nearest 10"


def test_a_count_without_a_cell_key_is_not_released_under_a_perturbing_rule() -> None:
    researcher = rule_for(source=site(), role="researcher")
    shown = protect(1234, researcher)
    assert shown.hidden and shown.value is None and "1234" not in shown.display and "1,234" not in shown.display
    # The threshold still decides first: a small or empty count reads the same with or without a key.
    assert protect(4, researcher).display == "<10" and protect(0, researcher).display == "0"


def test_the_source_sets_its_threshold_and_its_aggregate_only_roles() -> None:
    strict = site(min_cell_size=20, round_to=5, aggregate_only_roles=["partner", "researcher"])
    rule = rule_for(source=strict, role="researcher")
    assert rule.ptable is not None and rule.ptable.parameters.threshold == 20
    assert protect(19, rule, 7).display == "<20"
    assert protect(22, rule, key_with(0, rule, 22)).value == 20
    # Never below the threshold, whatever the key.
    assert min(protect(20, rule, key).value or 0 for key in range(256)) == 20
    open_site = site(aggregate_only_roles=[])
    assert rule_for(source=open_site, role="partner").round_to == 1


def test_a_grant_makes_counts_exact_for_researchers_but_never_for_partners() -> None:
    source = site()
    granted = rule_for(source=source, role="researcher", grant=7)
    assert not granted.perturbs and protect(1234, granted, 5).value == 1234 and protect(1234, granted).value == 1234
    assert granted.describe() == "exact by grant #7, counts under 10 hidden"
    assert protect(4, granted).display == "<10"
    assert rule_for(source=source, role="partner", grant=7).perturbs


def test_a_federated_total_is_one_cell_with_the_sum_of_the_sites_keys() -> None:
    rule = rule_for(source=site(), role="researcher")
    total, parts = protect_federated([(100, 200), (23, 100)], [rule, rule])
    assert rule.ptable is not None
    # Its own noise (key 300 mod 256 = 44), not the sum of the parts' noises.
    assert total.value == 123 + rule.ptable.adjustments(123)[44]
    assert [p.value for p in parts] == [100 + rule.ptable.adjustments(100)[200], 23 + rule.ptable.adjustments(23)[100]]
    # A part without a key makes the total unreleasable too.
    unkeyed, _ = protect_federated([(100, 200), (23, None)], [rule, rule])
    assert unkeyed.value is None and unkeyed.hidden


def test_one_hidden_bucket_under_a_shown_total_hides_the_next_smallest_too() -> None:
    rule = PrivacyRule(min_cell=10)
    total, cells = protect_group((120, None), exact_cells(100, 15, 5), rule)
    assert not total.hidden and total.value == 120
    assert [c.hidden for c in cells] == [False, True, True]  # 120 - 100 = 20 would have revealed 5 from 15


def test_when_no_other_bucket_can_be_hidden_the_total_is_hidden() -> None:
    rule = PrivacyRule(min_cell=10)
    total, cells = protect_group((105, None), exact_cells(100, 5, 0), rule)
    # Hiding the 100 as well is enough: two hidden cells cannot be told apart from the total.
    assert [c.hidden for c in cells] == [True, True, False]
    total, cells = protect_group((5, None), exact_cells(5), rule)
    assert total.hidden and cells[0].hidden


def test_a_federated_total_with_a_hidden_site_is_the_visible_sites_plus_under_ten() -> None:
    rule = PrivacyRule(min_cell=10)
    total, sites = protect_federated(exact_cells(100, 5), [rule, rule])
    assert [s.display for s in sites] == ["100", "<10"]
    assert total.hidden and total.value is None
    assert total.display == "100 + <10" and total.lower_bound == 100
    total, _ = protect_federated(exact_cells(100, 5, 3), [rule, rule, rule])
    assert total.display == "100 + 2 × <10"
    total, _ = protect_federated(exact_cells(4, 5), [rule, rule])
    assert total.display == "2 × <10" and total.lower_bound == 0


def test_a_federated_total_of_shown_sites_is_exact_or_rounded_by_the_strictest_rule() -> None:
    researcher, partner = PrivacyRule(min_cell=10), PrivacyRule(min_cell=10, round_to=10)
    total, _ = protect_federated(exact_cells(100, 23), [researcher, researcher])
    assert total.value == 123 and not total.hidden
    total, sites = protect_federated(exact_cells(104, 23), [partner, partner])
    assert total.value == 130 and [s.value for s in sites] == [100, 20]
    strict = PrivacyRule(min_cell=20)
    total, sites = protect_federated(exact_cells(104, 15), [researcher, strict])
    assert [s.display for s in sites] == ["104", "<20"] and total.display == "104 + <20"


def test_a_cell_hidden_as_a_complement_looks_exactly_like_a_small_one():
    _, cells = protect_group((66, None), exact_cells(4, 12, 50), RULE)
    assert [c.display for c in cells] == ["<10", "<10", "50"]
    # No mark: one would point at the other, genuinely small cell.
    assert cells[1].as_dict() == {"value": None, "display": "<10", "hidden": True}
    assert cells[0].as_dict() == {"value": None, "display": "<10", "hidden": True}


def test_a_federated_count_says_under_ten_for_any_hidden_part():
    _, site_cells = protect_group((66, None), exact_cells(4, 12, 50), RULE)
    total, _ = protect_federated(exact_cells(12, 20), [RULE, RULE], [site_cells[1], protect(20, RULE)])
    assert total.display == "20 + <10"
    assert total.value is None and total.lower_bound == 20
    small, _ = protect_federated(exact_cells(4, 20), [RULE, RULE], [site_cells[0], protect(20, RULE)])
    assert small.display == "20 + <10"
