"""Fixtures shared by every app's tests.

The OMOP test data sets are read in place from ``SHARED_DATA`` (default ``../shared/data``); they are never
copied into the repository. A test that needs them fails, not skips, when they are missing: CI must not
pass by skipping the very tests that prove the engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: Fixtures shared across apps, registered once here rather than star-imported by each module that uses them:
#: the standard people and project of the permission tests, and GiBleed's vocabulary at a site of project P.
pytest_plugins = ["accounts.tests.fixtures", "cohorts.tests.concept_fixtures"]

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


# ---------------------------------------------------------------------------------------------------------------
# The shared OMOP data sets loaded into real warehouses, once per test session and engine.
# ---------------------------------------------------------------------------------------------------------------

DEFAULT_TEST_CDM_URL = "postgresql://postgres@127.0.0.1:5432/soyang_test_cdm"


@dataclass
class LoadedCdm:
    """A CDM loaded for the tests: where it is, and connections to it.

    ``connect()`` opens a new connection each call (close it); ``engine`` is one connection shared by every
    test of the session, closed at the end. Vocabulary tables are in the CDM schema; the results schema exists
    and starts empty.
    """

    kind: str
    url: str
    cdm_schema: str
    vocabulary_schema: str
    results_schema: str
    cdm_version: str
    _engine: Any = field(default=None, init=False, repr=False, compare=False)

    def connect(self) -> Any:
        """A new ``warehouse.engines.Engine`` on this CDM."""
        from warehouse.engines import connect

        return connect(self.kind, self.url)

    @property
    def engine(self) -> Any:
        """The session's shared connection."""
        if self._engine is None:
            self._engine = self.connect()
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def _ensure_postgres_database(url: str) -> None:
    """Create the test CDM database when it does not exist yet (the server's ``postgres`` database is used to)."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg2

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    connection = psycopg2.connect(admin)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                from psycopg2 import sql

                try:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                except psycopg2.errors.DuplicateDatabase:
                    pass  # another test session created it meanwhile
    finally:
        connection.close()


def _load_test_cdm(kind: str, url: str, directory: Path, schema: str, results_schema: str) -> LoadedCdm:
    from warehouse.engines import connect, quote_ident
    from warehouse.loader import load_cdm_directory

    with connect(kind, url) as engine:
        report = load_cdm_directory(engine, directory, cdm_schema=schema)
        engine.execute_script(
            f"DROP SCHEMA IF EXISTS {quote_ident(results_schema)} CASCADE; CREATE SCHEMA {quote_ident(results_schema)};"
        )
    return LoadedCdm(
        kind=kind,
        url=url,
        cdm_schema=schema,
        vocabulary_schema=schema,
        results_schema=results_schema,
        cdm_version=report.cdm_version,
    )


def _test_cdm_pg_url() -> str:
    return os.environ.get("SOYANG_TEST_CDM_URL") or DEFAULT_TEST_CDM_URL


@pytest.fixture(scope="session")
def test_cdm_pg_url() -> str:
    """URL of the PostgreSQL test CDM database (SOYANG_TEST_CDM_URL), created if missing."""
    url = _test_cdm_pg_url()
    _ensure_postgres_database(url)
    return url


@pytest.fixture(scope="session")
def cdm_gibleed_pg(shared_data_dir: Path) -> Iterator[LoadedCdm]:
    """GiBleed (CDM 5.3) in schema ``gibleed`` of the PostgreSQL test CDM database."""
    url = _test_cdm_pg_url()
    _ensure_postgres_database(url)
    cdm = _load_test_cdm("postgresql", url, shared_data_dir / "omop" / "gibleed", "gibleed", "gibleed_results")
    yield cdm
    cdm.close()


@pytest.fixture(scope="session")
def cdm_synthea_pg(shared_data_dir: Path) -> Iterator[LoadedCdm]:
    """Synthea27Nj (CDM 5.4) in schema ``synthea27nj`` of the PostgreSQL test CDM database."""
    url = _test_cdm_pg_url()
    _ensure_postgres_database(url)
    cdm = _load_test_cdm(
        "postgresql", url, shared_data_dir / "omop" / "synthea27nj", "synthea27nj", "synthea27nj_results"
    )
    yield cdm
    cdm.close()


@pytest.fixture(scope="session")
def cdm_gibleed_duckdb(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedCdm]:
    """GiBleed (CDM 5.3) in schema ``gibleed`` of a DuckDB file of this session."""
    path = tmp_path_factory.mktemp("cdm_gibleed") / "warehouse.duckdb"
    cdm = _load_test_cdm(
        "duckdb", f"duckdb:///{path}", shared_data_dir / "omop" / "gibleed", "gibleed", "gibleed_results"
    )
    yield cdm
    cdm.close()


@pytest.fixture(scope="session")
def cdm_synthea_duckdb(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedCdm]:
    """Synthea27Nj (CDM 5.4) in schema ``synthea27nj`` of a DuckDB file of this session."""
    path = tmp_path_factory.mktemp("cdm_synthea") / "warehouse.duckdb"
    cdm = _load_test_cdm(
        "duckdb", f"duckdb:///{path}", shared_data_dir / "omop" / "synthea27nj", "synthea27nj", "synthea27nj_results"
    )
    yield cdm
    cdm.close()


@pytest.fixture(scope="session")
def spark_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Spark Connect URL of the session's Spark: ``SOYANG_TEST_SPARK_URL`` when set (a server already running),
    else a real Spark started once for the whole session (``warehouse.spark_server``, local[2], its catalog in
    memory, tuned for small data) and stopped at its end."""
    given = os.environ.get("SOYANG_TEST_SPARK_URL")
    if given:
        yield given
        return
    from warehouse.spark_server import free_port, start_server, stop_server

    directory = tmp_path_factory.mktemp("spark")
    server = start_server(directory, port=free_port(), cores=2, memory="3g", persistent=False, small_data=True)
    try:
        yield server.url
    finally:
        stop_server(directory)


