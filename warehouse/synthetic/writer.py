"""CSV output of the synthetic warehouse: one TABLE.csv per OMOP CDM v5.4 table, built from headerless parts.

Columns are the official CDM v5.4 columns in their official order, every one of them (empty = NULL), so the
loader can take the files as they are. Text is produced by DuckDB's CSV writer from numpy arrays: it formats
millions of values per second in C, where a Python loop over rows would dominate the whole run. One DuckDB
thread and insertion order make the output byte-for-byte reproducible.

Text columns with few distinct values (concept codes, visit sources) are passed as :class:`Coded` (integer
indices into a label tuple) and looked up inside DuckDB: handing DuckDB a numpy unicode array makes it run
``np.unique`` over the column first, which cost more than all the rest of the formatting together.

Generation workers write one headerless part per (chunk, table) with :class:`PartFormatter`; the parent process
appends them in chunk order with :meth:`CsvWriter.append_file` (a kernel-side ``sendfile`` copy), so what a
file contains never depends on which process formatted which chunk.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

# kinds: i = integer (-1 = NULL), d = date (days since 1970-01-01, NULL_DAY = NULL), t = datetime from such a day,
# f = float (NaN = NULL), s = text ('' = NULL). A column absent from a chunk is written empty.
_D = "d"
CDM_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "person": (
        ("person_id", "i"), ("gender_concept_id", "i"), ("year_of_birth", "i"), ("month_of_birth", "i"),
        ("day_of_birth", "i"), ("birth_datetime", "t"), ("race_concept_id", "i"), ("ethnicity_concept_id", "i"),
        ("location_id", "i"), ("provider_id", "i"), ("care_site_id", "i"), ("person_source_value", "s"),
        ("gender_source_value", "s"), ("gender_source_concept_id", "i"), ("race_source_value", "s"),
        ("race_source_concept_id", "i"), ("ethnicity_source_value", "s"), ("ethnicity_source_concept_id", "i"),
    ),
    "observation_period": (
        ("observation_period_id", "i"), ("person_id", "i"), ("observation_period_start_date", _D),
        ("observation_period_end_date", _D), ("period_type_concept_id", "i"),
    ),
    "visit_occurrence": (
        ("visit_occurrence_id", "i"), ("person_id", "i"), ("visit_concept_id", "i"), ("visit_start_date", _D),
        ("visit_start_datetime", "t"), ("visit_end_date", _D), ("visit_end_datetime", "t"),
        ("visit_type_concept_id", "i"), ("provider_id", "i"), ("care_site_id", "i"), ("visit_source_value", "s"),
        ("visit_source_concept_id", "i"), ("admitted_from_concept_id", "i"), ("admitted_from_source_value", "s"),
        ("discharged_to_concept_id", "i"), ("discharged_to_source_value", "s"),
        ("preceding_visit_occurrence_id", "i"),
    ),
    "condition_occurrence": (
        ("condition_occurrence_id", "i"), ("person_id", "i"), ("condition_concept_id", "i"),
        ("condition_start_date", _D), ("condition_start_datetime", "t"), ("condition_end_date", _D),
        ("condition_end_datetime", "t"), ("condition_type_concept_id", "i"), ("condition_status_concept_id", "i"),
        ("stop_reason", "s"), ("provider_id", "i"), ("visit_occurrence_id", "i"), ("visit_detail_id", "i"),
        ("condition_source_value", "s"), ("condition_source_concept_id", "i"), ("condition_status_source_value", "s"),
    ),
    "drug_exposure": (
        ("drug_exposure_id", "i"), ("person_id", "i"), ("drug_concept_id", "i"), ("drug_exposure_start_date", _D),
        ("drug_exposure_start_datetime", "t"), ("drug_exposure_end_date", _D), ("drug_exposure_end_datetime", "t"),
        ("verbatim_end_date", _D), ("drug_type_concept_id", "i"), ("stop_reason", "s"), ("refills", "i"),
        ("quantity", "f"), ("days_supply", "i"), ("sig", "s"), ("route_concept_id", "i"), ("lot_number", "s"),
        ("provider_id", "i"), ("visit_occurrence_id", "i"), ("visit_detail_id", "i"), ("drug_source_value", "s"),
        ("drug_source_concept_id", "i"), ("route_source_value", "s"), ("dose_unit_source_value", "s"),
    ),
    "procedure_occurrence": (
        ("procedure_occurrence_id", "i"), ("person_id", "i"), ("procedure_concept_id", "i"), ("procedure_date", _D),
        ("procedure_datetime", "t"), ("procedure_end_date", _D), ("procedure_end_datetime", "t"),
        ("procedure_type_concept_id", "i"), ("modifier_concept_id", "i"), ("quantity", "i"), ("provider_id", "i"),
        ("visit_occurrence_id", "i"), ("visit_detail_id", "i"), ("procedure_source_value", "s"),
        ("procedure_source_concept_id", "i"), ("modifier_source_value", "s"),
    ),
    "measurement": (
        ("measurement_id", "i"), ("person_id", "i"), ("measurement_concept_id", "i"), ("measurement_date", _D),
        ("measurement_datetime", "t"), ("measurement_time", "s"), ("measurement_type_concept_id", "i"),
        ("operator_concept_id", "i"), ("value_as_number", "f"), ("value_as_concept_id", "i"),
        ("unit_concept_id", "i"), ("range_low", "f"), ("range_high", "f"), ("provider_id", "i"),
        ("visit_occurrence_id", "i"), ("visit_detail_id", "i"), ("measurement_source_value", "s"),
        ("measurement_source_concept_id", "i"), ("unit_source_value", "s"), ("unit_source_concept_id", "i"),
        ("value_source_value", "s"), ("measurement_event_id", "i"), ("meas_event_field_concept_id", "i"),
    ),
    "death": (
        ("person_id", "i"), ("death_date", _D), ("death_datetime", "t"), ("death_type_concept_id", "i"),
        ("cause_concept_id", "i"), ("cause_source_value", "s"), ("cause_source_concept_id", "i"),
    ),
    "condition_era": (
        ("condition_era_id", "i"), ("person_id", "i"), ("condition_concept_id", "i"),
        ("condition_era_start_date", _D), ("condition_era_end_date", _D), ("condition_occurrence_count", "i"),
    ),
    "drug_era": (
        ("drug_era_id", "i"), ("person_id", "i"), ("drug_concept_id", "i"), ("drug_era_start_date", _D),
        ("drug_era_end_date", _D), ("drug_exposure_count", "i"), ("gap_days", "i"),
    ),
    "dose_era": (
        ("dose_era_id", "i"), ("person_id", "i"), ("drug_concept_id", "i"), ("unit_concept_id", "i"),
        ("dose_value", "f"), ("dose_era_start_date", _D), ("dose_era_end_date", _D),
    ),
    "visit_detail": (
        ("visit_detail_id", "i"), ("person_id", "i"), ("visit_detail_concept_id", "i"),
        ("visit_detail_start_date", _D), ("visit_detail_start_datetime", "t"), ("visit_detail_end_date", _D),
        ("visit_detail_end_datetime", "t"), ("visit_detail_type_concept_id", "i"), ("provider_id", "i"),
        ("care_site_id", "i"), ("visit_detail_source_value", "s"), ("visit_detail_source_concept_id", "i"),
        ("admitted_from_concept_id", "i"), ("admitted_from_source_value", "s"), ("discharged_to_source_value", "s"),
        ("discharged_to_concept_id", "i"), ("preceding_visit_detail_id", "i"), ("parent_visit_detail_id", "i"),
        ("visit_occurrence_id", "i"),
    ),
    "specimen": (
        ("specimen_id", "i"), ("person_id", "i"), ("specimen_concept_id", "i"), ("specimen_type_concept_id", "i"),
        ("specimen_date", _D), ("specimen_datetime", "t"), ("quantity", "f"), ("unit_concept_id", "i"),
        ("anatomic_site_concept_id", "i"), ("disease_status_concept_id", "i"), ("specimen_source_id", "s"),
        ("specimen_source_value", "s"), ("unit_source_value", "s"), ("anatomic_site_source_value", "s"),
        ("disease_status_source_value", "s"),
    ),
    "observation": (
        ("observation_id", "i"), ("person_id", "i"), ("observation_concept_id", "i"), ("observation_date", _D),
        ("observation_datetime", "t"), ("observation_type_concept_id", "i"), ("value_as_number", "f"),
        ("value_as_string", "s"), ("value_as_concept_id", "i"), ("qualifier_concept_id", "i"),
        ("unit_concept_id", "i"), ("provider_id", "i"), ("visit_occurrence_id", "i"), ("visit_detail_id", "i"),
        ("observation_source_value", "s"), ("observation_source_concept_id", "i"), ("unit_source_value", "s"),
        ("qualifier_source_value", "s"), ("value_source_value", "s"), ("observation_event_id", "i"),
        ("obs_event_field_concept_id", "i"),
    ),
    "device_exposure": (
        ("device_exposure_id", "i"), ("person_id", "i"), ("device_concept_id", "i"),
        ("device_exposure_start_date", _D), ("device_exposure_start_datetime", "t"), ("device_exposure_end_date", _D),
        ("device_exposure_end_datetime", "t"), ("device_type_concept_id", "i"), ("unique_device_id", "s"),
        ("production_id", "s"), ("quantity", "i"), ("provider_id", "i"), ("visit_occurrence_id", "i"),
        ("visit_detail_id", "i"), ("device_source_value", "s"), ("device_source_concept_id", "i"),
        ("unit_concept_id", "i"), ("unit_source_value", "s"), ("unit_source_concept_id", "i"),
    ),
    "location": (
        ("location_id", "i"), ("address_1", "s"), ("address_2", "s"), ("city", "s"), ("state", "s"), ("zip", "s"),
        ("county", "s"), ("location_source_value", "s"), ("country_concept_id", "i"), ("country_source_value", "s"),
        ("latitude", "f"), ("longitude", "f"),
    ),
    "care_site": (
        ("care_site_id", "i"), ("care_site_name", "s"), ("place_of_service_concept_id", "i"), ("location_id", "i"),
        ("care_site_source_value", "s"), ("place_of_service_source_value", "s"),
    ),
    "provider": (
        ("provider_id", "i"), ("provider_name", "s"), ("npi", "s"), ("dea", "s"), ("specialty_concept_id", "i"),
        ("care_site_id", "i"), ("year_of_birth", "i"), ("gender_concept_id", "i"), ("provider_source_value", "s"),
        ("specialty_source_value", "s"), ("specialty_source_concept_id", "i"), ("gender_source_value", "s"),
        ("gender_source_concept_id", "i"),
    ),
    "cdm_source": (
        ("cdm_source_name", "s"), ("cdm_source_abbreviation", "s"), ("cdm_holder", "s"), ("source_description", "s"),
        ("source_documentation_reference", "s"), ("cdm_etl_reference", "s"), ("source_release_date", _D),
        ("cdm_release_date", _D), ("cdm_version", "s"), ("cdm_version_concept_id", "i"), ("vocabulary_version", "s"),
    ),
    "concept": (
        ("concept_id", "i"), ("concept_name", "s"), ("domain_id", "s"), ("vocabulary_id", "s"),
        ("concept_class_id", "s"), ("standard_concept", "s"), ("concept_code", "s"), ("valid_start_date", "s"),
        ("valid_end_date", "s"), ("invalid_reason", "s"),
    ),
    "concept_ancestor": (
        ("ancestor_concept_id", "i"), ("descendant_concept_id", "i"), ("min_levels_of_separation", "i"),
        ("max_levels_of_separation", "i"),
    ),
    "concept_relationship": (
        ("concept_id_1", "i"), ("concept_id_2", "i"), ("relationship_id", "s"), ("valid_start_date", "s"),
        ("valid_end_date", "s"), ("invalid_reason", "s"),
    ),
    "vocabulary": (
        ("vocabulary_id", "s"), ("vocabulary_name", "s"), ("vocabulary_reference", "s"), ("vocabulary_version", "s"),
        ("vocabulary_concept_id", "i"),
    ),
    "domain": (("domain_id", "s"), ("domain_name", "s"), ("domain_concept_id", "i")),
    "concept_class": (("concept_class_id", "s"), ("concept_class_name", "s"), ("concept_class_concept_id", "i")),
    "relationship": (
        ("relationship_id", "s"), ("relationship_name", "s"), ("is_hierarchical", "s"), ("defines_ancestry", "s"),
        ("reverse_relationship_id", "s"), ("relationship_concept_id", "i"),
    ),
}  # fmt: skip

#: A day that stands for NULL in date columns (days before 1970 are real dates: births).
NULL_DAY = -(2**31)
_EXPR = {
    "i": "NULLIF({c}, -1)",
    "d": f"DATE '1970-01-01' + CAST(NULLIF({{c}}, {NULL_DAY}) AS INTEGER)",
    "t": f"CAST(DATE '1970-01-01' + CAST(NULLIF({{c}}, {NULL_DAY}) AS INTEGER) AS TIMESTAMP)",
    "f": "CASE WHEN isnan({c}) THEN NULL ELSE {c} END",
    "s": "NULLIF({c}, '')",
}


@dataclass(frozen=True, slots=True)
class Coded:
    """A text column given as indices into ``labels`` (-1 = NULL): formatted by DuckDB with a list lookup."""

    index: np.ndarray
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.index)


Column = np.ndarray | Coded


def _label_list(labels: tuple[str, ...]) -> str:
    # NULL in front: index -1 lands on it (DuckDB lists are 1-based, hence + 2 below), so no CASE is needed.
    quoted = ("'" + label.replace("'", "''") + "'" if label else "NULL" for label in labels)
    return "[NULL, " + ", ".join(quoted) + "]"


class PartFormatter:
    """Formats one table's chunk of columns into a headerless CSV file (one single-threaded DuckDB connection)."""

    def __init__(self) -> None:
        self._con = duckdb.connect()
        # One thread: the CSV writer then emits rows in input order and identical bytes on every run.
        self._con.execute("SET threads = 1")
        # Workers share the terminal: a progress bar from each of them would only garble the command's output.
        self._con.execute("SET enable_progress_bar = false")
        self._lists: dict[tuple[str, ...], str] = {}

    def write(self, table: str, data: Mapping[str, Column], path: Path) -> int:
        """Write ``data`` as rows of ``table`` to ``path`` (overwritten, no header). Returns the rows written."""
        columns = CDM_TABLES[table]
        unknown = set(data) - {name for name, _kind in columns}
        if unknown:
            raise ValueError(f"{table}: not CDM v5.4 columns: {sorted(unknown)}")
        lengths = {len(v) for v in data.values()}
        if len(lengths) != 1:
            raise ValueError(f"{table}: columns of different lengths {lengths}")
        count = lengths.pop()
        chunk: dict[str, np.ndarray] = {}
        exprs = []
        for name, kind in columns:
            value = data.get(name)
            if value is None:
                exprs.append(f'NULL AS "{name}"')
            elif isinstance(value, Coded):
                if kind != "s":
                    raise ValueError(f"{table}.{name}: only text columns can be coded")
                chunk[name] = np.ascontiguousarray(value.index, dtype=np.int64)
                labels = self._lists.get(value.labels)
                if labels is None:
                    labels = self._lists[value.labels] = _label_list(value.labels)
                exprs.append(f'{labels}["{name}" + 2] AS "{name}"')
            else:
                chunk[name] = np.ascontiguousarray(value)
                exprs.append(_EXPR[kind].format(c=f'"{name}"') + f' AS "{name}"')
        if count == 0:
            path.write_bytes(b"")
            return 0
        self._con.register("chunk", chunk)
        try:
            self._con.execute(f"COPY (SELECT {', '.join(exprs)} FROM chunk) TO '{path}' (HEADER false)")
        finally:
            self._con.unregister("chunk")
        return count

    def close(self) -> None:
        self._con.close()


