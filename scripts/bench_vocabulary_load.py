"""Time loading a full-size vocabulary (Athena TAB files) into the portal's tables on PostgreSQL.

    nice -n 19 .venv/bin/python scripts/bench_vocabulary_load.py --concepts 1000000
    nice -n 19 .venv/bin/python scripts/bench_vocabulary_load.py --concepts 100000 --write bulk_create --keep-indexes

Data: an Athena-style download written once under ``var/bench/vocabulary_<N>_seed<S>/`` (reused by later runs):
CONCEPT.csv with ``--concepts`` concepts (names, codes, domains and vocabularies from
``scripts/bench_vocabulary.py``'s generator, about 1 % of the names with quotes, apostrophes, accents or a
backslash; ids scattered over the integer range, in no order), CONCEPT_ANCESTOR.csv with a hierarchy of the
standard concepts of each domain (every concept below an earlier one, levels counted from there, self pairs
included: about 10 rows per concept), CONCEPT_RELATIONSHIP.csv ('Maps to' / 'Mapped from' from each
non-standard concept to a standard one and from each standard concept to itself, plus 'Is a' / 'Subsumes'
rows the loader skips), VOCABULARY.csv and DOMAIN.csv. TAB-separated, unquoted, dates as 20070101.

Load: a throwaway PostgreSQL database (``--db-name`` on the server of ``DATABASE_URL``) is created and migrated
with the portal's migrations (as the test runner does), then
``warehouse.vocabulary.load.vocabulary_load_from_directory`` is timed once, the way
``manage.py load_vocabulary --directory`` runs it; one search checks the result. The
script prints rows/s per table, the seconds of the index builds, word list, ANALYZE and the swap (the only time
searches wait for a load), and the total, with the CPU seconds of this Python process and of the PostgreSQL
backend that served it (when the server runs on this machine): the split shows which side bounds the load. The
database is dropped at the end unless ``--keep``.

``--write bulk_create`` times the ORM path instead of the staged COPY: Django ``bulk_create`` of 10,000 rows into
the emptied live tables, their indexes kept (the loader as it was before COPY); ``--keep-indexes`` builds the
staging tables' secondary indexes before the copy instead of after it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from array import array
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.bench_pages import _setup  # noqa: E402
from scripts.bench_vocabulary import LAYOUT, concept_draw  # noqa: E402

#: Concept ids scattered over the integer range, in no particular order (as in a real download): the n-th
#: concept gets (n × MULTIPLIER) mod PRIME, a permutation of 1 … PRIME - 1.
PRIME = 2_147_483_629
MULTIPLIER = 1_103_515_245

#: A new standard concept hangs below an earlier one of its domain, chosen with a bias towards recent ones
#: (index = count × u^SKEW, u uniform): depth grows like ln(count) / SKEW, about 10 ancestor rows per concept.
SKEW = 0.85

DECORATIONS = (' "NOS"', " (Ménière's type)", " [Sjögren]", " 1\\2 strength", " — café-au-lait", " 'see also'")

VOCABULARY_NAMES = {
    "SNOMED": "Systematic Nomenclature of Medicine - Clinical Terms (IHTSDO)",
    "ICD10CM": "International Classification of Diseases, Tenth Revision, Clinical Modification (NCHS)",
    "ICD9CM": "International Classification of Diseases, Ninth Revision, Clinical Modification, Volume 1 and 2",
    "MedDRA": "Medical Dictionary for Regulatory Activities (MSSO)",
    "RxNorm": "RxNorm (NLM)",
    "RxNorm Extension": "RxNorm Extension (OHDSI)",
    "NDC": "National Drug Code (FDA and manufacturers)",
    "ATC": "WHO Anatomic Therapeutic Chemical Classification",
    "LOINC": "Logical Observation Identifiers Names and Codes (Regenstrief Institute)",
    "CPT4": "Current Procedural Terminology version 4 (AMA)",
}


def concept_id(n: int) -> int:
    return (n * MULTIPLIER) % PRIME


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1970, 2024)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def generate(directory: Path, concepts: int, seed: int) -> dict[str, int]:
    """Write the five files; returns the rows of each."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    parent = array("i", [0]) * (concepts + 1)  # 0: a root
    standard_of_domain: dict[str, array] = {}
    counts = {"concept": 0, "concept_ancestor": 0, "concept_relationship": 0, "maps_to": 0}
    files = {
        name: (directory / f"{name}.csv").open("w", encoding="utf-8", newline="", buffering=1 << 20)
        for name in ("CONCEPT", "CONCEPT_ANCESTOR", "CONCEPT_RELATIONSHIP")
    }
    concept_out, ancestor_out, relationship_out = (
        files["CONCEPT"],
        files["CONCEPT_ANCESTOR"],
        files["CONCEPT_RELATIONSHIP"],
    )
    concept_out.write(
        "concept_id\tconcept_name\tdomain_id\tvocabulary_id\tconcept_class_id\tstandard_concept\tconcept_code\t"
        "valid_start_date\tvalid_end_date\tinvalid_reason\n"
    )
    ancestor_out.write(
        "ancestor_concept_id\tdescendant_concept_id\tmin_levels_of_separation\tmax_levels_of_separation\n"
    )
    relationship_out.write(
        "concept_id_1\tconcept_id_2\trelationship_id\tvalid_start_date\tvalid_end_date\tinvalid_reason\n"
    )
    concept_lines: list[str] = []
    ancestor_lines: list[str] = []
    relationship_lines: list[str] = []

    def flush(force: bool = False) -> None:
        for out, lines in (
            (concept_out, concept_lines),
            (ancestor_out, ancestor_lines),
            (relationship_out, relationship_lines),
        ):
            if force or len(lines) >= 50_000:
                out.write("".join(lines))
                lines.clear()

    for n in range(1, concepts + 1):
        domain, vocabulary, concept_class, standard, invalid, name, code = concept_draw(rng, n)
        if rng.random() < 0.01:
            name += rng.choice(DECORATIONS)
        cid = concept_id(n)
        start = _date(rng)
        end = "20991231" if not invalid else _date(rng)
        concept_lines.append(
            f"{cid}\t{name}\t{domain}\t{vocabulary}\t{concept_class}\t{standard}\t{code}\t{start}\t{end}\t{invalid}\n"
        )
        pool = standard_of_domain.setdefault(domain, array("i"))
        if standard:
            ancestor_lines.append(f"{cid}\t{cid}\t0\t0\n")
            relationship_lines.append(f"{cid}\t{cid}\tMaps to\t{start}\t20991231\t\n")
            relationship_lines.append(f"{cid}\t{cid}\tMapped from\t{start}\t20991231\t\n")
            counts["maps_to"] += 2
            if pool:
                up = pool[int(len(pool) * rng.random() ** SKEW)]
                parent[n] = up
                parent_id = concept_id(up)
                relationship_lines.append(f"{cid}\t{parent_id}\tIs a\t{start}\t20991231\t\n")
                relationship_lines.append(f"{parent_id}\t{cid}\tSubsumes\t{start}\t20991231\t\n")
                level = 1
                while up:
                    longer = level + (1 if rng.random() < 0.1 else 0)
                    ancestor_lines.append(f"{concept_id(up)}\t{cid}\t{level}\t{longer}\n")
                    up = parent[up]
                    level += 1
            pool.append(n)
        elif pool:
            target = concept_id(pool[rng.randrange(len(pool))])
            relationship_lines.append(f"{cid}\t{target}\tMaps to\t{start}\t20991231\t\n")
            relationship_lines.append(f"{target}\t{cid}\tMapped from\t{start}\t20991231\t\n")
            counts["maps_to"] += 2
        counts["concept"] += 1
        if n % 50_000 == 0:
            counts["concept_ancestor"] += len(ancestor_lines)
            counts["concept_relationship"] += len(relationship_lines)
            flush(force=True)
            if n % 1_000_000 == 0:
                print(f"  generated {n:,} concepts", file=sys.stderr, flush=True)
    counts["concept_ancestor"] += len(ancestor_lines)
    counts["concept_relationship"] += len(relationship_lines)
    flush(force=True)
    for out in files.values():
        out.close()

    with (directory / "VOCABULARY.csv").open("w", encoding="utf-8", newline="") as out:
        out.write("vocabulary_id\tvocabulary_name\tvocabulary_reference\tvocabulary_version\tvocabulary_concept_id\n")
        for i, (vocabulary_id, name) in enumerate(VOCABULARY_NAMES.items()):
            out.write(f"{vocabulary_id}\t{name}\thttps://athena.ohdsi.org/\tv20240830\t{44819096 + i}\n")
    with (directory / "DOMAIN.csv").open("w", encoding="utf-8", newline="") as out:
        out.write("domain_id\tdomain_name\tdomain_concept_id\n")
        for i, domain in enumerate(sorted({d for d, *_rest in LAYOUT})):
            out.write(f"{domain}\t{domain}\t{i + 1}\n")
    counts["vocabulary"] = len(VOCABULARY_NAMES)
    counts["domain"] = len({d for d, *_rest in LAYOUT})
    return counts


