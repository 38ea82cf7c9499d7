"""Benchmark a set of definitions counted together against the same definitions counted one by one.

    .venv/bin/python scripts/bench_cohort_sets.py --scale 50 --where store --repeat 3
    .venv/bin/python scripts/bench_cohort_sets.py --scale 10 --where duckdb

The set is every GiBleed oracle definition. One by one: each definition counted alone on the count path
(``count_cohort``, its concept sets resolved by its own statement), as separate counts are. Together: the set's
concept sets resolved in one query (``resolve_concept_sets``, what ``run_execute_set`` does through the worker's
``ConceptSetCache``), then each definition counted with them. Both on the same engine, alternately; the counts
are compared. ``--where store`` counts on the count store of the PostgreSQL schema ``gibleed_x<scale>`` of
``bench_cohorts.py`` (synced there first), ``postgresql`` on that schema, ``duckdb`` on the DuckDB benchmark file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts import bench_cohorts  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--where", choices=("store", "postgresql", "duckdb"), default="store")
    parser.add_argument("--scale", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", default=bench_cohorts.DEFAULT_PG_URL)
    parser.add_argument("--duckdb-path", default=str(REPO / "var" / "bench" / "soyang_bench.duckdb"))
    parser.add_argument("--timeout", type=int, default=600)
    args = parser.parse_args(argv)
    bench_cohorts.ensure_django()
    from cohorts.expression import parse_expression
    from cohorts.runs.generation import count_cohort, resolve_concept_sets
    from warehouse.count_store import store_open

    kind = "duckdb" if args.where == "duckdb" else "postgresql"
    engine = bench_cohorts.open_engine(kind, args)
    schema = bench_cohorts.prepare_gibleed(engine, args.scale)
    counting = engine
    if args.where == "store":
        site = bench_cohorts.prepare_store(engine, args, schema)
        counting = store_open(site, statement_timeout_seconds=args.timeout)
    named = bench_cohorts.oracle_definitions(["all"], "gibleed")
    expressions = [parse_expression(expression) for _, expression in named]
    schemas = {"cdm_schema": schema, "vocabulary_schema": schema, "results_schema": f"bench_results_{schema}"}
    alone: list[float] = []
    together: list[float] = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        one = [count_cohort(counting, expression, **schemas).persons for expression in expressions]
        alone.append(time.perf_counter() - started)
        started = time.perf_counter()
        resolved = resolve_concept_sets(counting, expressions, vocabulary_schema=schema)
        joint = [
            count_cohort(counting, expression, resolved=concepts, **schemas).persons
            for expression, concepts in zip(expressions, resolved, strict=True)
        ]
        together.append(time.perf_counter() - started)
        if one != joint:
            print("the set counted other numbers than the definitions alone", file=sys.stderr)
            return 1
    distinct = len({cs.items for e in expressions for cs in e.concept_sets})
    total = sum(len(e.concept_sets) for e in expressions)
    a, t = statistics.median(alone), statistics.median(together)
    print(
        json.dumps(
            {
                "where": args.where,
                "data": schema,
                "definitions": len(expressions),
                "concept_sets": total,
                "distinct_concept_sets": distinct,
                "one_by_one_seconds": round(a, 3),
                "together_seconds": round(t, 3),
                "speed_up": round(a / t, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