@pytest.fixture(scope="session")
def cdm_gibleed_spark(spark_url: str, shared_data_dir: Path) -> Iterator[LoadedCdm]:
    """GiBleed (CDM 5.3) in schema ``gibleed`` of the session's Spark catalog (Parquet tables)."""
    cdm = _load_test_cdm("spark", spark_url, shared_data_dir / "omop" / "gibleed", "gibleed", "gibleed_results")
    yield cdm
    cdm.close()


@pytest.fixture(scope="session")
def cdm_synthea_spark(spark_url: str, shared_data_dir: Path) -> Iterator[LoadedCdm]:
    """Synthea27Nj (CDM 5.4) in schema ``synthea27nj`` of the session's Spark catalog."""
    cdm = _load_test_cdm(
        "spark", spark_url, shared_data_dir / "omop" / "synthea27nj", "synthea27nj", "synthea27nj_results"
    )
    yield cdm
    cdm.close()


@pytest.fixture(scope="session", params=["postgresql", "duckdb"])
def cdm_gibleed(request: pytest.FixtureRequest) -> LoadedCdm:
    """GiBleed on each engine in turn."""
    return request.getfixturevalue("cdm_gibleed_pg" if request.param == "postgresql" else "cdm_gibleed_duckdb")


@pytest.fixture(scope="session", params=["postgresql", "duckdb"])
def cdm_synthea(request: pytest.FixtureRequest) -> LoadedCdm:
    """Synthea27Nj on each engine in turn."""
    return request.getfixturevalue("cdm_synthea_pg" if request.param == "postgresql" else "cdm_synthea_duckdb")


# ---------------------------------------------------------------------------------------------------------------
# The synthetic warehouse (warehouse/synthetic): every table and column the cohort compiler reads is filled, so
# the differential suite can prove constructs that GiBleed and Synthea27Nj leave empty. Generated once per session
# (it takes about a second), then loaded into each engine like the shared data sets.
# ---------------------------------------------------------------------------------------------------------------

#: Persons of the synthetic test warehouse and its seed: small enough for Circe to run a random definition on it
#: in a fraction of a second, large enough for rare events (devices, intensive care, biopsies) to be there.
SYNTHETIC_PERSONS = 2_000
SYNTHETIC_SEED = 16


@pytest.fixture(scope="session")
def synthetic_cdm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CSV files of the session's synthetic CDM (CDM 5.4, with its vocabulary)."""
    from warehouse.synthetic.synthesis import write_cdm

    directory = tmp_path_factory.mktemp("cdm_synthetic_csv")
    write_cdm(directory, persons=SYNTHETIC_PERSONS, seed=SYNTHETIC_SEED, jobs=1)
    return directory


@pytest.fixture(scope="session")
def cdm_synthetic_pg(synthetic_cdm_dir: Path) -> Iterator[LoadedCdm]:
    """The synthetic CDM (5.4) in schema ``synthetic`` of the PostgreSQL test CDM database."""
    url = _test_cdm_pg_url()
    _ensure_postgres_database(url)
    cdm = _load_test_cdm("postgresql", url, synthetic_cdm_dir, "synthetic", "synthetic_results")
    yield cdm
    cdm.close()


@pytest.fixture(scope="session")
def cdm_synthetic_duckdb(synthetic_cdm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedCdm]:
    """The synthetic CDM (5.4) in schema ``synthetic`` of a DuckDB file of this session."""
    path = tmp_path_factory.mktemp("cdm_synthetic") / "warehouse.duckdb"
    cdm = _load_test_cdm("duckdb", f"duckdb:///{path}", synthetic_cdm_dir, "synthetic", "synthetic_results")
    yield cdm
    cdm.close()


@pytest.fixture(scope="session")
def cdm_synthetic_spark(spark_url: str, synthetic_cdm_dir: Path) -> Iterator[LoadedCdm]:
    """The synthetic CDM (5.4) in schema ``synthetic`` of the session's Spark catalog."""
    cdm = _load_test_cdm("spark", spark_url, synthetic_cdm_dir, "synthetic", "synthetic_results")
    yield cdm
    cdm.close()


@pytest.fixture(scope="session", params=["postgresql", "duckdb"])
def cdm_synthetic(request: pytest.FixtureRequest) -> LoadedCdm:
    """The synthetic CDM on each engine in turn."""
    return request.getfixturevalue("cdm_synthetic_pg" if request.param == "postgresql" else "cdm_synthetic_duckdb")
