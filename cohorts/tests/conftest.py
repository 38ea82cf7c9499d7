"""Helpers shared by the cohort engine tests: the oracle's definitions and which CDM fixture each runs on.

The CDM fixtures themselves (``cdm_gibleed_pg``, ``cdm_synthea_duckdb`` …) come from the root conftest; the
oracle is read in place from the shared folder, never copied into the repository.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Fixture name of the loaded CDM per oracle data set and engine kind.
CDM_FIXTURES = {
    ("gibleed", "postgresql"): "cdm_gibleed_pg",
    ("gibleed", "duckdb"): "cdm_gibleed_duckdb",
    ("synthea27nj", "postgresql"): "cdm_synthea_pg",
    ("synthea27nj", "duckdb"): "cdm_synthea_duckdb",
    ("synthetic", "postgresql"): "cdm_synthetic_pg",
    ("synthetic", "duckdb"): "cdm_synthetic_duckdb",
    ("gibleed", "spark"): "cdm_gibleed_spark",
    ("synthea27nj", "spark"): "cdm_synthea_spark",
    ("synthetic", "spark"): "cdm_synthetic_spark",
}


def oracle_path() -> Path:
    """The oracle folder beside the shared data (the root conftest's ``oracle_dir`` rule, usable at collection)."""
    raw = os.environ.get("SHARED_DATA") or str(REPO_ROOT.parent / "shared" / "data")
    data = Path(raw) if Path(raw).is_absolute() else (REPO_ROOT / raw).resolve()
    return data.parent / "oracle"


def oracle_manifest() -> list[dict[str, Any]]:
    """The manifest entries (empty when the oracle is missing: the ``oracle_dir`` fixture then fails)."""
    path = oracle_path() / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else []


def oracle_definition(name: str) -> dict[str, Any]:
    return json.loads((oracle_path() / "cohorts" / f"{name}.json").read_text())


@pytest.fixture
def loaded_cdm(request: pytest.FixtureRequest) -> Any:
    """The CDM fixture for ``(dataset, kind)`` given by indirect parametrization."""
    dataset, kind = request.param
    return request.getfixturevalue(CDM_FIXTURES[(dataset, kind)])


# ---------------------------------------------------------------------------------------------------------------
# Which constructs the differential suite proved on non-empty results (see test_differential.py).
# ---------------------------------------------------------------------------------------------------------------

#: Where the table of constructs is written at the end of a session that compared any definition.
CONSTRUCTS_REPORT = REPO_ROOT / "var" / "reports" / "differential-constructs.txt"


class ConstructTally:
    """Per data set, engine and Soyang path: for each construct, how many compared definitions used it and how
    many of those came out non-empty. A construct proven identical to Circe only on empty results is not proven:
    this is what shows which ones are."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], dict[str, list[int]]] = {}

    def record(self, *, dataset: str, engine: str, path: str, constructs: set[str], non_empty: bool) -> None:
        table = self.counts.setdefault((dataset, engine, path), {})
        for construct in constructs:
            seen = table.setdefault(construct, [0, 0])
            seen[0] += 1
            seen[1] += int(non_empty)

    def non_empty(self, *, dataset: str, engine: str, path: str) -> dict[str, tuple[int, int]]:
        """construct → (examples, non-empty examples) for one data set, engine and path."""
        return {name: (n, hits) for name, (n, hits) in self.counts.get((dataset, engine, path), {}).items()}

    def lines(self) -> list[str]:
        """The table: one row per construct, one column per (data set, engine, path): non-empty / examples."""
        columns = sorted(self.counts)
        constructs = sorted({name for table in self.counts.values() for name in table})
        titles = [f"{d}/{e}/{p}" for d, e, p in columns]
        width = max([24, *(len(title) + 2 for title in titles)])
        lines = ["".join(["construct".ljust(44), *(title.rjust(width) for title in titles)])]
        for name in constructs:
            cells = [name.ljust(44)]
            for column in columns:
                n, hits = self.counts[column].get(name, (0, 0))
                cells.append((f"{hits}/{n} ({100 * hits // n}%)" if n else "-").rjust(width))
            lines.append("".join(cells))
        return lines


CONSTRUCTS = ConstructTally()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the share of non-empty examples per construct and write it to ``CONSTRUCTS_REPORT``."""
    if not CONSTRUCTS.counts:
        return
    lines = CONSTRUCTS.lines()
    terminalreporter.section("differential suite: non-empty examples per construct")
    for line in lines:
        terminalreporter.write_line(line)
    CONSTRUCTS_REPORT.parent.mkdir(parents=True, exist_ok=True)
    CONSTRUCTS_REPORT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    terminalreporter.write_line(f"(written to {CONSTRUCTS_REPORT})")
