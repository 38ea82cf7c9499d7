"""Benchmark Soyang's cohort engine against OHDSI Circe's SQL on the same (scaled) data, and check they agree.

    .venv/bin/python scripts/bench_cohorts.py --engine both --scale 10
    .venv/bin/python scripts/bench_cohorts.py --engine duckdb --scale 1 --definitions pl_3385 pl_2078
    .venv/bin/python scripts/bench_cohorts.py --engine postgresql --synthetic-persons 100000
    .venv/bin/python scripts/bench_cohorts.py --engine duckdb --scale 10 --path count
    .venv/bin/python scripts/bench_cohorts.py --scale 50 --path store
    .venv/bin/python scripts/bench_cohorts.py --engine spark --spark-url sc://127.0.0.1:15002 --synthetic-persons 10000

Data: GiBleed (from ``$SHARED_DATA/omop/gibleed``) is loaded once into schema ``gibleed`` and cloned ``--scale``
times into ``gibleed_x<k>`` (``warehouse.scaling.scale_cdm``); both are reused by later runs when their person
counts are right. ``--synthetic-persons N`` instead writes and loads Soyang's synthetic warehouse of N persons
(``warehouse.synthetic``) into ``synthetic_<N>``; ``--synthetic-clones k`` then clones it k times into
``synthetic_<N>_x<k>`` (the 10M-person warehouse from the 1M one: every count exactly k times). PostgreSQL:
``--pg-url`` (default ``$SOYANG_BENCH_PG_URL`` or database ``soyang_r_bench`` on 127.0.0.1, created when
missing). DuckDB: ``--duckdb-path`` (default ``var/bench/soyang_bench.duckdb``).

Each oracle definition of the chosen data set runs ``--repeat`` times with Soyang (``generate_cohort``, wall
time including compilation) and with Circe (circe-be's SQL through ``cohorts/tests/circe_reference.py``, the SQL
alone), alternately; the table shows the median times, their ratio (Soyang / Circe, below 1 = Soyang faster)
and whether the cohort rows are identical. ``--path count`` times Soyang's count path instead (nothing written;
persons and by-person statistics compared with Circe's), ``--path store`` the count path on the count store of
the PostgreSQL schema (synced first when missing or stale; the sync's time and size are printed), as the worker
counts at a site that keeps one: the CDM's fingerprint, the store opened, the count. Each generation (of either
engine) writes under a new cohort id, as the worker writes each run under its own; before each definition the
results tables of both are emptied (and VACUUMed on PostgreSQL), untimed, so that neither pays for the other's
or earlier runs' rows. Circe runs with its same-day ties broken by event id, so that the rows of a correct engine
are comparable (see ``circe_reference.break_ties``). The Synthea definitions of the oracle run on Synthea27Nj at
x1 with ``--synthea``.

``--engine spark`` (``--spark-url``, a running Spark Connect server) runs Soyang alone on Spark: Circe's SQL
cannot run on open-source Spark (it DELETEs from its results tables, which Parquet tables without Delta refuse).
Spark's rows and statistics are compared instead with Circe's on DuckDB over the same data (same schema name,
loaded from the same CSV into ``--duckdb-path``, untimed), which the DuckDB runs show identical to Soyang's on
DuckDB. Before the definitions, Spark and DuckDB are probed for what the cluster arithmetic of
docs/performance.md needs: the time of trivial statements (fixed cost per query) and of a full scan of each event
table's concept column (rows read per second). Every figure is printed with the load average of the machine.

This is a benchmark script: it imports the test-only Circe harness, which production code never does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GIBLEED_PERSONS = 2694
SYNTHEA_PERSONS = 28
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/soyang_r_bench"
COHORT_ID = 1


@dataclass
class Measurement:
    """One definition on one engine: median times, row counts and agreement."""

    definition: str
    engine: str
    data: str
    soyang_seconds: list[float] = field(default_factory=list)
    circe_seconds: list[float] = field(default_factory=list)
    soyang_rows: int | None = None
    circe_rows: int | None = None
    rows_equal: bool | None = None
    stats_equal: bool | None = None
    #: Soyang's persons and by-person attrition (persons after rules 1..k), for ``--clones-of``.
    soyang_persons: int | None = None
    soyang_attrition: list[int] = field(default_factory=list)
    error: str = ""
    loadavg: str = ""
    statements: int | None = None

    @property
    def soyang_median(self) -> float | None:
        """Median Soyang wall time (s)."""
        return statistics.median(self.soyang_seconds) if self.soyang_seconds else None

    @property
    def circe_median(self) -> float | None:
        """Median Circe SQL time (s)."""
        return statistics.median(self.circe_seconds) if self.circe_seconds else None

    @property
    def ratio(self) -> float | None:
        """Soyang / Circe median time."""
        if self.soyang_median is None or not self.circe_median:
            return None
        return self.soyang_median / self.circe_median


# --- set-up -----------------------------------------------------------------------------------------------------


def shared_data_dir() -> Path:
    """``$SHARED_DATA`` (relative to the repository) or ``../shared/data``, as the test suite resolves it."""
    raw = os.environ.get("SHARED_DATA") or str(REPO.parent / "shared" / "data")
    path = Path(raw)
    return path if path.is_absolute() else (REPO / path).resolve()


def loadavg() -> str:
    """The machine's 1-, 5- and 15-minute load averages."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def ensure_django() -> None:
    """Configure Django if Soyang's modules need it (the compiler does not; models and settings might)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")
    try:
        import django

        django.setup()
    except Exception as exc:  # a benchmark must still run where the portal's settings are incomplete
        print(f"(Django not set up: {exc})", file=sys.stderr)


def ensure_pg_database(url: str) -> None:
    """Create the PostgreSQL database of ``url`` when it does not exist (CREATE DATABASE needs autocommit)."""
    import psycopg2
    from psycopg2 import sql as pgsql

    base, _, name = url.rpartition("/")
    name = name.split("?")[0]
    conn = psycopg2.connect(f"{base}/postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    finally:
        conn.close()


def open_engine(kind: str, args: argparse.Namespace) -> Any:
    """A Soyang engine for ``kind`` on the benchmark database."""
    from warehouse.engines import connect

    if kind == "postgresql":
        ensure_pg_database(args.pg_url)
        return connect("postgresql", args.pg_url, statement_timeout_seconds=args.timeout)
    if kind == "spark":
        return connect("spark", args.spark_url, statement_timeout_seconds=args.timeout)
    path = Path(args.duckdb_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = connect("duckdb", f"duckdb:///{path.resolve()}", statement_timeout_seconds=args.timeout)
    if args.duckdb_memory:
        # DuckDB takes 80 % of the RAM by default: beside a Spark server, its load of 1M persons was killed.
        engine.execute(f"SET memory_limit = '{args.duckdb_memory}'", None)
    return engine


def person_count(engine: Any, schema: str) -> int | None:
    """Persons in ``schema.person``, or None when the table does not exist."""
    from warehouse.engines import quote_ident

    if engine.kind == "spark":  # no information_schema on Spark
        from warehouse.spark_catalog import table_names

        if "person" not in table_names(engine, [schema]).get(schema, set()):
            return None
        return int(engine.fetchone(f"SELECT COUNT(*) FROM {quote_ident(schema)}.person", None)[0])  # noqa: S608
    exists = engine.fetchone(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %(schema)s AND table_name = 'person'",
        {"schema": schema},
    )
    if not exists or not int(exists[0]):
        return None
    # The schema name is quoted; it comes from this script, never from a user.
    return int(engine.fetchone(f"SELECT COUNT(*) FROM {quote_ident(schema)}.person", None)[0])  # noqa: S608


def indexes_current(engine: Any, schema: str, cdm_version: str) -> bool:
    """Whether ``schema`` has the physical design the loader gives it today: every index on PostgreSQL, event
    tables in concept order on DuckDB (checked on the first 100,000 conditions; load order is never sorted)."""
    from warehouse.engines import quote_ident

    if engine.kind == "spark":
        return True  # Parquet tables as the loader writes them; no index, no order to check
    if engine.kind != "postgresql":
        concepts = [
            row[0]
            for row in engine.fetchall(
                f"SELECT condition_concept_id FROM {quote_ident(schema)}.condition_occurrence "  # noqa: S608
                "WHERE rowid < 100000 ORDER BY rowid",
                None,
            )
        ]
        return concepts == sorted(concepts)
    from warehouse.omop_ddl import index_names

    present = {
        str(name)
        for (name,) in engine.fetchall(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %(schema)s", {"schema": schema}
        )
    }
    return index_names(engine.kind, cdm_version) <= present


def load_if_missing(engine: Any, schema: str, directory: Path, persons: int, cdm_version: str) -> None:
    """Load the CDM CSVs of ``directory`` into ``schema`` unless it already holds ``persons`` persons and the
    loader's current indexes (a schema loaded by an older loader is loaded again)."""
    if person_count(engine, schema) == persons and indexes_current(engine, schema, cdm_version):
        return
    from warehouse.loader import load_cdm_directory

    started = time.perf_counter()
    print(f"[{engine.kind}] loading {directory.name} into {schema} (load average {loadavg()}) ...", flush=True)
    report = load_cdm_directory(engine, directory, cdm_schema=schema, cdm_version=cdm_version)
    print(
        f"[{engine.kind}] loaded {sum(report.rows.values()):,} rows in {time.perf_counter() - started:.1f} s "
        f"(load average {loadavg()})",
        flush=True,
    )


