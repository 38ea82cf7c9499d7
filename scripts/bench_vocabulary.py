"""Benchmark the vocabulary search on a generated vocabulary of millions of concepts.

    .venv/bin/python scripts/bench_vocabulary.py                       # 5,000,000 concepts, reused if present
    .venv/bin/python scripts/bench_vocabulary.py --concepts 1000000 --rebuild

Data: ``--concepts`` concepts with names combined from real medical words (findings, qualifiers, body sites,
drugs with strengths and forms, procedures, laboratory tests), spread over domains and vocabularies like a real
Athena download (SNOMED, ICD10CM, RxNorm, NDC, LOINC, CPT4, ...), with codes in each vocabulary's style, about
40% standard concepts and 2% invalid ones. It is written with COPY into table ``warehouse_concept`` of a
PostgreSQL database of its own (``--pg-url``, default ``soyang_voc_bench`` on 127.0.0.1, created when missing),
then indexed exactly as the portal's migration indexes it (``warehouse/migrations/0003_vocabulary.py``).

Queries: ~50 representative searches (a word, two words, a prefix, a code, the start of an ICD-10 code, an id,
a misspelling; with and without a domain filter; the ICD10CM concepts 'Map to' standard ones) run through the
SQL of the portal's own selector (``warehouse.vocabulary.search.search_sql``:
the ranked query, then the same query with misspelled words corrected against the list of distinct words of
the names when the page is not full, as ``concept_search`` does). Each
query runs once to warm the cache, then ``--repeat`` times; the script prints p50 / p95 / max of the SQL time
(target: under 200 ms) and the slowest queries.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/soyang_voc_bench"

FINDINGS = (
    "diabetes mellitus",
    "hypertension",
    "asthma",
    "pneumonia",
    "fracture",
    "carcinoma",
    "adenoma",
    "infarction",
    "hemorrhage",
    "embolism",
    "thrombosis",
    "stenosis",
    "ulcer",
    "abscess",
    "cyst",
    "neoplasm",
    "lymphoma",
    "leukemia",
    "melanoma",
    "sarcoma",
    "dermatitis",
    "arthritis",
    "osteoarthritis",
    "osteoporosis",
    "hepatitis",
    "cirrhosis",
    "nephropathy",
    "neuropathy",
    "retinopathy",
    "cardiomyopathy",
    "heart failure",
    "atrial fibrillation",
    "angina",
    "aneurysm",
    "anemia",
    "sepsis",
    "bronchitis",
    "sinusitis",
    "otitis media",
    "conjunctivitis",
    "cellulitis",
    "gastritis",
    "colitis",
    "pancreatitis",
    "appendicitis",
    "cholecystitis",
    "diverticulitis",
    "migraine",
    "epilepsy",
    "dementia",
    "depression",
    "schizophrenia",
    "anxiety disorder",
    "insomnia",
    "obesity",
    "hypothyroidism",
    "hyperthyroidism",
    "gout",
    "psoriasis",
    "eczema",
    "tuberculosis",
    "influenza",
    "hernia",
    "dislocation",
    "sprain",
    "contusion",
    "laceration",
    "burn",
    "edema",
    "effusion",
    "fibrosis",
    "calculus",
    "obstruction",
    "perforation",
    "prolapse",
    "dysplasia",
    "polyp",
    "hyperplasia",
    "atrophy",
    "necrosis",
    "chronic kidney disease",
    "myocardial infarction",
    "pulmonary embolism",
    "deep vein thrombosis",
)
QUALIFIERS = (
    "acute",
    "chronic",
    "recurrent",
    "severe",
    "mild",
    "moderate",
    "primary",
    "secondary",
    "malignant",
    "benign",
    "congenital",
    "traumatic",
    "bilateral",
    "left",
    "right",
    "upper",
    "lower",
    "complicated",
    "uncomplicated",
    "drug-induced",
    "postoperative",
    "idiopathic",
    "hereditary",
    "juvenile",
    "gestational",
    "diabetic",
    "alcoholic",
    "viral",
    "bacterial",
    "fungal",
    "allergic",
    "ischemic",
    "hemorrhagic",
    "metastatic",
    "in situ",
    "persistent",
)
SITES = (
    "liver",
    "kidney",
    "lung",
    "heart",
    "brain",
    "stomach",
    "colon",
    "rectum",
    "pancreas",
    "spleen",
    "bladder",
    "prostate",
    "breast",
    "ovary",
    "uterus",
    "cervix",
    "thyroid",
    "skin",
    "bone",
    "femur",
    "tibia",
    "humerus",
    "radius",
    "ulna",
    "vertebra",
    "knee",
    "hip",
    "shoulder",
    "ankle",
    "wrist",
    "elbow",
    "eye",
    "ear",
    "nose",
    "larynx",
    "esophagus",
    "duodenum",
    "gallbladder",
    "aorta",
    "coronary artery",
    "retina",
    "spinal cord",
)
DRUGS = (
    "metformin",
    "insulin glargine",
    "lisinopril",
    "amlodipine",
    "atorvastatin",
    "simvastatin",
    "rosuvastatin",
    "losartan",
    "valsartan",
    "hydrochlorothiazide",
    "furosemide",
    "spironolactone",
    "metoprolol",
    "carvedilol",
    "warfarin",
    "apixaban",
    "rivaroxaban",
    "clopidogrel",
    "aspirin",
    "ibuprofen",
    "naproxen",
    "celecoxib",
    "diclofenac",
    "acetaminophen",
    "tramadol",
    "oxycodone",
    "morphine",
    "amoxicillin",
    "azithromycin",
    "ciprofloxacin",
    "doxycycline",
    "cephalexin",
    "prednisone",
    "methylprednisolone",
    "dexamethasone",
    "levothyroxine",
    "omeprazole",
    "pantoprazole",
    "ranitidine",
    "sertraline",
    "fluoxetine",
    "citalopram",
    "escitalopram",
    "bupropion",
    "gabapentin",
    "pregabalin",
    "levetiracetam",
    "lamotrigine",
    "quetiapine",
    "olanzapine",
    "risperidone",
    "donepezil",
    "sitagliptin",
    "empagliflozin",
    "dapagliflozin",
    "liraglutide",
    "semaglutide",
    "salbutamol",
    "fluticasone",
    "montelukast",
    "tiotropium",
    "allopurinol",
    "colchicine",
)
FORMS = (
    "Oral Tablet",
    "Oral Capsule",
    "Injectable Solution",
    "Oral Solution",
    "Topical Cream",
    "Extended Release Oral Tablet",
    "Inhalant Powder",
    "Prefilled Syringe",
    "Transdermal System",
)
PROCEDURES = (
    "excision",
    "biopsy",
    "resection",
    "repair",
    "replacement",
    "transplantation",
    "removal",
    "insertion",
    "drainage",
    "endoscopy",
    "catheterization",
    "amputation",
    "fixation",
    "reconstruction",
    "ablation",
    "angioplasty",
    "bypass",
    "implantation",
    "incision",
    "injection",
    "radiography",
    "ultrasonography",
    "computed tomography",
    "magnetic resonance imaging",
)
TESTS = (
    "hemoglobin",
    "hemoglobin A1c",
    "glucose",
    "creatinine",
    "sodium",
    "potassium",
    "chloride",
    "bicarbonate",
    "albumin",
    "bilirubin",
    "alanine aminotransferase",
    "aspartate aminotransferase",
    "cholesterol",
    "triglyceride",
    "platelets",
    "leukocytes",
    "erythrocytes",
    "troponin I",
    "troponin T",
    "natriuretic peptide",
    "thyrotropin",
    "ferritin",
    "calcium",
    "magnesium",
    "phosphate",
    "urate",
    "lactate",
    "C reactive protein",
)
SPECIMENS = ("Serum or Plasma", "Blood", "Urine", "Cerebral spinal fluid", "Arterial blood", "Venous blood")
METHODS = ("Mass/volume", "Moles/volume", "Presence", "Units/volume", "Enzymatic activity/volume", "Ratio")

#: (domain, vocabulary, class, share, standard ratio)
LAYOUT = (
    ("Condition", "SNOMED", "Clinical Finding", 0.20, 1.0),
    ("Condition", "ICD10CM", "4-char billing code", 0.10, 0.0),
    ("Condition", "ICD9CM", "5-dig billing code", 0.05, 0.0),
    ("Condition", "MedDRA", "LLT", 0.05, 0.0),
    ("Drug", "RxNorm", "Clinical Drug", 0.15, 1.0),
    ("Drug", "RxNorm Extension", "Branded Drug", 0.10, 1.0),
    ("Drug", "NDC", "11-digit NDC", 0.12, 0.0),
    ("Drug", "ATC", "ATC 5th", 0.01, 0.0),
    ("Measurement", "LOINC", "Lab Test", 0.10, 1.0),
    ("Procedure", "SNOMED", "Procedure", 0.06, 1.0),
    ("Procedure", "CPT4", "CPT4", 0.04, 1.0),
    ("Observation", "SNOMED", "Observable Entity", 0.02, 1.0),
)


def _code(vocabulary: str, rng: random.Random, n: int) -> str:
    if vocabulary in ("SNOMED", "MedDRA"):
        return str(100000 + n * 7 + rng.randint(0, 6))
    if vocabulary == "ICD10CM":
        return f"{rng.choice('ABCDEFGHIJKLMNOPQRSTUVWXYZ')}{rng.randint(0, 99):02d}.{n % 10000:04d}"
    if vocabulary == "ICD9CM":
        return f"{rng.randint(1, 999):03d}.{n % 100:02d}"
    if vocabulary == "NDC":
        return f"{n:011d}"
    if vocabulary == "LOINC":
        return f"{n % 100000}-{n % 9}"
    if vocabulary == "CPT4":
        return f"{n % 100000:05d}"
    if vocabulary == "ATC":
        return f"{rng.choice('ABCDGHJLMNPRSV')}{rng.randint(1, 99):02d}AB{n % 100:02d}"
    return f"OMOP{n}"


def _name(domain: str, vocabulary: str, rng: random.Random) -> str:
    if domain == "Drug":
        drug = rng.choice(DRUGS)
        if rng.random() < 0.3:
            drug = f"{drug} / {rng.choice(DRUGS)}"
        name = f"{drug} {rng.choice((1, 2.5, 5, 10, 20, 25, 40, 50, 100, 200, 250, 500, 1000))} MG {rng.choice(FORMS)}"
        if vocabulary == "RxNorm Extension":
            name += f" [{rng.choice(DRUGS).capitalize()[:6]}ex] by Pharma {rng.randint(1, 900)}"
        return name
    if domain == "Measurement":
        method = rng.choice(("Automated count", "Immunoassay", "Calculation", "Test strip"))
        suffix = f" by {method}" if rng.random() < 0.5 else ""
        return f"{rng.choice(TESTS).capitalize()} [{rng.choice(METHODS)}] in {rng.choice(SPECIMENS)}{suffix}"
    if domain == "Procedure":
        return f"{rng.choice(PROCEDURES).capitalize()} of {rng.choice(QUALIFIERS)} {rng.choice(SITES)}"
    if domain == "Observation":
        return (
            f"{rng.choice(('History of', 'Family history of', 'Screening for', 'At risk of'))} {rng.choice(FINDINGS)}"
        )
    parts = []
    if rng.random() < 0.8:
        parts.append(rng.choice(QUALIFIERS))
    if rng.random() < 0.3:
        parts.append(rng.choice(QUALIFIERS))
    parts.append(rng.choice(FINDINGS))
    if rng.random() < 0.6:
        parts.append(f"of {rng.choice(SITES)}")
    if rng.random() < 0.2:
        parts.append(rng.choice(("with complication", "without complication", "in remission", "unspecified")))
    name = " ".join(parts)
    return name[0].upper() + name[1:]


LAYOUT_WEIGHTS = [share for *_rest, share, _std in LAYOUT]


def concept_draw(rng: random.Random, n: int) -> tuple[str, str, str, str, str, str, str]:
    """Concept ``n`` drawn from ``rng``: (domain, vocabulary, class, standard, invalid reason, name, code)."""
    domain, vocabulary, concept_class, _share, standard_ratio = rng.choices(LAYOUT, LAYOUT_WEIGHTS)[0]
    standard = "S" if rng.random() < standard_ratio else ""
    if vocabulary == "ATC":
        standard = "C"
    invalid = rng.choice("DU") if rng.random() < 0.02 else ""
    if invalid:
        standard = ""
    name = _name(domain, vocabulary, rng)
    return domain, vocabulary, concept_class, standard, invalid, name, _code(vocabulary, rng, n)


def _rows(count: int, seed: int) -> Any:
    rng = random.Random(seed)
    for n in range(1, count + 1):
        domain, vocabulary, concept_class, standard, invalid, name, code = concept_draw(rng, n)
        name = name.replace("\t", " ")
        yield (
            f"{n}\t{name}\t{domain}\t{vocabulary}\t{concept_class}\t{standard}\t"
            f"{code}\t1970-01-01\t2099-12-31\t{invalid}\n"
        )


TABLE_SQL = """
CREATE TABLE warehouse_concept (
    concept_id integer PRIMARY KEY,
    concept_name varchar(255) NOT NULL,
    domain_id varchar(20) NOT NULL,
    vocabulary_id varchar(20) NOT NULL,
    concept_class_id varchar(20) NOT NULL,
    standard_concept varchar(1) NOT NULL,
    concept_code varchar(50) NOT NULL,
    valid_start_date date,
    valid_end_date date,
    invalid_reason varchar(1) NOT NULL
)
"""


def _ensure_database(url: str) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def build(connection: Any, concepts: int, seed: int) -> None:
    search_indexes = _migration().SEARCH_INDEXES
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS warehouse_concept")
        cursor.execute("DROP TABLE IF EXISTS warehouse_conceptword")
        cursor.execute(TABLE_SQL)
        rows = _rows(concepts, seed)
        written = 0
        while written < concepts:
            chunk = io.StringIO()
            for _ in range(min(200_000, concepts - written)):
                chunk.write(next(rows))
                written += 1
            chunk.seek(0)
            cursor.copy_expert("COPY warehouse_concept FROM STDIN", chunk)
        connection.commit()
        print(f"generated and copied {concepts:,} concepts in {time.monotonic() - started:.0f} s", flush=True)
        cursor.execute("SET maintenance_work_mem = '1GB'")
        for extension in _migration().EXTENSIONS:
            cursor.execute(f"CREATE EXTENSION IF NOT EXISTS {extension}")
        statements = [
            "CREATE INDEX concept_domain_vocab ON warehouse_concept (domain_id, vocabulary_id)",
            "CREATE INDEX concept_code ON warehouse_concept (concept_code)",
            *(f"CREATE INDEX {name} ON warehouse_concept {definition}" for name, definition in search_indexes),
        ]
        for sql in statements:
            step = time.monotonic()
            cursor.execute(sql)
            connection.commit()
            print(f"  {sql.split(' ON ')[0]}: {time.monotonic() - step:.0f} s", flush=True)
        cursor.execute("ANALYZE warehouse_concept")
        connection.commit()
    print(f"built in {time.monotonic() - started:.0f} s", flush=True)


def _migration() -> Any:
    import importlib

    return importlib.import_module("warehouse.migrations.0003_vocabulary")


def queries(connection: Any, rng: random.Random) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(concept_id) FROM warehouse_concept")
        top = cursor.fetchone()[0]
        ids = [rng.randint(1, top) for _ in range(4)]
        cursor.execute("SELECT concept_code FROM warehouse_concept WHERE concept_id = ANY(%s)", (ids,))
        codes = [row[0] for row in cursor.fetchall()]
    texts: list[tuple[str, str]] = []
    for word in (
        "diabetes",
        "asthma",
        "fracture",
        "carcinoma",
        "metformin",
        "hemoglobin",
        "pneumonia",
        "biopsy",
        "warfarin",
        "creatinine",
    ):
        texts.append(("word", word))
    for two in (
        "chronic kidney",
        "acute myocardial",
        "heart failure",
        "atrial fibrillation",
        "metformin 500",
        "glucose serum",
        "excision liver",
        "family history",
    ):
        texts.append(("two words", two))
    for prefix in ("hyperten", "metfor", "atorva", "osteo", "cardiomyo", "glucos"):
        texts.append(("prefix", prefix))
    for code in codes:
        texts.append(("code", code))
    # The start of an ICD-10 code (three characters, as a researcher types "E11"): its codes by prefix and the
    # standard concepts they map to.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT concept_code FROM warehouse_concept WHERE vocabulary_id = 'ICD10CM' AND concept_id > %s "
            "ORDER BY concept_id LIMIT 3",
            (rng.randint(1, max(1, top // 2)),),
        )
        for (code,) in cursor.fetchall():
            texts.append(("code prefix", code[:3]))
    for cid in ids:
        texts.append(("id", str(cid)))
    for typo in ("diabetis", "pnemonia", "hypertenson", "astma", "metformine", "osteoporsis"):
        texts.append(("misspelling", typo))
    domains = {
        "word": "Condition",
        "two words": "Condition",
        "prefix": "Drug",
        "code": "",
        "code prefix": "Condition",
        "id": "",
        "misspelling": "Condition",
    }
    out = [{"kind": kind, "q": q, "domain": ""} for kind, q in texts]
    out += [{"kind": f"{kind} + domain", "q": q, "domain": domains[kind]} for kind, q in texts if domains[kind]]
    return out


def run(connection: Any, query: dict[str, Any], repeat: int) -> tuple[float, int]:
    from warehouse.vocabulary.search import concept_query, search_ids_with_cursor

    parsed = concept_query(q=query["q"], domain=query["domain"], limit=25)
    times = []
    found = 0
    for attempt in range(repeat + 1):
        with connection.cursor() as cursor:
            started = time.perf_counter()
            found = len(search_ids_with_cursor(parsed, cursor))
            elapsed = time.perf_counter() - started
        connection.rollback()
        if attempt:  # the first run warms the cache
            times.append(elapsed)
    return statistics.median(times), found


def ensure_words(connection: Any) -> None:
    """The distinct-word list the misspelling correction uses, as the loader builds it (reused when present)."""
    import importlib

    from warehouse.vocabulary.words import MIN_WORD, WORDS_INSERT_SQL

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('warehouse_conceptword') IS NOT NULL")
        if cursor.fetchone()[0]:
            return
        started = time.monotonic()
        cursor.execute("CREATE TABLE warehouse_conceptword (word varchar(100) PRIMARY KEY)")
        cursor.execute(WORDS_INSERT_SQL, {"min": MIN_WORD})
        words = cursor.rowcount
        cursor.execute(importlib.import_module("warehouse.migrations.0004_concept_words").WORD_INDEX_SQL)
        cursor.execute("ANALYZE warehouse_conceptword")
    connection.commit()
    print(f"word list: {words:,} words in {time.monotonic() - started:.0f} s", flush=True)


def ensure_relationships(connection: Any) -> None:
    """'Maps to' rows from each non-standard ICD10CM concept to a standard concept (the next one by id), indexed as
    the portal's table, for the searches by code (reused when present)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('warehouse_conceptrelationship') IS NOT NULL")
        if cursor.fetchone()[0]:
            return
        started = time.monotonic()
        cursor.execute(
            "CREATE TABLE warehouse_conceptrelationship (concept_id_1 integer NOT NULL, concept_id_2 integer NOT "
            "NULL, relationship_id varchar(20) NOT NULL, invalid_reason varchar(1) NOT NULL DEFAULT '')"
        )
        cursor.execute(
            "INSERT INTO warehouse_conceptrelationship (concept_id_1, concept_id_2, relationship_id) "
            "SELECT c.concept_id, s.concept_id, 'Maps to' FROM warehouse_concept c CROSS JOIN LATERAL "
            "(SELECT concept_id FROM warehouse_concept WHERE concept_id > c.concept_id AND standard_concept = 'S' "
            "ORDER BY concept_id LIMIT 1) s WHERE c.vocabulary_id = 'ICD10CM' AND c.standard_concept = ''"
        )
        rows = cursor.rowcount
        cursor.execute(
            "CREATE INDEX relationship_from ON warehouse_conceptrelationship (concept_id_1, relationship_id)"
        )
        cursor.execute("CREATE INDEX relationship_to ON warehouse_conceptrelationship (concept_id_2, relationship_id)")
        cursor.execute("ANALYZE warehouse_conceptrelationship")
    connection.commit()
    print(f"mappings: {rows:,} 'Maps to' rows in {time.monotonic() - started:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concepts", type=int, default=5_000_000)
    parser.add_argument("--pg-url", default=os.environ.get("SOYANG_VOC_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--rebuild", action="store_true", help="generate again even if the table has the count")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")
    import django

    django.setup()  # search_sql lives with the models; no portal database is opened

    _ensure_database(args.pg_url)
    connection = psycopg2.connect(args.pg_url)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('warehouse_concept') IS NOT NULL")
        exists = cursor.fetchone()[0]
        count = 0
        if exists:
            cursor.execute("SELECT count(*) FROM warehouse_concept")
            count = cursor.fetchone()[0]
    connection.rollback()
    if args.rebuild or count != args.concepts:
        build(connection, args.concepts, args.seed)
    else:
        print(f"reusing {count:,} concepts in {args.pg_url}")
    ensure_words(connection)
    ensure_relationships(connection)

    results = []
    for query in queries(connection, random.Random(args.seed)):
        seconds, found = run(connection, query, args.repeat)
        results.append((seconds, found, query))
    times = sorted(r[0] for r in results)
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    print(f"\n{len(results)} queries on {args.concepts:,} concepts, median of {args.repeat} runs each (ms):")
    print(f"  p50 {statistics.median(times) * 1000:.1f}   p95 {p95 * 1000:.1f}   max {times[-1] * 1000:.1f}")
    by_kind: dict[str, list[float]] = {}
    for seconds, _found, query in results:
        by_kind.setdefault(query["kind"], []).append(seconds)
    for kind, values in by_kind.items():
        print(f"  {kind:<24} median {statistics.median(values) * 1000:7.1f}   max {max(values) * 1000:7.1f}")
    print("\nslowest:")
    for seconds, found, query in sorted(results, key=lambda r: r[0], reverse=True)[:5]:
        domain = f" domain={query['domain']}" if query["domain"] else ""
        print(f"  {seconds * 1000:7.1f} ms  {found:>3} hits  {query['kind']:<22} {query['q']!r}{domain}")
    connection.close()


if __name__ == "__main__":
    main()
