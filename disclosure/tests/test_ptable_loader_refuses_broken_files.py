"""A site's ptable file is validated on load: a broken one is refused with a message that says where and why."""

from __future__ import annotations

import pytest

from disclosure.ptable import PtableError, PtableParameters, generate_ptable, load_ptable, parse_ptable

GOOD = generate_ptable(PtableParameters(3, 2, 10)).to_csv()


def broken(old: str, new: str, *, count: int = 1) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, count)


def refused(text: str, match: str) -> None:
    with pytest.raises(PtableError, match=match):
        parse_ptable(text, name="site.csv")


def test_the_generated_file_loads() -> None:
    assert parse_ptable(GOOD).parameters == PtableParameters(3, 2, 10)


def test_a_file_without_its_format_line_or_parameters_is_refused() -> None:
    refused(GOOD.split("\n", 1)[1], r"site.csv: the first line must be '# soyang-ptable 1'")
    refused(broken("# soyang-ptable 1", "# soyang-ptable 2"), "format and version")
    refused(broken(" variance=2", ""), "do not give variance")
    refused(broken("threshold=10", "threshold=ten"), "threshold must be a whole number, not 'ten'")
    refused(broken("max_adjustment=3", "max_adjustment=0"), "max_adjustment must be at least 1")
    refused(broken("variance=2", "variance=2.001"), r"variance must be a multiple of 1/128")


def test_a_wrong_header_or_row_shape_is_refused() -> None:
    refused(broken("cell_value,cell_key_from", "value,cell_key_from"), "must be cell_value,cell_key_from,")
    refused(broken("11,0,117,-1", "11,0,117"), r"site.csv line 6: expected 4 fields, found 3")
    refused(broken("11,0,117,-1", "11,0,117,minus one"), "site.csv line 6: perturbation must be a whole number")


def test_a_cell_key_covered_twice_or_not_at_all_is_refused() -> None:
    refused(broken("11,118,183,0", "11,117,183,0"), "site.csv line 7: cell key 117 of cell value 11 is already covered")
    refused(broken("11,118,183,0", "11,120,183,0"), r"cell value 11 does not cover cell keys 118-119")
    refused(broken("13+,247,255,3\n", ""), r"cell value 13\+ does not cover cell keys 247-255")
    refused(broken("12,0,42,-2", "12,0,256,-2"), r"site.csv line 11: cell keys must satisfy 0 <= from <= to <= 255")


def test_a_perturbation_beyond_the_maximum_is_refused() -> None:
    refused(broken("13+,247,255,3", "13+,247,255,4"), "site.csv line 23: perturbation 4 is beyond max_adjustment 3")


def test_a_result_under_the_threshold_or_negative_is_refused() -> None:
    refused(broken("11,0,117,-1", "11,0,117,-2"), r"site.csv line 6: 11 -2 = 9 would release a count from 1 to 9")
    refused(broken("0,0,255,0", "0,0,255,1"), "site.csv line 4: a true 0 stays 0")
    text = GOOD.replace("threshold=10", "threshold=1").replace("10,0,255,0", "1,0,255,-2")
    refused(text, "site.csv line 5: 1 -2 would release a negative count")


def test_a_row_for_a_withheld_count_is_refused() -> None:
    refused(
        broken("10,0,255,0", "10,0,255,0\n9,0,255,1"), r"counts 1 to 9 are withheld and have no row \(cell_value 9\)"
    )


def test_missing_rows_and_a_wrong_open_range_are_refused() -> None:
    refused("\n".join(line for line in GOOD.splitlines() if not line.startswith("12,")), "no rows for cell values 12")
    refused(GOOD.replace("13+,", "13,"), r"site.csv line 17: counts from 13 up are the open row '13\+', not 13")
    refused(GOOD.replace("13+,", "14+,"), r"the open range must start at threshold \+ max_adjustment = 13, not 14")
    refused(broken("10,0,255,0", "10,0,255,0\n20,0,255,0"), r"counts from 13 up are the open row '13\+', not 20")


def test_a_biased_row_is_refused() -> None:
    refused(broken("13+,162,216,1", "13+,162,216,2"), r"cell value 13\+ add up to 55 over the 256 keys, not 0")


def test_an_unreadable_file_is_refused_with_its_path(tmp_path) -> None:
    with pytest.raises(PtableError, match="cannot read the ptable"):
        load_ptable(tmp_path / "missing.csv")
    (tmp_path / "latin.csv").write_bytes(b"\xff\xfe")
    with pytest.raises(PtableError, match="latin.csv: cannot read the ptable"):
        load_ptable(tmp_path / "latin.csv")
