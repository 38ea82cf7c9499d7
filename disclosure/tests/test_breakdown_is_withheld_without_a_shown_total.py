"""``protect_breakdown``: no cell of a breakdown without a shown total; empty cells hidden like small ones; one
small cell among members is never left alone under the total."""

from __future__ import annotations

from disclosure.rules import PrivacyRule, protect_breakdown


def exact_cells(*counts: int) -> list[tuple[int, None]]:
    """Cells without keys: these tests check which cells are hidden, under exact rules (no ptable)."""
    return [(n, None) for n in counts]


RULE = PrivacyRule()
PARTNER = PrivacyRule(round_to=10)


def test_a_hidden_total_has_no_breakdown_at_all():
    for total in range(1, 10):
        assert protect_breakdown((total, None), exact_cells(total, 0, 0), RULE) is None
    assert protect_breakdown((15, None), exact_cells(15, 0), PrivacyRule(min_cell=20)) is None


def test_empty_cells_read_exactly_like_small_ones():
    cells = protect_breakdown((40, None), exact_cells(25, 0, 15, 0), RULE)
    assert [c.display for c in cells] == ["25", "<10", "15", "<10"]
    assert cells[1] == cells[3] and cells[1].value is None and cells[1].hidden


def test_one_small_cell_among_members_gets_a_complement():
    cells = protect_breakdown((35, None), exact_cells(30, 0, 5), RULE)
    # 35 - 30 would give the 5: the 30 is hidden too, and reads like the others.
    assert [c.display for c in cells] == ["<10", "<10", "<10"]
    cells = protect_breakdown((120, None), exact_cells(100, 15, 5, 0), RULE)
    assert [c.display for c in cells] == ["100", "<10", "<10", "<10"]


def test_a_cohort_of_nobody_shows_its_buckets_as_zero():
    cells = protect_breakdown((0, None), exact_cells(0, 0, 0), RULE)
    assert [c.display for c in cells] == ["0", "0", "0"]


def test_rounding_applies_to_the_cells_as_to_the_total():
    cells = protect_breakdown((47, None), exact_cells(24, 23, 0), PARTNER)
    assert [c.display for c in cells] == ["20", "20", "<10"]
