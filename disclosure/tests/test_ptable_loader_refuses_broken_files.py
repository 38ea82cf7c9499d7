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
    refused(GOOD.split("\n", 1)[1], r"site.csv: the first line must be '# soyang-ptable 2'")
    # A file of format 1 (consecutive key ranges, whose keys did not add up independently) is no longer read.
    refused(broken("# soyang-ptable 2", "# soyang-ptable 1"), "format and version")
    refused(broken(" variance=2", ""), "do not give variance")
    refused(broken("threshold=10", "threshold=ten"), "threshold must be a whole number, not 'ten'")
    refused(broken("max_adjustment=3", "max_adjustment=0"), "max_adjustment must be at least 1")
    refused(broken("variance=2", "variance=2.001"), r"variance must be a multiple of 1/128")


def line(prefix: str, *, adjustment: int | None = None, nth: int = 0) -> tuple[int, str, list[int]]:
    """The ``nth`` line of GOOD starting with ``prefix`` (and with that adjustment, if given): its line number, its
    text and its fields after the label (key from, key to, adjustment)."""
    found = [
        (number, text)
        for number, text in enumerate(GOOD.splitlines(), start=1)
        if text.startswith(prefix) and (adjustment is None or text.endswith(f",{adjustment}"))
    ]
    number, text = found[nth]
    return number, text, [int(field) for field in text.split(",")[1:]]


def test_a_wrong_header_or_row_shape_is_refused() -> None:
    refused(broken("cell_value,cell_key_from", "value,cell_key_from"), "must be cell_value,cell_key_from,")
    number, text, _ = line("11,")
    refused(broken(text, text.rsplit(",", 1)[0]), rf"site.csv line {number}: expected 4 fields, found 3")
    refused(broken(text, text.rsplit(",", 1)[0] + ",minus one"), f"site.csv line {number}: perturbation must be")


def test_a_cell_key_covered_twice_or_not_at_all_is_refused() -> None:
    _, _, (_, first_to, _) = line("11,", nth=0)
    number, text, (_, to, adjustment) = line("11,", nth=1)
    overlapping = f"11,{first_to},{to},{adjustment}"
    refused(
        broken(text, overlapping), rf"site.csv line {number}: cell key {first_to} of cell value 11 is already covered"
    )
    _, text, (key_from, key_to, _) = line("13+,", nth=3)
    missing = str(key_from) if key_from == key_to else f"{key_from}-{key_to}"
    refused(broken(text + "\n", ""), rf"cell value 13\+ does not cover cell keys {missing}$")
    number, text, (key_from, _, adjustment) = line("12,")
    refused(
        broken(text, f"12,{key_from},256,{adjustment}"), rf"site.csv line {number}: cell keys must satisfy 0 <= from"
    )


def test_a_perturbation_beyond_the_maximum_is_refused() -> None:
    number, text, (key_from, key_to, _) = line("13+,", adjustment=3)
    refused(
        broken(text, f"13+,{key_from},{key_to},4"), f"site.csv line {number}: perturbation 4 is beyond max_adjustment 3"
    )


def test_a_result_under_the_threshold_or_negative_is_refused() -> None:
    number, text, (key_from, key_to, _) = line("11,", adjustment=-1)
    refused(broken(text, f"11,{key_from},{key_to},-2"), rf"site.csv line {number}: 11 -2 = 9 would release a count")
    refused(broken("0,0,255,0", "0,0,255,1"), "site.csv line 4: a true 0 stays 0")
    text = GOOD.replace("threshold=10", "threshold=1").replace("10,0,255,0", "1,0,255,-2")
    refused(text, "site.csv line 5: 1 -2 would release a negative count")


def test_a_row_for_a_withheld_count_is_refused() -> None:
    refused(
        broken("10,0,255,0", "10,0,255,0\n9,0,255,1"), r"counts 1 to 9 are withheld and have no row \(cell_value 9\)"
    )


def test_missing_rows_and_a_wrong_open_range_are_refused() -> None:
    refused("\n".join(text for text in GOOD.splitlines() if not text.startswith("12,")), "no rows for cell values 12")
    number, _, _ = line("13+,")
    refused(GOOD.replace("13+,", "13,"), rf"site.csv line {number}: counts from 13 up are the open row '13\+', not 13")
    refused(GOOD.replace("13+,", "14+,"), r"the open range must start at threshold \+ max_adjustment = 13, not 14")
    refused(broken("10,0,255,0", "10,0,255,0\n20,0,255,0"), r"counts from 13 up are the open row '13\+', not 20")


def test_a_biased_row_is_refused() -> None:
    _, text, (key_from, key_to, _) = line("13+,", adjustment=1)
    width = key_to - key_from + 1
    refused(broken(text, f"13+,{key_from},{key_to},2"), rf"cell value 13\+ add up to {width} over the 256 keys, not 0")


def test_an_unreadable_file_is_refused_with_its_path(tmp_path) -> None:
    with pytest.raises(PtableError, match="cannot read the ptable"):
        load_ptable(tmp_path / "missing.csv")
    (tmp_path / "latin.csv").write_bytes(b"\xff\xfe")
    with pytest.raises(PtableError, match="latin.csv: cannot read the ptable"):
        load_ptable(tmp_path / "latin.csv")
