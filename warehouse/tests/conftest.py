"""Fixtures of the warehouse tests: small CDM exports cut from the shared GiBleed files, and empty warehouses."""

from __future__ import annotations

import csv
import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

#: Rows kept from each clinical file: enough to exercise the loader, small enough to load in a blink.
MINI_ROWS = 40


def _read_rows(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def _write_rows(path: Path, rows: list[list[str]], delimiter: str = ",") -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter=delimiter, lineterminator="\n").writerows(rows)


@pytest.fixture
def make_mini_export(shared_data_dir: Path, tmp_path: Path) -> Callable[..., Path]:
    """A function building a small CDM 5.3 export (person, observation_period, concept and vocabulary from
    GiBleed) in a new folder; ``edit(folder)`` may then break it. Plain .csv files except concept.csv.gz."""
    gibleed = shared_data_dir / "omop" / "gibleed"
    counter = iter(range(1000))

    def build(edit: Callable[[Path], None] | None = None) -> Path:
        folder = tmp_path / f"export{next(counter)}"
        folder.mkdir()
        for table in ("person", "observation_period"):
            rows = _read_rows(gibleed / f"{table}.csv.gz")
            _write_rows(folder / f"{table}.csv", rows[: MINI_ROWS + 1])
        _write_rows(folder / "vocabulary.csv", _read_rows(gibleed / "vocabulary.csv.gz"))
        shutil.copy(gibleed / "concept.csv.gz", folder / "concept.csv.gz")
        if edit is not None:
            edit(folder)
        return folder

    return build


@pytest.fixture(params=["postgresql", "duckdb"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(kind, url) of a warehouse for one test: the PostgreSQL test CDM database, or a new DuckDB file."""
    if request.param == "postgresql":
        return "postgresql", request.getfixturevalue("test_cdm_pg_url")
    return "duckdb", f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
