"""Row-level work at a site: projection (how many rows a request would release) and the extract itself.

Plain Python on an engine (no Django import), called by ``datasets.services`` on the site's worker.

Invariants:
- Only allow-listed columns (``datasets.catalogue``) reach SQL, as validated identifiers; values travel as bound
  parameters.
- The dataset is assembled in a private work directory and zipped to a temporary name beside its final place;
  only a complete, checksummed (and, with a key, encrypted) file is renamed into place, atomically. On any error
  the work directory and the temporary file are removed: no partial file is ever reachable.
- k-anonymity holds on the released person file: every combination of the quasi-identifiers it releases
  (``catalogue.quasi_identifiers``: the age group, and the year of birth and demographics as requested) is shared
  by at least k persons. The least generalization of ``deidentify.ladder`` that needs no more suppression than the
  cap is applied, the persons still in smaller groups are dropped from every table, and the written person rows
  are counted again before anything is packaged; no step within the cap refuses the extract.
- The ``manifest.json`` inside the file is the requester's: the cohort size as the portal shows it to the
  requester's role (``disclosure.rules.protect_cell`` under the site's rule: perturbed with the cohort's cell key,
  computed here from the site's record keys), never the exact size nor the number suppressed. Those stay in the
  site's record (``stewards_only``), which only the site's stewards see (``datasets.rules``).
- Every count here comes with its cell key, computed in the query that counts it (``project_rows``); a cohort
  with persons the site has not keyed yet is not extracted (``UnkeyedCohort``) until they are.
"""

# SQL text here is built only from identifiers checked by quote_ident (allow-listed names) and file paths of the
# extraction's own work directory; every value is a bound parameter.
# ruff: noqa: S608
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
import shutil
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from cryptography.fernet import Fernet

from audit.spreadsheet_guard import spreadsheet_safe_cell
from datasets import catalogue
from datasets.catalogue import BIRTH_YEAR, DATE, DEMOGRAPHIC, OWN_ID, PERSON, VISIT_ID
from datasets.deidentify import (
    Surrogates,
    as_date,
    date_offsets,
    deidentify_date,
    generalize,
    pseudonyms,
    released_quasi,
    suppression_cap,
)
from disclosure.rules import PrivacyRule, protect_cell
from warehouse.engines import quote_ident

#: Cohort ids of dataset work in the site's ``<results>.cohort``, far above the ids of count runs (their pk).
DATASET_COHORT_BASE = 9_000_000_000


class ExtractionRefused(Exception):
    """The request cannot be served as approved (e.g. over the site's row limit); the message says why. The
    message reaches the requester (the request's timeline): it carries no count of the site's data."""


class UnkeyedCohort(ExtractionRefused):
    """Some persons of the cohort have no record key, so the manifest's count cannot be perturbed: the caller keys
    the site's persons and builds again, once."""


def _index_cte(results_schema: str) -> str:
    # A person's index date is their first entry into the cohort.
    return (
        f"WITH idx AS (SELECT subject_id AS person_id, MIN(cohort_start_date) AS index_date "
        f"FROM {quote_ident(results_schema)}.cohort WHERE cohort_definition_id = %(cid)s GROUP BY subject_id) "
    )


def _window_sql(table: catalogue.Table) -> str:
    column = f"t.{quote_ident(table.event_date or '')}"
    return (
        f"{column} >= idx.index_date - CAST(%(before)s AS INTEGER) "
        f"AND {column} <= idx.index_date + CAST(%(after)s AS INTEGER)"
    )


#: The count, the cell key and the unkeyed persons of the rows joined to the record-key table ``k`` (one row per
#: person, or one per record: a record carries its person's key, so a table's rows are a cell of their own).
_COUNTED = "COUNT(*), MOD(SUM(COALESCE(k.record_key, 0)), 256), SUM(CASE WHEN k.record_key IS NULL THEN 1 ELSE 0 END)"


