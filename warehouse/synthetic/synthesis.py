"""Write a whole synthetic CDM (vocabulary, reference tables, events) as one CSV file per table.

Design, in short (details in ``generator``, ``parallel`` and ``writer``):

* Determinism: the same ``(persons, seed, chunk_size)`` gives byte-identical files, whatever the number of
  processes (``jobs``) and the machine. Each chunk of persons has its own random stream
  (``SeedSequence([seed, chunk_index])``); ids are dense and numbered in chunk order; text is formatted by a
  single-threaded DuckDB and concatenated in chunk order.
* Chunks: persons are generated ``chunk_size`` at a time, fully vectorised with numpy; ``jobs`` processes build
  and format chunks concurrently and the parent appends their part files to ``TABLE.csv``.
* Memory: bounded by ``jobs`` chunks in flight (a few hundred MiB per 10,000 persons each), not by ``persons``;
  the whole population is never held in memory, so a million persons need no more than ten thousand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from warehouse.synthetic import generator, parallel, vocabulary
from warehouse.synthetic.writer import CsvWriter

CDM_VERSION = "5.4"
CDM_VERSION_CONCEPT_ID = 756265  # "OMOP CDM Version 5.4.0"


@dataclass
class SynthesisReport:
    """What was written: rows per table, seconds spent, and where."""

    directory: Path
    persons: int
    seed: int
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def _vocabulary_tables(writer: CsvWriter) -> None:
    known = vocabulary.concepts()
    cs = list(known.values())
    writer.append(
        "concept",
        {
            "concept_id": np.array([c.concept_id for c in cs], dtype=np.int64),
            "concept_name": np.array([c.concept_name for c in cs]),
            "domain_id": np.array([c.domain_id for c in cs]),
            "vocabulary_id": np.array([c.vocabulary_id for c in cs]),
            "concept_class_id": np.array([c.concept_class_id for c in cs]),
            "standard_concept": np.array([c.standard_concept for c in cs]),
            "concept_code": np.array([c.concept_code for c in cs]),
            "valid_start_date": np.array([c.valid_start_date for c in cs]),
            "valid_end_date": np.array([c.valid_end_date for c in cs]),
            "invalid_reason": np.array(["D" if c.valid_end_date < "2099-12-31" else "" for c in cs]),
        },
    )
    anc = np.array(vocabulary.ancestor_rows(), dtype=np.int64)
    writer.append(
        "concept_ancestor",
        {
            "ancestor_concept_id": anc[:, 0],
            "descendant_concept_id": anc[:, 1],
            "min_levels_of_separation": anc[:, 2],
            "max_levels_of_separation": anc[:, 3],
        },
    )
    rel = vocabulary.relationship_rows()
    writer.append(
        "concept_relationship",
        {
            "concept_id_1": np.array([r[0] for r in rel], dtype=np.int64),
            "concept_id_2": np.array([r[1] for r in rel], dtype=np.int64),
            "relationship_id": np.array([r[2] for r in rel]),
            "valid_start_date": np.full(len(rel), vocabulary.VALID_START),
            "valid_end_date": np.full(len(rel), vocabulary.VALID_END),
        },
    )
    for table, rows, names in (
        ("vocabulary", vocabulary.VOCABULARY_ROWS, ("vocabulary_id", "vocabulary_name", "vocabulary_reference",
                                                    "vocabulary_version", "vocabulary_concept_id")),
        ("domain", vocabulary.DOMAIN_ROWS, ("domain_id", "domain_name", "domain_concept_id")),
        ("concept_class", vocabulary.concept_class_rows(),
         ("concept_class_id", "concept_class_name", "concept_class_concept_id")),
        ("relationship", vocabulary.RELATIONSHIP_ROWS, ("relationship_id", "relationship_name", "is_hierarchical",
                                                        "defines_ancestry", "reverse_relationship_id",
                                                        "relationship_concept_id")),
    ):  # fmt: skip
        cols = list(zip(*rows, strict=True))
        writer.append(
            table,
            {
                name: np.array(col, dtype=np.int64) if name.endswith("concept_id") else np.array(col)
                for name, col in zip(names, cols, strict=True)
            },
        )


def write_cdm(
    directory: Path,
    *,
    persons: int,
    seed: int,
    chunk_size: int = 10_000,
    jobs: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> SynthesisReport:
    """Write a synthetic CDM of ``persons`` persons into ``directory`` (TABLE.csv per table).

    Same (persons, seed, chunk_size) → byte-identical files, for any ``jobs`` (processes generating chunks;
    default one per CPU). Memory is bounded by ``jobs`` chunks.
    """
    if persons < 1:
        raise ValueError("persons must be at least 1")
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    started = time.perf_counter()
    directory = Path(directory)
    writer = CsvWriter(directory)
    try:
        _vocabulary_tables(writer)
        for table, data in generator.reference_tables().items():
            writer.append(table, data)
        day = generator.WINDOW_END
        writer.append(
            "cdm_source",
            {
                "cdm_source_name": np.array(["Soyang synthetic CDM"]),
                "cdm_source_abbreviation": np.array(["SOYANG-SYN"]),
                "cdm_holder": np.array(["Soyang"]),
                "source_description": np.array([f"Synthetic population of {persons} persons, seed {seed}"]),
                "source_release_date": np.array([day]),
                "cdm_release_date": np.array([day]),
                "cdm_version": np.array([CDM_VERSION]),
                "cdm_version_concept_id": np.array([CDM_VERSION_CONCEPT_ID]),
                "vocabulary_version": np.array(["Soyang subset v1"]),  # VARCHAR(20)
            },
        )

        def report(done: int) -> None:
            if progress:
                progress(f"{done}/{persons} persons written ({time.perf_counter() - started:.1f} s)")

        parallel.write_chunks(writer, persons=persons, seed=seed, chunk_size=chunk_size, jobs=jobs, progress=report)
    finally:
        writer.close()
    return SynthesisReport(
        directory=directory, persons=persons, seed=seed, rows=dict(writer.rows), seconds=time.perf_counter() - started
    )
