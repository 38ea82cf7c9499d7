"""Vocabulary folders for the load tests (OMOP CSV files, as Athena or a CDM export writes them), and what a load
leaves in the portal's tables: every row, and the indexes and constraints with their names and definitions.
Shared by warehouse/tests/test_vocabulary_copy.py and test_vocabulary_swap.py."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from django.db import connection

from warehouse.models import Concept, ConceptAncestor, ConceptRelationship, ConceptWord, Domain, Vocabulary

CONCEPT_HEADER = [
    "concept_id",
    "concept_name",
    "domain_id",
    "vocabulary_id",
    "concept_class_id",
    "standard_concept",
    "concept_code",
    "valid_start_date",
    "valid_end_date",
    "invalid_reason",
]
ANCESTOR_HEADER = [
    "ancestor_concept_id",
    "descendant_concept_id",
    "min_levels_of_separation",
    "max_levels_of_separation",
]
RELATIONSHIP_HEADER = [
    "concept_id_1",
    "concept_id_2",
    "relationship_id",
    "valid_start_date",
    "valid_end_date",
    "invalid_reason",
]
PORTAL_TABLES = [
    "warehouse_concept",
    "warehouse_conceptancestor",
    "warehouse_conceptrelationship",
    "warehouse_vocabulary",
    "warehouse_domain",
    "warehouse_conceptword",
]


def concept_row(
    concept_id: int,
    name: str,
    *,
    domain: str = "Condition",
    standard: str = "S",
    code: str | None = None,
    start: str = "20070101",
    end: str = "20991231",
    invalid: str = "",
) -> list[str]:
    code = code if code is not None else f"C{concept_id}"
    return [str(concept_id), name, domain, "SNOMED", "Clinical Finding", standard, code, start, end, invalid]


def _write_table(path: Path, header: list[str], rows: list[list[str]], *, tab: bool) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        if tab:  # Athena: TAB-separated, unquoted, a quote is part of the text
            handle.write("\t".join(header) + "\n")
            handle.writelines("\t".join(row) + "\n" for row in rows)
        else:
            csv.writer(handle, lineterminator="\n").writerows([header, *rows])


def vocabulary_folder(
    folder: Path,
    concepts: list[list[str]],
    *,
    ancestors: list[list[str]] | None = None,
    relationships: list[list[str]] | None = None,
    tab: bool = True,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    standard = [row[0] for row in concepts if row[5] == "S"]
    if ancestors is None:
        ancestors = [[cid, cid, "0", "0"] for cid in standard]
    if relationships is None:
        relationships = [[cid, cid, rel, "20070101", "20991231", ""] for cid in standard for rel in ("Maps to", "Is a")]
    _write_table(folder / "CONCEPT.csv", CONCEPT_HEADER, concepts, tab=tab)
    _write_table(folder / "CONCEPT_ANCESTOR.csv", ANCESTOR_HEADER, ancestors, tab=tab)
    _write_table(folder / "CONCEPT_RELATIONSHIP.csv", RELATIONSHIP_HEADER, relationships, tab=tab)
    _write_table(folder / "VOCABULARY.csv", ["vocabulary_id", "vocabulary_name"], [["SNOMED", "SNOMED CT"]], tab=tab)
    _write_table(folder / "DOMAIN.csv", ["domain_id", "domain_name"], [["Condition", "Condition"]], tab=tab)
    return folder


def big_concepts(count: int) -> list[list[str]]:
    return [concept_row(1_000 + n, f"Generated concept number {n}", code=f"G{n}") for n in range(count)]


def snapshot() -> dict[str, list[Any]]:
    """Every row of every vocabulary table, in a stable order."""
    return {
        "concept": list(Concept.objects.order_by("concept_id").values_list()),
        "ancestor": sorted(
            ConceptAncestor.objects.values_list(
                "ancestor_concept_id", "descendant_concept_id", "min_levels_of_separation", "max_levels_of_separation"
            )
        ),
        "relationship": sorted(
            ConceptRelationship.objects.values_list("concept_id_1", "concept_id_2", "relationship_id", "invalid_reason")
        ),
        "vocabulary": list(Vocabulary.objects.order_by("vocabulary_id").values_list()),
        "domain": list(Domain.objects.order_by("domain_id").values_list()),
        "word": sorted(ConceptWord.objects.values_list("word", flat=True)),
    }


def indexes_and_constraints() -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = current_schema() AND tablename = ANY(%s) ORDER BY 1, 2",
            [PORTAL_TABLES],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid::regclass::text = ANY(%s) ORDER BY 1, 2",
            [PORTAL_TABLES],
        )
        return indexes, cursor.fetchall()