@dataclass(frozen=True)
class ProjectedCounts:
    """What a request would release at a site, with the cell key of each count (``disclosure.cellkey``): the
    cohort's persons, and the rows of each requested table before k-anonymity (which only removes rows).

    ``unkeyed``: cohort persons without a record key; the keys are then wrong and none of these counts may be
    released (the caller keys the site's persons and projects again)."""

    persons: int
    persons_key: int
    rows: dict[str, int]
    row_keys: dict[str, int]
    unkeyed: int

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def project_rows(
    engine: Any,
    *,
    cdm_schema: str,
    results_schema: str,
    cohort_id: int,
    selection: dict[str, list[str]],
    days_before: int,
    days_after: int,
    record_keys: str,
) -> ProjectedCounts:
    """The cohort's person count and the rows each requested table would hold, each with its cell key computed in
    the same query from the site's record-key table (``record_keys``, its SQL name)."""
    params = {"cid": cohort_id, "before": days_before, "after": days_after}
    cte = _index_cte(results_schema)
    persons_row = engine.fetchone(
        cte + f"SELECT {_COUNTED} FROM idx LEFT JOIN {record_keys} k ON k.person_id = idx.person_id", params
    )
    persons, persons_key, unkeyed = (int(v or 0) for v in persons_row) if persons_row else (0, 0, 0)
    rows: dict[str, int] = {}
    keys: dict[str, int] = {}
    for name in selection:
        table = catalogue.TABLES[name]
        if table.event_date is None:
            rows[name], keys[name] = persons, persons_key  # one row per person: the persons' cell
            continue
        row = engine.fetchone(
            cte + f"SELECT {_COUNTED} FROM {quote_ident(cdm_schema)}.{quote_ident(name)} t "
            f"JOIN idx ON t.person_id = idx.person_id LEFT JOIN {record_keys} k ON k.person_id = t.person_id "
            f"WHERE {_window_sql(table)}",
            params,
        )
        rows[name], keys[name] = (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)
    return ProjectedCounts(persons=persons, persons_key=persons_key, rows=rows, row_keys=keys, unkeyed=unkeyed)


@dataclass
class ExtractSpec:
    """What one site extracts for one request, as approved by its steward."""

    request_id: int
    site_key: str
    cdm_schema: str
    results_schema: str
    cohort_id: int
    selection: dict[str, list[str]]
    days_before: int
    days_after: int
    output_format: str
    policy: dict[str, Any]
    # The site's disclosure rule for the requester's role: the manifest's cohort size is shown under it.
    count_rule: PrivacyRule
    # The SQL name of the site's record-key table (``disclosure.record_keys``): the cohort size's cell key.
    record_keys: str


@dataclass
class BuiltExtract:
    relative_path: str
    size_bytes: int
    sha256: str
    encrypted: bool
    manifest: dict[str, Any] = field(default_factory=dict)


#: Keys of the manifest only the site's stewards and admins see (never in the requester's file).
STEWARDS_ONLY = "stewards_only"


def requester_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as the requester gets it (in the file, and through the portal): without the exact figures."""
    return {key: value for key, value in manifest.items() if key != STEWARDS_ONLY}


def _persons(engine: Any, spec: ExtractSpec, columns: list[str]) -> dict[int, dict[str, Any]]:
    """Each cohort person's raw person columns (``columns``, allow-listed) and age at the index date."""
    cdm = quote_ident(spec.cdm_schema)
    extra = "".join(f", p.{quote_ident(c)}" for c in columns if c != "year_of_birth")
    rows = engine.fetchall(
        _index_cte(spec.results_schema) + f"SELECT p.person_id, idx.index_date, p.year_of_birth{extra} "
        f"FROM {cdm}.person p JOIN idx ON p.person_id = idx.person_id",
        {"cid": spec.cohort_id},
    )
    people: dict[int, dict[str, Any]] = {}
    names = ["year_of_birth", *(c for c in columns if c != "year_of_birth")]
    for person_id, index_date, *values in rows:
        person = dict(zip(names, values, strict=True))
        index, yob = as_date(index_date), person["year_of_birth"]
        person["age"] = index.year - int(yob) if yob is not None and index is not None else None
        people[int(person_id)] = person
    return people