def prepare_gibleed(engine: Any, scale: int) -> str:
    """GiBleed loaded and scaled x``scale`` on ``engine``; returns the CDM schema to use."""
    load_if_missing(engine, "gibleed", shared_data_dir() / "omop" / "gibleed", GIBLEED_PERSONS, "5.3")
    if scale == 1:
        return "gibleed"
    return prepare_clones(engine, "gibleed", GIBLEED_PERSONS, scale, "5.3")


def prepare_synthea(engine: Any) -> str:
    """Synthea27Nj loaded at x1."""
    load_if_missing(engine, "synthea27nj", shared_data_dir() / "omop" / "synthea27nj", SYNTHEA_PERSONS, "5.4")
    return "synthea27nj"


def prepare_synthetic(engine: Any, persons: int, seed: int, jobs: int = 2) -> str:
    """Soyang's synthetic warehouse of ``persons`` persons, written once as CSV (``jobs`` generating processes;
    the files are the same for any number) and loaded once."""
    from warehouse.synthetic.synthesis import CDM_VERSION, write_cdm

    schema = f"synthetic_{persons}"
    directory = REPO / "var" / "bench" / f"synthetic_{persons}_seed{seed}"
    marker = directory / ".complete"
    if not marker.exists():
        print(f"writing a synthetic CDM of {persons} persons into {directory} ...", flush=True)
        report = write_cdm(directory, persons=persons, seed=seed, jobs=jobs)
        marker.write_text(json.dumps({"rows": report.total_rows, "seconds": report.seconds}))
    load_if_missing(engine, schema, directory, persons, CDM_VERSION)
    return schema


