"""``make_ptable`` writes a versioned ptable that loads, prints what it costs, and refuses bad parameters."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from disclosure.ptable import PtableParameters, load_ptable


def test_make_ptable_writes_a_versioned_file_that_loads(tmp_path) -> None:
    out = StringIO()
    call_command(
        "make_ptable", "--max", "5", "--variance", "3", "--threshold", "10", "--out", str(tmp_path), stdout=out
    )
    path = tmp_path / "ptable-v2-D5-V3-k10.csv"
    assert load_ptable(path).parameters == PtableParameters(5, 3, 10)
    assert path.read_text(encoding="utf-8").startswith(
        "# soyang-ptable 2\n# max_adjustment=5 variance=3 threshold=10\n"
    )
    text = out.getvalue()
    assert "counts 1..9 withheld" in text
    assert "worst pair for an exact difference" in text


def test_make_ptable_takes_a_file_name_and_fractional_variance(tmp_path) -> None:
    target = tmp_path / "site.csv"
    call_command(
        "make_ptable", "--max", "2", "--variance", "1/2", "--threshold", "5", "--out", str(target), stdout=StringIO()
    )
    assert load_ptable(target).parameters == PtableParameters(2, 1 / 2, 5)


def test_make_ptable_refuses_bad_parameters_and_existing_files(tmp_path) -> None:
    with pytest.raises(CommandError, match=r"variance 3 is more than the uniform noise on -2..2 has \(2\)"):
        call_command("make_ptable", "--max", "2", "--variance", "3", "--out", str(tmp_path), stdout=StringIO())
    with pytest.raises(CommandError, match="--variance must be a number"):
        call_command("make_ptable", "--variance", "lots", "--out", str(tmp_path), stdout=StringIO())
    call_command("make_ptable", "--out", str(tmp_path), stdout=StringIO())
    with pytest.raises(CommandError, match="exists: pass --force"):
        call_command("make_ptable", "--out", str(tmp_path), stdout=StringIO())
    call_command("make_ptable", "--out", str(tmp_path), "--force", stdout=StringIO())
