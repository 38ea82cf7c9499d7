"""What the cell keys cost a count: each oracle definition generated with and without the site's record keys.

    .venv/bin/python scripts/bench_cell_keys.py [DUCKDB_FILE] [--repeat N]

DUCKDB_FILE defaults to a copy of the demo warehouse (``make run`` makes ``var/demo/demo.duckdb``); the script
works on a copy under a temporary directory, so the demo is left as it was. Prints, per definition, the persons and
the median milliseconds of a generation without keys (what the benchmarks against Circe time) and with them (what a
count at a site costs), and the time to key every person the first time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")

import django  # noqa: E402

django.setup()

from cohorts.runs.generation import generate_cohort  # noqa: E402
from disclosure import record_keys  # noqa: E402
from warehouse.engines import connect  # noqa: E402

DEFINITIONS = (
    "pl_12396",
    "pl_16917",
    "h06_pharyngitis_at_least_two_nested",
    "pl_10606",
    "h04_gibleed_censored_by_acetaminophen",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("duckdb_file", nargs="?", default=str(ROOT / "var" / "demo" / "demo.duckdb"))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--oracle", default=str(ROOT.parent / "shared" / "oracle"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_cell_keys_"))
    try:
        copy = work / "warehouse.duckdb"
        shutil.copy(args.duckdb_file, copy)
        engine = connect("duckdb", f"duckdb:///{copy}", password=None, statement_timeout_seconds=0, read_only=False)
        site = SimpleNamespace(key="bench", results_schema="results", cdm_schema="cdm")
        os.environ[record_keys.record_key_secret_variable("bench")] = os.urandom(32).hex()
        engine.execute(f"DROP TABLE IF EXISTS {record_keys.record_key_table('results', 'bench')}")
        started = time.perf_counter()
        table = record_keys.record_keys_ensure(engine, source=site)
        persons = engine.fetchone(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - quoted name
        print(f"keyed {persons[0] if persons else 0:,} persons in {time.perf_counter() - started:.2f} s")
        print(f"{'definition':45} {'persons':>8} {'plain ms':>9} {'keyed ms':>9} {'ratio':>6}")
        for name in DEFINITIONS:
            path = Path(args.oracle) / "cohorts" / f"{name}.json"
            if not path.exists():
                continue
            expression = json.loads(path.read_text())
            timings: dict[str, float] = {}
            result = None
            for label, keys in (("plain", None), ("keyed", table)):
                runs = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    result = generate_cohort(
                        engine,
                        expression,
                        cdm_schema="cdm",
                        vocabulary_schema="cdm",
                        results_schema="results",
                        cohort_id=900_001,
                        record_keys=keys,
                    )
                    runs.append(time.perf_counter() - started)
                timings[label] = statistics.median(runs) * 1000
            assert result is not None
            ratio = timings["keyed"] / timings["plain"]
            print(f"{name:45} {result.persons:>8,} {timings['plain']:>9.1f} {timings['keyed']:>9.1f} {ratio:>6.2f}")
        engine.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