def prepare_clones(engine: Any, schema: str, persons: int, clones: int, cdm_version: str) -> str:
    """``schema`` cloned ``clones`` times into ``<schema>_x<clones>`` (kept while its person count is right):
    a warehouse of clones x persons without writing its CSV, which at 10M persons would not fit the disk."""
    target = f"{schema}_x{clones}"
    if person_count(engine, target) != persons * clones or not indexes_current(engine, target, cdm_version):
        from warehouse.scaling import scale_cdm

        print(f"[{engine.kind}] cloning {schema} x{clones} into {target} (load average {loadavg()}) ...", flush=True)
        report = scale_cdm(engine, source_schema=schema, target_schema=target, factor=clones)
        print(
            f"[{engine.kind}] {report.persons:,} persons, {sum(report.rows.values()):,} rows in "
            f"{report.seconds:.1f} s (load average {loadavg()})",
            flush=True,
        )
    return target


# --- the measurement --------------------------------------------------------------------------------------------


def reset_results(engine: Any, schemas: list[str]) -> None:
    """Empty the results tables of both engines' runs and, on PostgreSQL, VACUUM them (outside the timed window).

    Every definition then starts from empty tables, whatever ran before: neither engine pays for the other's or
    earlier definitions' rows, nor (where autovacuum is off, as on the benchmark server) for their dead rows.
    """
    from warehouse.engines import quote_ident

    for schema in schemas:
        tables = engine.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %(schema)s "
            "AND table_type = 'BASE TABLE'",
            {"schema": schema},
        )
        for (table,) in tables:
            # Names from the catalog, quoted; VACUUM runs outside a transaction (the engine is autocommit).
            name = f"{quote_ident(schema)}.{quote_ident(table)}"
            engine.execute(f"DELETE FROM {name}", None)  # noqa: S608
            if engine.kind == "postgresql":
                engine.execute(f"VACUUM {name}", None)


def cohort_index_like_soyang(table: str, name: str, *, id_type: str = "int8") -> str:
    """The index of Soyang's results ``cohort`` table (``PostgresDialect.results_indexes``), as a CREATE INDEX
    ``name`` on ``table`` (whose ``cohort_definition_id`` is of ``id_type``: Circe's is an INTEGER, int4)."""
    from cohorts.compiler.dialects import dialect_for

    soyang = dialect_for("postgresql").results_indexes('"schema"')[0]
    create = soyang[soyang.index("CREATE INDEX") : soyang.index("; DROP INDEX")]
    create = create.replace("brin_cohort_definition", name).replace('"schema".cohort', table)
    return create.replace("int8_minmax", f"{id_type}_minmax")


