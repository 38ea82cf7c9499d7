"""Row-level work at a site: projection (how many rows a request would release) and the extract itself.

Plain Python on an engine (no Django import), called by ``datasets.services`` on the site's worker.

Invariants:
- Only allow-listed columns (``datasets.catalogue``) reach SQL, as validated identifiers; values travel as bound
  parameters.
- The dataset is assembled in a private work directory and zipped to a temporary name beside its final place;
  only a complete, checksummed (and, with a key, encrypted) file is renamed into place, atomically. On any error
  the work directory and the temporary file are removed: no partial file is ever reachable.
- Persons in a quasi-identifier group smaller than k are dropped from every table before anything is written.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from cryptography.fernet import Fernet

from audit.spreadsheet_guard import spreadsheet_safe_cell
from datasets import catalogue
from datasets.catalogue import BIRTH_YEAR, DATE, OWN_ID, PERSON, VISIT_ID
from datasets.deidentify import (
    Surrogates,
    age_group,
    as_date,
    date_offsets,
    deidentify_date,
    k_anonymous,
    pseudonyms,
)
from warehouse.engines import quote_ident

#: Cohort ids of dataset work in the site's ``<results>.cohort``, far above the ids of count runs (their pk).
DATASET_COHORT_BASE = 9_000_000_000


class ExtractionRefused(Exception):
    """The request cannot be served as approved (e.g. over the site's row limit); the message says why."""


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


def project_rows(
    engine: Any,
    *,
    cdm_schema: str,
    results_schema: str,
    cohort_id: int,
    selection: dict[str, list[str]],
    days_before: int,
    days_after: int,
) -> tuple[int, dict[str, int]]:
    """The cohort's person count and the rows each requested table would hold (before k-anonymity, which only
    removes rows)."""
    params = {"cid": cohort_id, "before": days_before, "after": days_after}
    cte = _index_cte(results_schema)
    persons_row = engine.fetchone(cte + "SELECT COUNT(*) FROM idx", params)
    persons = int(persons_row[0]) if persons_row else 0
    counts: dict[str, int] = {}
    for name in selection:
        table = catalogue.TABLES[name]
        if table.event_date is None:
            counts[name] = persons
            continue
        row = engine.fetchone(
            cte + f"SELECT COUNT(*) FROM {quote_ident(cdm_schema)}.{quote_ident(name)} t "
            f"JOIN idx ON t.person_id = idx.person_id WHERE {_window_sql(table)}",
            params,
        )
        counts[name] = int(row[0]) if row else 0
    return persons, counts


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


@dataclass
class BuiltExtract:
    relative_path: str
    size_bytes: int
    sha256: str
    encrypted: bool
    manifest: dict[str, Any] = field(default_factory=dict)


def _persons(engine: Any, spec: ExtractSpec) -> list[tuple[Any, ...]]:
    cdm = quote_ident(spec.cdm_schema)
    return engine.fetchall(
        _index_cte(spec.results_schema)
        + "SELECT p.person_id, p.gender_concept_id, p.year_of_birth, p.race_concept_id, p.ethnicity_concept_id, "
        f"l.state, idx.index_date FROM {cdm}.person p JOIN idx ON p.person_id = idx.person_id "
        f"LEFT JOIN {cdm}.location l ON l.location_id = p.location_id",
        {"cid": spec.cohort_id},
    )


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
    BIRTH_YEAR: "Year of birth; empty for persons above the site's maximum age (see age_group).",
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
    persons_total, projected = project_rows(
        engine,
        cdm_schema=spec.cdm_schema,
        results_schema=spec.results_schema,
        cohort_id=spec.cohort_id,
        selection=spec.selection,
        days_before=spec.days_before,
        days_after=spec.days_after,
    )
    total = sum(projected.values())
    if total > int(policy["row_limit"]):
        raise ExtractionRefused(
            f"The dataset would hold {total} rows ({', '.join(f'{t}: {n}' for t, n in projected.items())}), "
            f"more than the site's limit of {policy['row_limit']}."
        )
    root.mkdir(parents=True, exist_ok=True)
    target_dir = root / str(spec.request_id)
    target_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=root))
    temporary = target_dir / f".tmp-{secrets.token_hex(8)}.zip"
    try:
        manifest = _assemble(engine, spec, work, persons_total)
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


def _assemble(engine: Any, spec: ExtractSpec, work: Path, persons_total: int) -> dict[str, Any]:
    policy = spec.policy
    max_age, k, mode = int(policy["max_age"]), int(policy["k_anonymity"]), str(policy["date_mode"])

    people = _persons(engine, spec)
    facts: dict[int, dict[str, Any]] = {}
    quasi: dict[int, tuple[Any, ...]] = {}
    for person_id, gender, yob, race, ethnicity, region, index_date in people:
        index = as_date(index_date)
        age = index.year - int(yob) if yob is not None and index is not None else None
        group = age_group(age, max_age=max_age)
        facts[int(person_id)] = {
            "gender_concept_id": gender,
            "year_of_birth": yob if age is not None and age <= max_age else None,
            "race_concept_id": race,
            "ethnicity_concept_id": ethnicity,
            catalogue.AGE_GROUP: group,
        }
        quasi[int(person_id)] = (group, gender, region or "")
    kept, suppressed = k_anonymous(quasi, k=k)
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
                "Age group at the index date (five-year bands, oldest grouped)" if kind == "derived" else "As in OMOP.",
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
        "cohort_persons": persons_total,
        "persons_released": len(kept),
        "persons_suppressed_k_anonymity": suppressed,
        "rows": rows_written,
        "files": {n: {"sha256": _sha256(p), "bytes": p.stat().st_size} for n, p in files.items()},
        "deidentification": [
            "person ids replaced by per-request random pseudonyms",
            "row and visit ids replaced by per-request sequential surrogates; provider, care site and visit "
            "detail ids dropped",
            date_rule,
            f"year of birth removed and age grouped as {max_age + 1}+ above age {max_age}",
            "source values and free text never extracted",
            f"persons whose (age group, sex, region) combination is shared by fewer than {k} persons suppressed",
        ],
        "policy": policy,
    }


def _zip(work: Path, target: Path, manifest: dict[str, Any]) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(manifest["files"]):
            archive.write(work / name, arcname=name)
        archive.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))


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
