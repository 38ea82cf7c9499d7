"""Loading the vocabulary with COPY on PostgreSQL: awkward text survives exactly as the ORM path stores it, a bad
row deep in a big file names its file and line and changes nothing, the indexes and constraints come back
with the same names and definitions, and the search finds what was loaded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from warehouse.models import Concept, ConceptAncestor, ConceptRelationship
from warehouse.tests.vocabulary_loads import (
    big_concepts,
    concept_row,
    indexes_and_constraints,
    snapshot,
    vocabulary_folder,
)
from warehouse.vocabulary import load, staging
from warehouse.vocabulary.load import vocabulary_load_from_directory
from warehouse.vocabulary.search import concept_query, concept_search
from warehouse.vocabulary.tables import VocabularyError

pytestmark = pytest.mark.django_db

LONG_NAME = "Chronic hemorrhagic " + "very " * 195 + "long."  # 1,000 characters, no line break
assert len(LONG_NAME) == 1_000

#: Names either file format carries: (concept_id, name).
AWKWARD_NAMES = [
    (101, "Gastric ulcer with hemorrhage"),
    (102, r"Path C:\temp\new\table with back\slashes \\ doubled"),
    (103, '"Quoted" hemorrhage, "NOS"'),
    (104, "\\N"),  # the text of COPY's NULL marker, as a name: must stay text
    (105, "\\."),  # COPY's end-of-data marker, as a name
    (106, "제2형 당뇨병 (type 2 diabetes)"),
    (107, "Ménière's disease — café-au-lait spots, Sjögren"),
    (108, LONG_NAME),
    (109, "Trailing backslash \\"),
]
#: Names only a quoted comma CSV can carry (Athena TAB files are unquoted).
COMMA_ONLY_NAMES = [
    (201, "Tab\tinside the name"),
    (202, "Line\nbreak inside the name"),
    (203, "Carriage\rreturn and \r\n both"),
]


def _awkward_concepts(names: list[tuple[int, str]]) -> list[list[str]]:
    rows = [concept_row(cid, name) for cid, name in names]
    # Empty optional fields (no standard flag, no dates, no invalid reason) and an invalid concept.
    rows.append(concept_row(301, "Non-standard with empty optional fields", standard="", start="", end=""))
    rows.append(concept_row(302, "Deprecated hemorrhage code", standard="", invalid="D", end="20180131"))
    rows.append(concept_row(303, "Upgraded code", standard="", invalid="U", code='X"1\\2'))
    return rows


@pytest.fixture
def write_with(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Choose how a PostgreSQL load writes: "copy" (the default) or "bulk_create" (the ORM, as on SQLite)."""

    def choose(how: str) -> None:
        monkeypatch.setattr(load, "POSTGRESQL_WRITE", how)
        monkeypatch.setattr(staging, "REBUILD_INDEXES", how == "copy")

    return choose


@pytest.mark.parametrize("file_format", ["athena-tab", "comma-csv"])
def test_awkward_names_and_empty_fields_round_trip_exactly_as_the_orm_stores_them(
    tmp_path: Path, write_with: Callable[[str], None], file_format: str
) -> None:
    tab = file_format == "athena-tab"
    names = AWKWARD_NAMES + ([] if tab else COMMA_ONLY_NAMES)
    folder = vocabulary_folder(tmp_path / "vocabulary", _awkward_concepts(names), tab=tab)

    write_with("bulk_create")
    vocabulary_load_from_directory(directory=folder)
    through_the_orm = snapshot()
    write_with("copy")
    vocabulary_load_from_directory(directory=folder)
    through_copy = snapshot()

    assert through_copy == through_the_orm
    stored = dict(Concept.objects.values_list("concept_id", "concept_name"))
    for concept_id, name in names:
        assert stored[concept_id] == name[:255], concept_id  # the column holds 255 characters, as before
    assert len(stored[108]) == 255
    empty = Concept.objects.get(concept_id=301)
    assert (empty.standard_concept, empty.invalid_reason, empty.valid_start_date, empty.valid_end_date) == (
        "",
        "",
        None,
        None,
    )
    assert Concept.objects.get(concept_id=302).invalid_reason == "D"
    assert Concept.objects.get(concept_id=303).concept_code == 'X"1\\2'
    assert str(Concept.objects.get(concept_id=302).valid_end_date) == "2018-01-31"
    # Only 'Maps to' and 'Mapped from' are kept.
    assert set(ConceptRelationship.objects.values_list("relationship_id", flat=True)) == {"Maps to"}


def test_the_search_finds_the_concepts_loaded_with_copy(tmp_path: Path) -> None:
    folder = vocabulary_folder(tmp_path / "vocabulary", _awkward_concepts(AWKWARD_NAMES))
    vocabulary_load_from_directory(directory=folder)

    def found(text: str, **filters: Any) -> list[int]:
        return [c.concept_id for c in concept_search(concept_query(q=text, **filters))]

    assert found("gastric ulcer")[0] == 101
    assert 103 in found("quoted hemorrhage")
    assert found("C107") == [107]  # by code
    assert found("108") == [108]  # by id
    assert found("제2형 당뇨병 (type 2 diabetes)")[0] == 106  # the exact name
    assert 107 in found("sjögren")
    assert 302 in found("deprecated hemorrhage", include_invalid="1")
    assert 302 not in found("deprecated hemorrhage")
    assert 101 in found("gastrik ulcer")  # a misspelling, corrected through the word list the load rebuilt


