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
