"""Benchmark: what reading a CDM's fingerprint costs (``warehouse.fingerprint.cdm_fingerprint``), which every count
does before it starts; and, with ``--entry-concept``, what a missing concept index costs one criterion's read of
its entry events (PostgreSQL: the same query with index scans allowed and forbidden).

    .venv/bin/python scripts/bench_fingerprint.py --engine duckdb --url duckdb:////abs/warehouse.duckdb --schema cdm
    .venv/bin/python scripts/bench_fingerprint.py --engine postgresql \\
        --url postgresql://postgres@127.0.0.1:5432/soyang_test_cdm --schema gibleed --entry-concept 1118084

Prints the first (cold connection) and the median and worst of ``--repeat`` reads, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from warehouse.engines import Engine, connect, quote_ident  # noqa: E402
from warehouse.fingerprint import cdm_fingerprint  # noqa: E402


@dataclass(frozen=True)
class Schemas:
    cdm_schema: str
    vocabulary_schema: str


def timed(action: object, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return times


def entry_events(engine: Engine, schema: str, concept: int, repeat: int) -> None:
    """The entry-event read of a drug criterion (its concept's descendants, each event with its id, dates, days
    supply and visit), with the concept index and without it (index scans forbidden: a sequential scan)."""
    drugs, ancestors = (f"{quote_ident(schema)}.{quote_ident(t)}" for t in ("drug_exposure", "concept_ancestor"))
    columns = "de.person_id, de.drug_exposure_id, de.drug_exposure_start_date, de.drug_exposure_end_date"
    codeset = f"SELECT descendant_concept_id FROM {ancestors} WHERE ancestor_concept_id = %(c)s"  # noqa: S608
    events = f"SELECT {columns}, de.days_supply, de.visit_occurrence_id FROM {drugs} de"  # noqa: S608
    sql = f"SELECT COUNT(*), SUM(e.days_supply) FROM ({events} WHERE de.drug_concept_id IN ({codeset})) e"  # noqa: S608
    for label, switch in (("with the concept index", "on"), ("without (sequential scan)", "off")):
        for setting in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"):
            engine.execute(f"SET {setting} = {switch}")
        rows = engine.fetchone(sql, {"c": concept})
        times = timed(lambda: engine.fetchall(sql, {"c": concept}), repeat)  # noqa: B023 - called at once
        print(f"entry events {label}: {rows[0] if rows else 0} events, median {statistics.median(times):.1f} ms")
    for setting in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"):
        engine.execute(f"RESET {setting}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", required=True, choices=["postgresql", "duckdb"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--schema", required=True, help="the CDM schema")
    parser.add_argument("--vocabulary-schema", default=None, help="defaults to the CDM schema")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--entry-concept", type=int, default=None, help="PostgreSQL: an ingredient concept id")
    args = parser.parse_args()
    site = Schemas(args.schema, args.vocabulary_schema or args.schema)
    with connect(args.engine, args.url, read_only=True) as engine:
        first = timed(lambda: cdm_fingerprint(engine, site), 1)
        times = timed(lambda: cdm_fingerprint(engine, site), args.repeat)
        fingerprint = cdm_fingerprint(engine, site)[:12]
        print(
            f"fingerprint {fingerprint} on {args.engine} {args.schema}: first {first[0]:.1f} ms, "
            f"median {statistics.median(times):.1f} ms, worst {max(times):.1f} ms of {args.repeat}"
        )
        if args.entry_concept is not None and args.engine == "postgresql":
            entry_events(engine, args.schema, args.entry_concept, max(3, args.repeat // 4))


if __name__ == "__main__":
    main()