def _break_concept_id(concepts: list[list[str]], ancestors: list[list[str]], index: int) -> None:
    concepts[index][0] = "12x"


def _break_field_count(concepts: list[list[str]], ancestors: list[list[str]], index: int) -> None:
    del concepts[index][-1]


def _break_date(concepts: list[list[str]], ancestors: list[list[str]], index: int) -> None:
    concepts[index][7] = "2007-13-45"


def _duplicate_concept_id(concepts: list[list[str]], ancestors: list[list[str]], index: int) -> None:
    concepts[index][0] = concepts[3][0]


def _overflow_ancestor_level(concepts: list[list[str]], ancestors: list[list[str]], index: int) -> None:
    ancestors[index][2] = "3000000000"


#: (what is wrong, file, how the row is broken, expected message after "FILE, line N: ").
BAD_ROWS = [
    ("non-integer id", "CONCEPT.csv", _break_concept_id, r"bad row \(invalid literal for int"),
    ("wrong field count", "CONCEPT.csv", _break_field_count, "9 fields, expected 10"),
    ("impossible date", "CONCEPT.csv", _break_date, r"bad row \(month must be in 1\.\.12"),
    ("duplicate id", "CONCEPT.csv", _duplicate_concept_id, r"duplicate key value .* \(Key \(concept_id\)=\(1003\)"),
    ("integer out of range", "CONCEPT_ANCESTOR.csv", _overflow_ancestor_level, 'value "3000000000" is out of range'),
]

BIG = 30_000  # three batches of BATCH_ROWS rows
BAD_INDEX = 25_000  # the row at line 25,002 (line 1 is the header)


@pytest.fixture
def previous_vocabulary(tmp_path: Path) -> Iterator[dict[str, list[Any]]]:
    """A small vocabulary already loaded, and its snapshot."""
    folder = vocabulary_folder(tmp_path / "previous", _awkward_concepts(AWKWARD_NAMES[:3]))
    vocabulary_load_from_directory(directory=folder)
    yield snapshot()


@pytest.mark.parametrize("copy_rows", [staging.COPY_ROWS, 7_000], ids=["one-copy-statement", "several-statements"])
@pytest.mark.parametrize(("what", "file_name", "breaks", "message"), BAD_ROWS, ids=[case[0] for case in BAD_ROWS])
def test_a_bad_row_deep_in_a_big_file_names_its_file_and_line_and_changes_nothing(
    tmp_path: Path,
    previous_vocabulary: dict[str, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    copy_rows: int,
    what: str,
    file_name: str,
    breaks: Callable[[list[list[str]], list[list[str]], int], None],
    message: str,
) -> None:
    monkeypatch.setattr(staging, "COPY_ROWS", copy_rows)
    indexes_before = indexes_and_constraints()
    concepts = big_concepts(BIG)
    ancestors = [[row[0], row[0], "0", "0"] for row in concepts]
    breaks(concepts, ancestors, BAD_INDEX)
    folder = vocabulary_folder(tmp_path / "bad", concepts, ancestors=ancestors)

    with pytest.raises(VocabularyError, match=rf"^{file_name}, line {BAD_INDEX + 2}: {message}"):
        vocabulary_load_from_directory(directory=folder)

    assert snapshot() == previous_vocabulary
    assert indexes_and_constraints() == indexes_before


def test_a_duplicate_ancestry_pair_names_the_file_and_the_pair_and_changes_nothing(
    tmp_path: Path, previous_vocabulary: dict[str, list[Any]]
) -> None:
    indexes_before = indexes_and_constraints()
    concepts = big_concepts(BIG)
    ancestors = [[row[0], row[0], "0", "0"] for row in concepts]
    ancestors[BAD_INDEX] = list(ancestors[17])
    folder = vocabulary_folder(tmp_path / "bad", concepts, ancestors=ancestors)

    # The unique pair is checked when its index is built again after the copy: the key, not the line.
    with pytest.raises(VocabularyError, match=r"^CONCEPT_ANCESTOR\.csv: .*one_ancestry_pair.*=\(1017, 1017\)"):
        vocabulary_load_from_directory(directory=folder)

    assert snapshot() == previous_vocabulary
    assert indexes_and_constraints() == indexes_before


def test_a_load_leaves_the_same_indexes_and_constraints_as_the_migrations(tmp_path: Path) -> None:
    before = indexes_and_constraints()
    names = {name for _table, name, _definition in before[0]}
    # The search's trigram GIN indexes and the hierarchy's unique pair are among those dropped and rebuilt.
    assert {"concept_name_trgm", "concept_code_trgm", "concept_word_trgm", "one_ancestry_pair"} <= names
    folder = vocabulary_folder(tmp_path / "vocabulary", big_concepts(2_000))

    report = vocabulary_load_from_directory(directory=folder)

    assert indexes_and_constraints() == before
    assert report.rows["concept"] == 2_000
    assert "index concept_name_trgm" in report.steps


def test_a_postgresql_load_writes_the_big_tables_with_copy_not_insert(tmp_path: Path) -> None:
    folder = vocabulary_folder(tmp_path / "vocabulary", big_concepts(500))
    statements: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        vocabulary_load_from_directory(directory=folder)

    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO") and "warehouse_concept" in s]
    assert all("warehouse_conceptword" in s for s in inserts), inserts  # the word list is INSERT … SELECT
    assert Concept.objects.count() == 500
    assert ConceptAncestor.objects.count() == 500