def measure(
    engine: Any,
    name: str,
    expression: dict[str, Any],
    *,
    cdm_schema: str,
    repeat: int,
    circe_settings: dict[str, str],
    path: str = "generate",
    store: Any = None,
    reference_engine: Any = None,
) -> Measurement:
    """Run ``expression`` ``repeat`` times with Soyang and with Circe on ``cdm_schema``, alternately.

    ``path``: ``generate`` (Soyang writes the rows, compared row by row with Circe's), ``count`` (the count path on
    the same database: persons and by-person statistics compared) or ``store`` (the count path on the site's count
    store ``store``, a Source whose store is synced, timed as the worker does it: the CDM's fingerprint read on
    PostgreSQL, the store opened, the count).

    On Spark (``engine.kind == "spark"``) Soyang runs alone; ``reference_engine`` (a list, see ``_measure_alone``)
    collects what Circe's run on DuckDB over the same data, after all of Spark's, compares."""
    from cohorts.expression import parse_expression
    from cohorts.runs.generation import count_cohort, generate_cohort
    from cohorts.tests.circe_reference import circe_reference, circe_results_schema, ensure_circe_tables
    from warehouse.engines import quote_ident

    results_schema = f"bench_results_{cdm_schema}"
    engine.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(results_schema)}", None)
    schemas = {"cdm_schema": cdm_schema, "vocabulary_schema": cdm_schema, "results_schema": results_schema}
    if engine.kind == "spark":
        return _measure_alone(
            engine, name, expression, schemas=schemas, repeat=repeat, path=path, reference_engine=reference_engine
        )
    circe_schema = circe_results_schema(results_schema)
    ensure_circe_tables(engine, circe_schema)
    if engine.kind == "postgresql":
        # Circe's cohort table gets the index Soyang's has (a BRIN on the cohort id), so both pay the same to
        # write their rows and to delete a cohort id's. Earlier versions of this script put a b-tree on both
        # cohort tables (Soyang's then had two indexes to maintain).
        for schema in (results_schema, circe_schema):
            engine.execute(f"DROP INDEX IF EXISTS {quote_ident(schema)}.ix_bench_cohort_id")
        engine.execute(
            cohort_index_like_soyang(f"{quote_ident(circe_schema)}.cohort", "brin_bench_cohort_id", id_type="int4")
        )
    reset_results(engine, [results_schema, circe_schema])
    outcome = Measurement(
        definition=name, engine=engine.kind if path != "store" else "count-store", data=cdm_schema, loadavg=loadavg()
    )
    parsed = parse_expression(expression)
    result = reference = None
    cohort_id = COHORT_ID
    for attempt in range(repeat):
        # A new cohort id per generation, as the worker generates each run under its own id (both engines alike).
        cohort_id = COHORT_ID + attempt
        started = time.perf_counter()
        if path == "generate":
            result = generate_cohort(engine, parsed, cohort_id=cohort_id, **schemas)
        elif path == "count":
            result = count_cohort(engine, parsed, **schemas)
        else:
            result = _count_on_store(engine, store, parsed, schemas)
        outcome.soyang_seconds.append(time.perf_counter() - started)
        reference = circe_reference(
            engine,
            expression,
            cohort_id=cohort_id,
            deterministic=True,
            postgresql_settings=circe_settings,
            **schemas,
        )
        outcome.circe_seconds.append(reference.seconds)
    assert result is not None and reference is not None
    _compare(engine, outcome, result, reference, path=path, results_schema=results_schema, cohort_id=cohort_id)
    return outcome


def _compare(
    engine: Any, outcome: Measurement, result: Any, reference: Any, *, path: str, results_schema: str, cohort_id: int
) -> None:
    """Soyang's rows (or persons, on the count paths) and statistics against Circe's ``reference``."""
    from cohorts.runs.generation import cohort_rows

    rows = None
    if path == "generate":
        rows = [tuple(r) for r in cohort_rows(engine, results_schema=results_schema, cohort_id=cohort_id)]
    _compare_rows(outcome, rows, result, reference, path=path)


def _compare_rows(outcome: Measurement, rows: list[tuple] | None, result: Any, reference: Any, *, path: str) -> None:
    if path == "generate":
        assert rows is not None
        outcome.soyang_rows, outcome.circe_rows = len(rows), len(reference.rows)
        outcome.rows_equal = rows == [tuple(r) for r in reference.rows]
    else:
        # No rows are made: the persons are compared with Circe's distinct subjects.
        outcome.soyang_rows, outcome.circe_rows = result.persons, len({r[0] for r in reference.rows})
        outcome.rows_equal = outcome.soyang_rows == outcome.circe_rows
    outcome.stats_equal = [(n, int(c)) for n, c in result.inclusion_rules] == [
        (r["name"], r["count"]) for r in reference.by_person["inclusion_rules"]
    ] and [(n, int(c)) for n, c in result.attrition] == [
        (a["name"], a["count"]) for a in reference.by_person["attrition"]
    ]


