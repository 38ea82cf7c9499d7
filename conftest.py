"""Fixtures shared by every app's tests.

The OMOP test data sets are read in place from ``SHARED_DATA`` (default ``../shared/data``); they are never
copied into the repository. A test that needs them fails, not skips, when they are missing: CI must not
pass by skipping the very tests that prove the engine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent


def _shared_data_dir() -> Path:
    raw = os.environ.get("SHARED_DATA") or str(REPO_ROOT.parent / "shared" / "data")
    path = Path(raw)
    if not path.is_absolute():
        path = (REPO_ROOT / path).resolve()
    return path


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    path = _shared_data_dir()
    if not (path / "omop" / "gibleed").is_dir():
        pytest.fail(f"the shared OMOP test data is missing at {path}: set SHARED_DATA to the shared/data folder")
    return path


@pytest.fixture(scope="session")
def oracle_dir(shared_data_dir: Path) -> Path:
    path = shared_data_dir.parent / "oracle"
    if not (path / "manifest.json").is_file():
        pytest.fail(f"the cohort oracle is missing at {path}")
    return path
