"""Benchmark: generate a synthetic CDM and load it, printing persons/s, rows/s, seconds per phase, rows per table.

    .venv/bin/python scripts/bench_synthesize.py --persons 50000 --engine none --jobs 2
    .venv/bin/python scripts/bench_synthesize.py --persons 50000 --engine duckdb
    .venv/bin/python scripts/bench_synthesize.py --persons 50000 --engine postgresql \
        --url postgresql://postgres@127.0.0.1:5432/soyang_s_cdm
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from warehouse.synthetic.synthesis import CDM_VERSION, write_cdm  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=None, help="generating processes (default: one per CPU)")
    parser.add_argument("--engine", choices=["duckdb", "postgresql", "none"], default="duckdb")
    parser.add_argument("--url", help="engine URL (default: a DuckDB file in the work directory)")
    parser.add_argument("--schema", default="cdm")
    parser.add_argument("--work-dir", type=Path, help="keep the CSV files here (default: a temporary directory)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="soyang-bench-") as tmp:
        work = args.work_dir or Path(tmp)
        started = time.perf_counter()
        report = write_cdm(
            work / "csv", persons=args.persons, seed=args.seed, chunk_size=args.chunk_size, jobs=args.jobs
        )
        generate_s = time.perf_counter() - started
        load_s = 0.0
        if args.engine != "none":
            from warehouse.engines import connect
            from warehouse.loader import load_cdm_directory

            url = args.url or f"duckdb:///{work / 'warehouse.duckdb'}"
            engine = connect(args.engine, url)
            t = time.perf_counter()
            try:
                load_cdm_directory(engine, work / "csv", cdm_schema=args.schema, cdm_version=CDM_VERSION)
            finally:
                engine.close()
            load_s = time.perf_counter() - t
        total_s = generate_s + load_s
        rows = report.total_rows
        # Workers are child processes: RUSAGE_CHILDREN reports the largest of them (not their sum).
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        child_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        size_mib = sum(p.stat().st_size for p in (work / "csv").glob("*.csv")) / 2**20
        print(f"persons           {args.persons}  (jobs {args.jobs or os.cpu_count()}, chunk {args.chunk_size})")
        print(f"rows              {rows}  ({rows / args.persons:.1f} per person, CSV {size_mib:.0f} MiB)")
        print(f"generate+write    {generate_s:8.1f} s  {args.persons / generate_s:10.0f} persons/s  "
              f"{rows / generate_s:12.0f} rows/s")  # fmt: skip
        if args.engine != "none":
            print(f"load ({args.engine:10s}) {load_s:8.1f} s  {rows / load_s:12.0f} rows/s")
        print(
            f"total             {total_s:8.1f} s  {args.persons / total_s:10.0f} persons/s  "
            f"{rows / total_s:12.0f} rows/s"
        )
        print(f"peak RSS          {peak_mib:.0f} MiB this process, {child_mib:.0f} MiB largest worker")
        for table, count in sorted(report.rows.items(), key=lambda kv: -kv[1]):
            print(f"  {table:22s} {count:12d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