def _measure_alone(
    engine: Any,
    name: str,
    expression: dict[str, Any],
    *,
    schemas: dict[str, str],
    repeat: int,
    path: str,
    reference_engine: Any,
) -> Measurement:
    """Soyang alone on ``engine`` (Spark), ``repeat`` times. ``reference_engine`` here is a list that receives
    what the comparison with Circe's rows on DuckDB needs (``compare_deferred``), or None for no comparison.

    Spark's results tables are partitioned by cohort id and each generation replaces its own partition, so no
    reset is needed between definitions (nor possible: Spark cannot DELETE from Parquet tables)."""
    from cohorts.expression import parse_expression
    from cohorts.runs.generation import cohort_rows, count_cohort, generate_cohort

    if path not in ("generate", "count"):
        raise ValueError("Spark runs the generate and count paths only")
    outcome = Measurement(definition=name, engine=engine.kind, data=schemas["cdm_schema"], loadavg=loadavg())
    parsed = parse_expression(expression)
    result = None
    cohort_id = COHORT_ID
    for attempt in range(repeat):
        cohort_id = COHORT_ID + attempt
        with _counting(engine) as counted:
            started = time.perf_counter()
            if path == "generate":
                result = generate_cohort(engine, parsed, cohort_id=cohort_id, **schemas)
            else:
                result = count_cohort(engine, parsed, **schemas)
            outcome.soyang_seconds.append(time.perf_counter() - started)
        outcome.statements = counted[0]
    assert result is not None
    outcome.soyang_rows = result.rows if path == "generate" else result.persons
    outcome.soyang_persons = result.persons
    outcome.soyang_attrition = [n for _, n in result.attrition]
    if reference_engine is None:
        return outcome
    rows = None
    if path == "generate":
        rows = [tuple(r) for r in cohort_rows(engine, results_schema=schemas["results_schema"], cohort_id=cohort_id)]
    # Compared at the end of the run (``compare_deferred``): DuckDB's file is then free of other benchmark runs.
    reference_engine.append((outcome, expression, schemas, result, rows, cohort_id, path))
    return outcome


def compare_clones(measurements: list[Measurement], before: dict[str, Any], clones: int) -> None:
    """On a warehouse of ``clones`` clones, every count is ``clones`` times the one on the warehouse cloned
    (``before``: that run's --json, itself compared with Circe): the check of a run too large for a reference."""
    earlier = {m["definition"]: m for m in before["measurements"]}
    for outcome in measurements:
        was = earlier.get(outcome.definition)
        if was is None or outcome.soyang_rows is None or was.get("soyang_rows") is None:
            continue
        outcome.circe_rows = clones * was["soyang_rows"]  # shown as the reference column: Circe's count x clones
        outcome.rows_equal = outcome.soyang_rows == outcome.circe_rows and bool(was.get("rows_equal"))
        if was.get("soyang_persons") is not None:
            outcome.stats_equal = (
                outcome.soyang_persons == clones * was["soyang_persons"]
                and outcome.soyang_attrition == [clones * n for n in was.get("soyang_attrition", [])]
                and bool(was.get("stats_equal"))
            )


def compare_deferred(reference_engine: Any, deferred: list[tuple[Any, ...]]) -> None:
    """Circe's rows on ``reference_engine`` (DuckDB, same data) against the Spark runs kept in ``deferred``."""
    from cohorts.tests.circe_reference import circe_reference
    from warehouse.engines import quote_ident

    for outcome, expression, schemas, result, rows, cohort_id, path in deferred:
        print(f"[{reference_engine.kind}] reference rows of {outcome.definition} ...", flush=True)
        try:
            reference_engine.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schemas['results_schema'])}", None)
            reference = circe_reference(
                reference_engine, expression, cohort_id=cohort_id, deterministic=True, **schemas
            )
            _compare_rows(outcome, rows, result, reference, path=path)
        except Exception as exc:  # one failing reference must not hide the others'
            outcome.error = f"reference: {type(exc).__name__}: {exc}"