def ensure_files(directory: Path, concepts: int, seed: int) -> dict[str, int]:
    marker = directory / "generated.json"
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("concepts") == concepts and done.get("seed") == seed:
            print(f"reusing {directory}", file=sys.stderr)
            return dict(done["rows"])
    started = time.monotonic()
    rows = generate(directory, concepts, seed)
    size = sum(p.stat().st_size for p in directory.glob("*.csv"))
    marker.write_text(json.dumps({"concepts": concepts, "seed": seed, "rows": rows}))
    print(
        f"generated {directory} in {time.monotonic() - started:.0f} s ({size / 1e9:.2f} GB): "
        + ", ".join(f"{t} {n:,}" for t, n in rows.items()),
        file=sys.stderr,
    )
    return rows


def _backend_cpu_seconds(connection: Any) -> float | None:
    """CPU seconds used so far by the PostgreSQL backend of ``connection`` (Linux, server on this machine)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _print_report(report: Any, seconds: float, python_cpu: float, backend_cpu: float | None) -> None:
    print("| step | rows | seconds | rows/s |")
    print("|---|---|---|---|")
    indexes = {step[len("index ") :]: spent for step, spent in report.steps.items() if step.startswith("index ")}
    for step, spent in report.steps.items():
        rows = report.rows.get(step)
        if step.startswith("index "):
            continue
        if step == "indexes":
            slowest = sorted(indexes.items(), key=lambda item: item[1], reverse=True)
            detail = ", ".join(f"{name} {spent:.1f}" for name, spent in slowest[:6])
            print(f"| {len(indexes)} indexes built after the copy (slowest: {detail}) | | {spent:.1f} | |")
        elif step == "swap":
            print(f"| swap (searches wait for it) | | {spent:.3f} | |")
        elif rows is None:
            print(f"| {step} | | {spent:.1f} | |")
        else:
            print(f"| {step} | {rows:,} | {spent:.1f} | {rows / spent if spent else 0:,.0f} |")
    total_rows = sum(n for table, n in report.rows.items() if table != "concept_word")
    print(f"| **total** | {total_rows:,} | **{seconds:.1f}** | {total_rows / seconds:,.0f} |")
    backend = f"{backend_cpu:.0f} s" if backend_cpu is not None else "unknown (server not on this machine)"
    print(f"\nCPU: this Python process {python_cpu:.0f} s, the PostgreSQL backend {backend}, wall {seconds:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concepts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--work-dir", type=Path, help="default var/bench/vocabulary_<N>_seed<S>")
    parser.add_argument("--db-name", default="soyang_bench_vocabulary_load")
    parser.add_argument("--write", choices=("copy", "bulk_create"), default="copy")
    parser.add_argument(
        "--keep-indexes", action="store_true", help="build the secondary indexes before the copy, not after it"
    )
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    directory = args.work_dir or REPO / "var" / "bench" / f"vocabulary_{args.concepts}_seed{args.seed}"
    expected = ensure_files(directory, args.concepts, args.seed)
    if args.generate_only:
        return 0

    connection = _setup(args.db_name)
    old_name = connection.settings_dict["NAME"]
    try:
        from warehouse.vocabulary import load, search, staging

        load.POSTGRESQL_WRITE = args.write
        staging.REBUILD_INDEXES = not args.keep_indexes
        print(
            f"loading {directory.name} with {args.write}"
            f"{', indexes before the copy' if args.keep_indexes else ', indexes after the copy'}; load average "
            f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
            file=sys.stderr,
            flush=True,
        )
        backend_before = _backend_cpu_seconds(connection)
        python_before = time.process_time()
        started = time.monotonic()
        report = load.vocabulary_load_from_directory(directory=directory)
        seconds = time.monotonic() - started
        python_cpu = time.process_time() - python_before
        backend_after = _backend_cpu_seconds(connection)
        backend_cpu = None if backend_before is None or backend_after is None else backend_after - backend_before
        print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
        # Every row written is loaded, except the relationships other than 'Maps to' / 'Mapped from'.
        kept = {**expected, "concept_relationship": expected["maps_to"]}
        for table in ("concept", "concept_ancestor", "concept_relationship", "vocabulary", "domain"):
            if report.rows[table] != kept[table]:
                raise SystemExit(f"{table}: {report.rows[table]:,} rows loaded, {kept[table]:,} expected")
        _print_report(report, seconds, python_cpu, backend_cpu)
        found = search.concept_search(search.concept_query(q="chronic kidney", domain="Condition"))
        print(f"search 'chronic kidney' in Condition: {len(found)} concepts, first {found[0].concept_name!r}")
    finally:
        if not args.keep:
            connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