def _check_k_anonymous(header: list[str], rows: list[list[str]], quasi: list[str], k: int) -> None:
    """The released person rows, counted again: every quasi-identifier combination has at least k persons."""
    positions = [header.index(c) for c in quasi]
    sizes = Counter(tuple(row[i] for i in positions) for row in rows)
    if sizes and min(sizes.values()) < k:
        raise ExtractionRefused(f"The released person file is not {k}-anonymous; nothing was released.")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else str(value)
    return str(value)


def _write_csv(path: Path, header: list[str], rows: list[list[str]], *, for_spreadsheets: bool = True) -> None:
    """A CSV file; for a file delivered as CSV every cell goes through the formula guard. The intermediate CSV of
    a Parquet extract is not (Parquet is typed data that no spreadsheet runs, and keeps the values as they are)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        if for_spreadsheets:
            writer.writerows([spreadsheet_safe_cell(cell) for cell in row] for row in rows)
        else:
            writer.writerows(rows)


def _to_parquet(csv_path: Path, parquet_path: Path) -> None:
    """CSV → Parquet with DuckDB, types detected from the data (all text when detection fails)."""
    source, target = str(csv_path).replace("'", "''"), str(parquet_path).replace("'", "''")
    with duckdb.connect() as con:
        try:
            con.execute(f"COPY (SELECT * FROM read_csv('{source}', header = true)) TO '{target}' (FORMAT parquet)")
        except duckdb.Error:
            con.execute(
                f"COPY (SELECT * FROM read_csv('{source}', header = true, all_varchar = true)) "
                f"TO '{target}' (FORMAT parquet)"
            )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


DICTIONARY_MEANING = {
    PERSON: "Per-request random pseudonym of the person (not the site's id).",
    OWN_ID: "Per-request sequential surrogate of the row (not the site's id).",
    VISIT_ID: "Per-request sequential surrogate of the visit (same surrogate in every table of this dataset).",
    DATE: "Date, de-identified as the manifest says (shifted per person, or year-month).",
    BIRTH_YEAR: "Year of birth; empty for persons above the site's maximum age (see age_group), and for everybody "
    "when the manifest's generalization withholds it.",
    DEMOGRAPHIC: "As in OMOP; empty for everybody when the manifest's generalization withholds it.",
}


def build_extract(engine: Any, spec: ExtractSpec, *, root: Path, key: str = "") -> BuiltExtract:
    """Extract, de-identify and package the dataset; return where it is (relative to ``root``) and its facts.

    Raises ``ExtractionRefused`` when the approved request exceeds the site's row limit, and any engine error
    as it comes; either way nothing is left under ``root``.
    """
    policy = spec.policy
    if key:
        try:
            Fernet(key.encode())
        except (ValueError, TypeError) as exc:
            raise ExtractionRefused("SOYANG_DATASET_KEY is not a valid Fernet key; nothing was extracted.") from exc
    projected = project_rows(
        engine,
        cdm_schema=spec.cdm_schema,
        results_schema=spec.results_schema,
        cohort_id=spec.cohort_id,
        selection=spec.selection,
        days_before=spec.days_before,
        days_after=spec.days_after,
        record_keys=spec.record_keys,
    )
    if projected.unkeyed:
        raise UnkeyedCohort("Some persons of the cohort have no record key; nothing was extracted.")
    if projected.total > int(policy["row_limit"]):
        # Without the numbers: the requester reads this (the site's stewards saw them in the projection).
        raise ExtractionRefused(
            f"The dataset would now hold more rows than the site's limit of {policy['row_limit']} (the site's data "
            "changed since the projection); nothing was extracted."
        )
    root.mkdir(parents=True, exist_ok=True)
    target_dir = root / str(spec.request_id)
    target_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=root))
    temporary = target_dir / f".tmp-{secrets.token_hex(8)}.zip"
    try:
        manifest = _assemble(engine, spec, work, (projected.persons, projected.persons_key))
        _zip(work, temporary, manifest)
        sha256 = _sha256(temporary)
        encrypted = bool(key)
        if encrypted:
            token = Fernet(key.encode()).encrypt(temporary.read_bytes())
            temporary.write_bytes(token)
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        final = target_dir / f"{spec.site_key}-{secrets.token_hex(8)}.zip{'.enc' if encrypted else ''}"
        os.replace(temporary, final)
        return BuiltExtract(
            relative_path=str(final.relative_to(root)),
            size_bytes=final.stat().st_size,
            sha256=sha256,
            encrypted=encrypted,
            manifest=manifest,
        )
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _assemble(engine: Any, spec: ExtractSpec, work: Path, cohort: tuple[int, int]) -> dict[str, Any]:
    """The dataset's files in ``work`` and its manifest. ``cohort``: the cohort's persons and their cell key."""
    policy = spec.policy
    persons_total = cohort[0]
    max_age, k, mode = int(policy["max_age"]), int(policy["k_anonymity"]), str(policy["date_mode"])

    quasi = catalogue.quasi_identifiers(spec.selection)
    released = [c for c in quasi if c != catalogue.AGE_GROUP]
    demographics = [c for c in released if catalogue.TABLES["person"].columns[c] == DEMOGRAPHIC]
    people = _persons(engine, spec, released)
    chosen = generalize(people, columns=quasi, demographics=demographics, k=k, max_age=max_age)
    if chosen is None:
        raise ExtractionRefused(
            f"No generalization of the released person columns ({', '.join(quasi)}) makes every combination "
            f"shared by at least {k} persons without suppressing more than the cap; request fewer person columns "
            "or a larger cohort. Nothing was extracted."
        )
    step, kept, suppressed = chosen
    facts = {pid: released_quasi(people[pid], step, columns=quasi, max_age=max_age) for pid in kept}
    names = pseudonyms(sorted(kept, key=lambda _: secrets.randbits(32)))
    offsets = date_offsets(kept, max_days=int(policy["date_shift_days"]))
    visits = Surrogates("V")

    files: dict[str, Path] = {}
    rows_written: dict[str, int] = {}
    dictionary: list[list[str]] = []
    for name, selected in spec.selection.items():
        table = catalogue.TABLES[name]
        columns = [c for c in table.columns if c == "person_id" or c in selected]
        header = list(columns)
        if name == "person":
            header.insert(1, catalogue.AGE_GROUP)
            records = [[pid, *[facts[pid].get(c) for c in columns[1:]]] for pid in kept]
            event_position = None
        else:
            select = ", ".join(f"t.{quote_ident(c)}" for c in columns)
            records = [
                list(r)
                for r in engine.fetchall(
                    _index_cte(spec.results_schema) + f"SELECT {select}, t.{quote_ident(table.event_date or '')} "
                    f"FROM {quote_ident(spec.cdm_schema)}.{quote_ident(name)} t "
                    f"JOIN idx ON t.person_id = idx.person_id WHERE {_window_sql(table)}",
                    {"cid": spec.cohort_id, "before": spec.days_before, "after": spec.days_after},
                )
            ]
            event_position = len(columns)
        out: list[tuple[tuple[str, ...], list[Any]]] = []
        for record in records:
            person_id = int(record[columns.index("person_id")])
            if person_id not in kept:
                continue
            values: list[Any] = []
            for position, column in enumerate(columns):
                kind, raw = table.columns[column], record[position]
                if kind == PERSON:
                    values.append(names[person_id])
                elif kind == DATE:
                    values.append(deidentify_date(raw, offset=offsets[person_id], mode=mode))
                elif kind in (OWN_ID, VISIT_ID):
                    values.append(raw)  # replaced by a surrogate once sorted
                else:
                    values.append(_cell(raw))
            if name == "person":
                values.insert(1, facts[person_id][catalogue.AGE_GROUP])
            event = (
                deidentify_date(record[event_position], offset=offsets[person_id], mode=mode)
                if event_position is not None
                else ""
            )
            sortable = tuple(
                str(v) for i, v in enumerate(values) if table.columns.get(header[i]) not in (OWN_ID, VISIT_ID)
            )
            out.append(((names[person_id], event, *sortable), values))
        out.sort(key=lambda item: item[0])
        own = Surrogates(table.surrogate_prefix())
        rows: list[list[str]] = []
        for _, values in out:
            for i, column in enumerate(header):
                kind = table.columns.get(column)
                if kind == OWN_ID:
                    values[i] = own(values[i])
                elif kind == VISIT_ID:
                    values[i] = visits(values[i])
            rows.append([_cell(v) for v in values])
        if name == "person":
            _check_k_anonymous(header, rows, quasi, k)
        path = work / f"{name}.csv"
        _write_csv(path, header, rows, for_spreadsheets=spec.output_format != "parquet")
        rows_written[name] = len(rows)
        if spec.output_format == "parquet":
            parquet = work / f"{name}.parquet"
            _to_parquet(path, parquet)
            path.unlink()
            path = parquet
        files[path.name] = path
        for column in header:
            kind = table.columns.get(column, "derived")
            meaning = DICTIONARY_MEANING.get(
                kind,
                f"Age group at the index date ({step.age_width}-year bands, oldest grouped)"
                if kind == "derived"
                else "As in OMOP.",
            )
            dictionary.append([path.name, column, kind, meaning])

    dictionary_path = work / "data_dictionary.csv"
    _write_csv(dictionary_path, ["file", "column", "kind", "meaning"], dictionary)
    files[dictionary_path.name] = dictionary_path

    date_rule = (
        f"every date shifted by a random per-person offset of 1 to {policy['date_shift_days']} days (either way), "
        "the same for all dates of a person"
        if mode == "shift"
        else "every date reduced to year and month"
    )
    return {
        "request": spec.request_id,
        "site": spec.site_key,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "format": spec.output_format,
        "window_days": {"before_index": spec.days_before, "after_index": spec.days_after},
        # As the portal shows it to the requester's role, perturbed with the cohort's cell key (the same persons
        # give the same number as a count of the cohort): the exact size is for the site's stewards.
        "cohort_persons": {**protect_cell(cohort, spec.count_rule).as_dict(), "rule": spec.count_rule.describe()},
        "persons_released": len(kept),
        "generalization": {
            "step": step.name,
            "applied": step.describe(),
            "quasi_identifiers": quasi,
            "k": k,
        },
        STEWARDS_ONLY: {
            "cohort_persons": persons_total,
            "persons_suppressed_k_anonymity": suppressed,
            "suppression_cap": suppression_cap(len(people), k=k),
        },
        "rows": rows_written,
        "files": {n: {"sha256": _sha256(p), "bytes": p.stat().st_size} for n, p in files.items()},
        "deidentification": [
            "person ids replaced by per-request random pseudonyms",
            "row and visit ids replaced by per-request sequential surrogates; provider, care site and visit "
            "detail ids dropped",
            date_rule,
            f"year of birth removed and age grouped as {max_age + 1}+ above age {max_age}",
            "source values and free text never extracted",
            f"quasi-identifiers ({', '.join(quasi)}) generalized: {step.describe()}",
            f"persons whose combination of these is shared by fewer than {k} persons in the file suppressed",
        ],
        "policy": policy,
    }


def _zip(work: Path, target: Path, manifest: dict[str, Any]) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(manifest["files"]):
            archive.write(work / name, arcname=name)
        archive.writestr("manifest.json", json.dumps(requester_manifest(manifest), indent=2, sort_keys=True))


def read_extract(path: Path, *, encrypted: bool, key: str) -> bytes:
    """The plain zip of an extract, decrypted when it was stored encrypted (Fernet checks its integrity)."""
    data = path.read_bytes()
    if encrypted:
        if not key:
            raise ValueError("the extract is encrypted but SOYANG_DATASET_KEY is not set")
        return Fernet(key.encode()).decrypt(data)
    return data


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_members(data: bytes) -> dict[str, bytes]:
    """The files inside a zip (tests and the site's own checks)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}