@contextlib.contextmanager
def _counting(engine: Any) -> Iterator[list[int]]:
    """Count the statements ``engine`` sends (its execute and fetchall calls; scripts go through execute)."""
    counted = [0]
    execute, fetchall = engine.execute, engine.fetchall

    def counting_execute(*args: Any, **kwargs: Any) -> Any:
        counted[0] += 1
        return execute(*args, **kwargs)

    def counting_fetchall(*args: Any, **kwargs: Any) -> Any:
        counted[0] += 1
        return fetchall(*args, **kwargs)

    engine.execute, engine.fetchall = counting_execute, counting_fetchall
    try:
        yield counted
    finally:
        del engine.execute, engine.fetchall


def probe(engine: Any, cdm_schema: str, repeat: int) -> dict[str, Any]:
    """What the cluster arithmetic needs, printed: the fixed cost of trivial statements and the rows read per
    second by a full scan of each event table's concept column (a filter no statistic or file footer can answer,
    so every value is read and tested). Medians of ``repeat`` runs."""
    from warehouse.engines import quote_ident

    def timed(sql: str) -> tuple[float, Any]:
        times, value = [], None
        for _ in range(repeat):
            started = time.perf_counter()
            value = engine.fetchone(sql, None)
            times.append(time.perf_counter() - started)
        return statistics.median(times), value

    schema = quote_ident(cdm_schema)
    figures: dict[str, Any] = {"engine": engine.kind, "data": cdm_schema, "loadavg_before": loadavg()}
    figures["select_1_s"], _ = timed("SELECT 1")
    figures["count_person_s"], persons = timed(f"SELECT COUNT(*) FROM {schema}.person")  # noqa: S608
    figures["persons"] = int(persons[0])
    scans = {}
    for table, column in (
        ("condition_occurrence", "condition_concept_id"),
        ("drug_exposure", "drug_concept_id"),
        ("procedure_occurrence", "procedure_concept_id"),
        ("measurement", "measurement_concept_id"),
        ("observation", "observation_concept_id"),
        ("visit_occurrence", "visit_concept_id"),
    ):
        # Names from this script, quoted.
        seconds, row = timed(
            f"SELECT COUNT(*), SUM(CASE WHEN MOD({column}, 7) = 3 THEN 1 ELSE 0 END) "  # noqa: S608
            f"FROM {schema}.{quote_ident(table)}"
        )
        rows = int(row[0])
        scans[table] = {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds if seconds else None}
    figures["scans"] = scans
    figures["loadavg_after"] = loadavg()
    print(
        f"[{engine.kind}] probe on {cdm_schema} "
        f"(load average {figures['loadavg_before']} -> {figures['loadavg_after']}): "
        f"SELECT 1 {figures['select_1_s']:.3f} s, COUNT(*) person {figures['count_person_s']:.3f} s",
        flush=True,
    )
    for table, scan in scans.items():
        print(
            f"[{engine.kind}]   scan {table:<22} {scan['rows']:>12,} rows {scan['seconds']:8.3f} s "
            f"{(scan['rows_per_s'] or 0) / 1e6:8.1f} M rows/s",
            flush=True,
        )
    return figures


def _count_on_store(engine: Any, store: Any, parsed: Any, schemas: dict[str, str]) -> Any:
    """One count as the worker makes it at a site with a fresh store: fingerprint, open, count, close."""
    from cohorts.runs.generation import count_cohort
    from warehouse.count_store import store_open, store_state
    from warehouse.fingerprint import cdm_fingerprint

    current = cdm_fingerprint(engine, store)
    state = store_state(store)
    if state is None or state.fingerprint != current:
        raise RuntimeError(f"the count store of {store.cdm_schema} is not fresh")
    opened = store_open(store, statement_timeout_seconds=600)
    try:
        return count_cohort(opened, parsed, **schemas)
    finally:
        opened.close()


def prepare_store(engine: Any, args: argparse.Namespace, cdm_schema: str) -> Any:
    """The count store of ``cdm_schema`` (PostgreSQL), synced when missing or stale; prints the sync's figures."""
    from warehouse.count_store import store_state, store_sync
    from warehouse.fingerprint import cdm_fingerprint, counted_tables
    from warehouse.models import Source

    site = Source(
        key=f"bench_{cdm_schema}",
        engine="postgresql",
        url=args.pg_url,
        cdm_schema=cdm_schema,
        vocabulary_schema=cdm_schema,
        results_schema=f"bench_results_{cdm_schema}",
    )
    state = store_state(site)
    if state is None or state.fingerprint != cdm_fingerprint(engine, site):
        print(f"[store] syncing {cdm_schema} ...", flush=True)
        report = store_sync(site, tables=counted_tables(site), fingerprint=lambda: cdm_fingerprint(engine, site))
        print(
            f"[store] {cdm_schema}: {report.total_rows:,} rows of {len(report.rows)} tables in {report.seconds:.1f} s; "
            f"{report.bytes / 2**20:,.1f} MiB",
            flush=True,
        )
    else:
        print(
            f"[store] {cdm_schema}: fresh, synced {state.synced_at:%Y-%m-%d %H:%M} in {state.seconds:.1f} s; "
            f"{sum(state.rows.values()):,} rows, {state.bytes / 2**20:,.1f} MiB",
            flush=True,
        )
    return site