def _append_file(source: Path, out: int) -> None:
    """Append the whole of ``source`` to the open file descriptor ``out`` (in the kernel where possible)."""
    with source.open("rb") as part:
        size = os.fstat(part.fileno()).st_size
        offset = 0
        try:
            while offset < size:
                sent = os.sendfile(out, part.fileno(), offset, size - offset)
                if sent == 0:
                    break
                offset += sent
        except OSError:
            # sendfile not allowed between these files: copy the rest through user space.
            part.seek(offset)
            with os.fdopen(os.dup(out), "ab") as handle:
                shutil.copyfileobj(part, handle, 1 << 22)
            offset = size
        if offset < size:
            raise OSError(f"short copy of {source}: {offset} of {size} bytes")


class CsvWriter:
    """Builds per-table CSV files in ``directory``: header written once, then chunks or part files appended."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, int] = {}
        self._formatter = PartFormatter()
        self._scratch = self.directory / ".chunk.csv"
        self._files: dict[str, int] = {}
        for table, columns in CDM_TABLES.items():
            path = self.directory / f"{table}.csv"
            path.write_text(",".join(name for name, _kind in columns) + "\n", encoding="utf-8")
            # Plain write-only descriptor positioned at the end (O_APPEND would rule out sendfile on some kernels).
            fd = os.open(path, os.O_WRONLY)
            os.lseek(fd, 0, os.SEEK_END)
            self._files[table] = fd
            self.rows[table] = 0

    def append(self, table: str, data: Mapping[str, Column]) -> int:
        """Append one chunk of ``table``; every array has the same length. Returns the rows written."""
        count = self._formatter.write(table, data, self._scratch)
        self.append_file(table, self._scratch, count)
        return count

    def append_file(self, table: str, path: Path, rows: int) -> None:
        """Append the headerless part ``path`` holding ``rows`` rows of ``table``, then delete it."""
        _append_file(Path(path), self._files[table])
        Path(path).unlink()
        self.rows[table] += rows

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()
        self._formatter.close()


def file_checksums(directory: Path) -> dict[str, str]:
    """SHA-256 of every CSV file in ``directory``, by file name."""
    sums: dict[str, str] = {}
    for path in sorted(Path(directory).glob("*.csv")):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 22), b""):
                digest.update(block)
        sums[path.name] = digest.hexdigest()
    return sums
