"""How fast could any engine be? A lower bound per oracle definition on PostgreSQL, beside Soyang and Circe.

    .venv/bin/python scripts/bench_cohort_floor.py --scale 10 --repeat 5
    .venv/bin/python scripts/bench_cohort_floor.py --synthetic-persons 100000 --definitions pl_10606 pl_2078

Whatever SQL an engine generates from a definition, reading the CDM tables as a site keeps them, it must at
least (1) read the primary criterion's events, (2) find each event's observation period and (3) write the
cohort's rows into the results table and commit. This script times exactly those three steps for each oracle
definition, with everything else taken away:

1. **read**: ``SELECT count(*)`` over Soyang's own entry-event query (concept ids bound as an array, through the
   covering concept index), nothing written;
2. **periods**: those events, already in an analyzed temp table, joined to ``observation_period`` and counted,
   timed with each join method the planner has (hash, merge, nested loop through the period index, each forced
   in turn); the fastest counts;
3. **write**: the definition's final rows, prepared in advance, inserted into a table shaped and indexed like
   the results ``cohort`` table, in a transaction of its own, committed.

Not in the floor: First/limit ordinals, inclusion rules and additional criteria, end strategies, censoring,
era collapse, the statistics. The floor is therefore below what any complete engine can reach; where it is
above a tenth of Circe's time, "10x faster than Circe" is out of reach for that definition on that data without
structures beyond the CDM tables. Soyang and Circe are measured as ``bench_cohorts.py`` measures them (alternately,
rows compared); each step of the floor is the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for entry in (REPO, REPO / "scripts"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

import bench_cohorts  # noqa: E402  (the benchmark's data preparation and measurement, shared)

#: (enable_nestloop, enable_mergejoin, enable_hashjoin) forcing each join method in turn.
JOIN_METHODS = {"hash": ("off", "off", "on"), "merge": ("off", "on", "off"), "nested loop": ("on", "off", "off")}
FLOOR_ROWS = "soyang_floor_rows"
FLOOR_TARGET = "soyang_floor_cohort"


def median_seconds(action: Callable[[], Any], repeat: int) -> float:
    """The median wall time of ``repeat`` calls of ``action``."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def floor_steps(engine: Any, expression: dict[str, Any], *, cdm_schema: str, repeat: int) -> dict[str, float]:
    """Seconds of the three steps every engine must take for ``expression`` (see the module's docstring).

    Soyang's rows of the definition must be in ``bench_results_<cdm_schema>.cohort`` under the benchmark's last
    cohort id (``measure`` leaves them there)."""
    from cohorts.compiler import codesets_query, compile_cohort
    from cohorts.compiler.dialects import dialect_for
    from cohorts.expression import parse_expression
    from warehouse.engines import quote_ident

    dialect = dialect_for("postgresql")
    parsed = parse_expression(expression)
    results = quote_ident(f"bench_results_{cdm_schema}")
    cdm = quote_ident(cdm_schema)
    last_id = bench_cohorts.COHORT_ID + repeat - 1
    steps: dict[str, float] = {}
    with engine.transaction():
        for sql in dialect.transaction_settings():
            engine.execute(sql)
        values: dict[int, list[int]] = {}
        for codeset, concept in engine.fetchall(
            *codesets_query(parsed, dialect="postgresql", vocabulary_schema=cdm_schema)
        ):
            values.setdefault(int(codeset), []).append(int(concept))
        compiled = compile_cohort(
            parsed,
            dialect="postgresql",
            cohort_id=last_id,
            codeset_values=values,
            cdm_schema=cdm_schema,
            vocabulary_schema=cdm_schema,
            results_schema=f"bench_results_{cdm_schema}",
        )
        create, params = next(
            (sql, p) for sql, p in compiled.statements if sql.startswith("CREATE TEMPORARY TABLE soyang_entry_events")
        )
        select = create.split(" AS\n", 1)[1]
        steps["read"] = median_seconds(
            lambda: engine.fetchall(f"SELECT count(*) FROM (\n{select}\n) E", params),  # noqa: S608
            repeat,
        )
        engine.execute(create, params)
        engine.execute("ANALYZE soyang_entry_events")
        periods = f"{cdm}.observation_period"  # a quoted schema name and a constant
        joined = (
            f"SELECT count(*) FROM soyang_entry_events E JOIN {periods} OP ON E.person_id = "  # noqa: S608
            "OP.person_id AND E.start_date >= OP.observation_period_start_date "
            "AND E.start_date <= OP.observation_period_end_date"
        )
        methods = {}
        for method, (nestloop, merge, hash_join) in JOIN_METHODS.items():
            engine.execute(
                f"SELECT set_config('enable_nestloop', '{nestloop}', true), "
                f"set_config('enable_mergejoin', '{merge}', true), set_config('enable_hashjoin', '{hash_join}', true), "
                "set_config('random_page_cost', '1.1', true)"
            )
            methods[method] = median_seconds(lambda: engine.fetchall(joined), repeat)
        steps["periods"] = min(methods.values())  # the temp table and the settings go with the commit

    engine.execute(f"DROP TABLE IF EXISTS {FLOOR_ROWS}, {FLOOR_TARGET}")
    engine.execute(
        f"CREATE TABLE {FLOOR_ROWS} AS SELECT subject_id, cohort_start_date, cohort_end_date "  # noqa: S608
        f"FROM {results}.cohort WHERE cohort_definition_id = {last_id}"
    )
    engine.execute(f"CREATE TABLE {FLOOR_TARGET} (LIKE {results}.cohort)")
    engine.execute(bench_cohorts.cohort_index_like_soyang(FLOOR_TARGET, "brin_floor_cohort"))
    written = iter(range(1, 10**6))

    def write() -> None:
        with engine.transaction():
            engine.execute(
                f"INSERT INTO {FLOOR_TARGET} SELECT {next(written)}, subject_id, cohort_start_date, "  # noqa: S608
                f"cohort_end_date FROM {FLOOR_ROWS}"
            )

    try:
        steps["write"] = median_seconds(write, repeat)
    finally:
        engine.execute(f"DROP TABLE IF EXISTS {FLOOR_ROWS}, {FLOOR_TARGET}")
    return steps


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (the data options are bench_cohorts.py's)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=10, help="GiBleed clones (persons x k)")
    parser.add_argument("--synthetic-persons", type=int, help="on a synthetic warehouse of N persons instead")
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic warehouse")
    parser.add_argument("--definitions", nargs="+", default=["all"], help="oracle definition names, or all")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg-url", default=bench_cohorts.DEFAULT_PG_URL)
    parser.add_argument("--timeout", type=int, default=600, help="statement timeout in seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure Soyang, Circe and the floor for every selected definition; print the table and the medians."""
    args = parse_args(argv)
    args.duckdb_path = ""
    bench_cohorts.ensure_django()
    engine = bench_cohorts.open_engine("postgresql", args)
    try:
        if args.synthetic_persons:
            cdm_schema = bench_cohorts.prepare_synthetic(engine, args.synthetic_persons, args.seed)
        else:
            cdm_schema = bench_cohorts.prepare_gibleed(engine, args.scale)
        header = (
            f"{'definition':<40} {'rows':>7} {'Circe ms':>9} {'Soyang ms':>9} {'read':>7} {'periods':>8} "
            f"{'write':>7} {'floor':>7} {'floor/Circe':>11} {'Soyang/Circe':>12}"
        )
        print(header)
        print("-" * len(header))
        floors, without_periods, ratios = [], [], []
        for name, expression in bench_cohorts.oracle_definitions(args.definitions, "gibleed"):
            measured = bench_cohorts.measure(
                engine, name, expression, cdm_schema=cdm_schema, repeat=args.repeat, circe_settings={}
            )
            if not measured.rows_equal:
                print(f"{name}: Soyang's rows differ from Circe's; no floor taken")
                continue
            steps = floor_steps(engine, expression, cdm_schema=cdm_schema, repeat=args.repeat)
            circe, soyang = measured.circe_median, measured.soyang_median
            assert circe is not None and soyang is not None
            floor = sum(steps.values())
            floors.append(floor / circe)
            # What would be left if a structure beyond the CDM tables gave every event its period.
            without_periods.append((floor - steps["periods"]) / circe)
            ratios.append(soyang / circe)
            print(
                f"{name:<40} {measured.circe_rows:>7} {circe * 1000:9.1f} {soyang * 1000:9.1f} "
                f"{steps['read'] * 1000:7.2f} {steps['periods'] * 1000:8.2f} {steps['write'] * 1000:7.2f} "
                f"{floor * 1000:7.2f} {floor / circe:11.3f} {soyang / circe:12.2f}",
                flush=True,
            )
        if floors:
            within = sum(1 for f in floors if f <= 0.1)
            print()
            print(
                f"median floor/Circe {statistics.median(floors):.3f}; "
                f"floor within a tenth of Circe for {within}/{len(floors)}"
            )
            print(
                f"median (read + write)/Circe, the floor without the periods {statistics.median(without_periods):.3f}"
            )
            print(f"median Soyang/Circe {statistics.median(ratios):.2f}")
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