def oracle_definitions(names: list[str], dataset: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, expression) of the oracle definitions of ``dataset`` selected by ``names`` ("all" = every one)."""
    oracle = shared_data_dir().parent / "oracle"
    manifest = json.loads((oracle / "manifest.json").read_text())
    chosen = [
        entry["name"]
        for entry in manifest
        if entry["dataset"] == dataset and ("all" in names or entry["name"] in names)
    ]
    if "all" not in names:
        chosen.sort(key=names.index)  # in the order given: the cheapest first, when time is short
    return [(name, json.loads((oracle / "cohorts" / f"{name}.json").read_text())) for name in chosen]


def print_table(measurements: list[Measurement]) -> None:
    """The results table and the overall median ratio per engine."""

    def seconds(value: float | None) -> str:
        return f"{value:9.3f}" if value is not None else "        -"

    header = (
        f"{'definition':<40} {'engine':<10} {'data':<16} {'Soyang s':>9} {'Circe s':>9} {'ratio':>6} {'rows':>8} "
        f"{'load avg':<15} equal"
    )
    print()
    print(header)
    print("-" * len(header))
    for m in measurements:
        ratio = f"{m.ratio:6.2f}" if m.ratio is not None else "     -"
        equal = "error: " + m.error[:60] if m.error else ("yes" if m.rows_equal else "NO")
        if not m.error and m.rows_equal and m.stats_equal is False:
            equal = "rows yes, stats NO"
        rows = f"{m.soyang_rows if m.soyang_rows is not None else '-':>8}"
        print(
            f"{m.definition:<40} {m.engine:<10} {m.data:<16} {seconds(m.soyang_median)} {seconds(m.circe_median)} "
            f"{ratio} {rows} {m.loadavg:<15} {equal}" + (f" ({m.statements} statements)" if m.statements else "")
        )
    print()
    for kind in sorted({m.engine for m in measurements}):
        ratios = [m.ratio for m in measurements if m.engine == kind and m.ratio is not None]
        agree = sum(1 for m in measurements if m.engine == kind and m.rows_equal)
        total = sum(1 for m in measurements if m.engine == kind)
        times = [m.soyang_median for m in measurements if m.engine == kind and m.soyang_median is not None]
        if times:
            print(
                f"{kind}: median Soyang time {statistics.median(times):.3f} s, max {max(times):.3f} s, "
                f"sum {sum(times):.1f} s over {len(times)} definitions; rows identical for {agree}/{total}"
            )
        if ratios:
            print(
                f"{kind}: median ratio Soyang/Circe {statistics.median(ratios):.2f} over {len(ratios)} definitions; "
                f"rows identical for {agree}/{total}"
            )
    ratios = [m.ratio for m in measurements if m.ratio is not None]
    if ratios:
        print(f"overall median ratio Soyang/Circe: {statistics.median(ratios):.2f}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("postgresql", "duckdb", "both", "spark"), default="both")
    parser.add_argument(
        "--spark-url",
        default=os.environ.get("SOYANG_BENCH_SPARK_URL", "sc://127.0.0.1:15002"),
        help="Spark Connect server for --engine spark (python -m warehouse.spark_server start DIR prints one)",
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="on Spark, skip the comparison with Circe's rows on DuckDB"
    )
    parser.add_argument("--probe", action="store_true", help="also probe fixed costs and scan rates (Spark: always)")
    parser.add_argument("--scale", type=int, default=10, help="GiBleed clones (persons x k)")
    parser.add_argument("--definitions", nargs="+", default=["all"], help="oracle definition names, or all")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--synthetic-persons", type=int, help="benchmark on a synthetic warehouse of N persons")
    parser.add_argument(
        "--synthetic-clones",
        type=int,
        default=1,
        help="clone the synthetic warehouse k times (scale_cdm) into synthetic_<N>_x<k>: 10M persons from 1M",
    )
    parser.add_argument(
        "--clones-of",
        type=Path,
        help="with --synthetic-clones k: the --json of the same definitions on the warehouse before cloning; every "
        "row count, person count and attrition step must be exactly k times its own",
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic warehouse")
    parser.add_argument("--jobs", type=int, default=2, help="processes writing the synthetic warehouse")
    parser.add_argument("--synthea", action="store_true", help="also run the Synthea definitions on Synthea27Nj x1")
    parser.add_argument("--pg-url", default=os.environ.get("SOYANG_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--duckdb-path", default=str(REPO / "var" / "bench" / "soyang_bench.duckdb"))
    parser.add_argument(
        "--duckdb-memory", default="", help="DuckDB's memory_limit, e.g. 4GB (default: DuckDB's, 80 %% of RAM)"
    )
    parser.add_argument("--timeout", type=int, default=600, help="statement timeout in seconds")
    parser.add_argument(
        "--circe-no-nestloop",
        action="store_true",
        help="run Circe with enable_nestloop=off on PostgreSQL (its row estimates can make nested loops explode)",
    )
    parser.add_argument(
        "--path",
        choices=("generate", "count", "store"),
        default="generate",
        help="Soyang's path: write the rows (generate), count only (count), count on the site's count store "
        "(store: PostgreSQL data, synced into a DuckDB store first; Circe runs on PostgreSQL)",
    )
    parser.add_argument("--json", type=Path, help="also write the measurements to this JSON file")
    return parser.parse_args(argv)


def prepare_data(engine: Any, args: argparse.Namespace) -> list[tuple[str, str]]:
    """(CDM schema, oracle data set) pairs to measure on ``engine``, loaded when missing."""
    if args.synthetic_persons:
        schema = prepare_synthetic(engine, args.synthetic_persons, args.seed, args.jobs)
        if args.synthetic_clones > 1:
            from warehouse.synthetic.synthesis import CDM_VERSION

            schema = prepare_clones(engine, schema, args.synthetic_persons, args.synthetic_clones, CDM_VERSION)
        return [(schema, "gibleed")]
    plan = [(prepare_gibleed(engine, args.scale), "gibleed")]
    if args.synthea:
        plan.append((prepare_synthea(engine), "synthea27nj"))
    return plan


def main(argv: list[str] | None = None) -> int:
    """Prepare the data, measure every selected definition on every selected engine, print the table."""
    args = parse_args(argv)
    ensure_django()
    kinds = ("postgresql", "duckdb") if args.engine == "both" else (args.engine,)
    if args.path == "store":
        kinds = ("postgresql",)  # the store is a PostgreSQL site's; Circe runs on that PostgreSQL
    circe_settings = {"enable_nestloop": "off"} if args.circe_no_nestloop else {}
    measurements: list[Measurement] = []
    probes: list[dict[str, Any]] = []
    for kind in kinds:
        engine = open_engine(kind, args)
        deferred: list[tuple[Any, ...]] | None = [] if kind == "spark" and not args.no_reference else None
        try:
            plan = prepare_data(engine, args)
            for cdm_schema, dataset in plan:
                if kind == "spark" or args.probe:
                    probes.append(probe(engine, cdm_schema, args.repeat))
                store = prepare_store(engine, args, cdm_schema) if args.path == "store" else None
                for name, expression in oracle_definitions(args.definitions, dataset):
                    print(f"[{kind}] {name} on {cdm_schema} ...", flush=True)
                    try:
                        measurements.append(
                            measure(
                                engine,
                                name,
                                expression,
                                cdm_schema=cdm_schema,
                                repeat=args.repeat,
                                circe_settings=circe_settings,
                                path=args.path,
                                store=store,
                                reference_engine=deferred,
                            )
                        )
                    except Exception as exc:  # one failing definition must not hide the others' figures
                        measurements.append(
                            Measurement(
                                definition=name, engine=kind, data=cdm_schema, error=f"{type(exc).__name__}: {exc}"
                            )
                        )
        finally:
            engine.close()
        if deferred:
            # Circe's rows on DuckDB over the same data: what Spark's rows must equal.
            reference_engine = open_engine("duckdb", args)
            try:
                prepare_data(reference_engine, args)
                compare_deferred(reference_engine, deferred)
            finally:
                reference_engine.close()
    if args.clones_of:
        compare_clones(measurements, json.loads(args.clones_of.read_text()), args.synthetic_clones)
    print_table(measurements)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "measurements": [
                        asdict(m) | {"soyang_median": m.soyang_median, "circe_median": m.circe_median}
                        for m in measurements
                    ],
                    "probes": probes,
                },
                indent=1,
            )
        )
    return 0 if all(m.rows_equal for m in measurements) else 1


if __name__ == "__main__":
    raise SystemExit(main())
