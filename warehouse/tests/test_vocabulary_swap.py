"""A PostgreSQL load fills staging tables and swaps them in at the end: searches from other connections read the
old vocabulary during the load without waiting for it and the new one after its commit, a second load at the
same time is refused and a migration waits for it, the live tables keep every definition (indexes, constraints,
sequences, privileges, owner) under their names, and a load that fails or would drop a dependent object changes
nothing and leaves nothing behind."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
from django.db import connection, connections, models

from accounts.tests.factories import gibleed_pg_source
from warehouse.models import Concept, ConceptAncestor, ConceptRelationship, ConceptWord
from warehouse.tests.vocabulary_loads import (
    PORTAL_TABLES,
    big_concepts,
    concept_row,
    indexes_and_constraints,
    snapshot,
    vocabulary_folder,
)
from warehouse.vocabulary.load import vocabulary_load_from_directory, vocabulary_load_from_source
from warehouse.vocabulary.search import concept_query, search_ids_with_cursor
from warehouse.vocabulary.staging import SWAP_LOCK_TIMEOUT_MS
from warehouse.vocabulary.tables import VocabularyError

GI_BLEED = 192671  # Gastrointestinal hemorrhage, in GiBleed's vocabulary
OLD_CONCEPTS = [concept_row(1, "Zebrafish hemorrhage"), concept_row(2, "Zebrafish bite of the ankle")]

#: A search from another connection gives up after this long: a search queued behind the load would fail.
SEARCH_TIMEOUT_MS = 2_000


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class _Loader(threading.Thread):
    """A load in its own thread and database connection, as a worker or the command runs it."""

    def __init__(self, load: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._load = load
        self.report: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.report = self._load()
        except BaseException as exc:
            self.error = exc
        finally:
            connections.close_all()

    def finish(self) -> Any:
        self.join(timeout=120)
        assert not self.is_alive(), "the load did not finish"
        if self.error is not None:
            raise self.error
        return self.report


class _Portal:
    """Another connection to the portal's database: a person searching, or a look at the server's state."""

    def __init__(self) -> None:
        self.connection = psycopg2.connect(**connection.get_connection_params())
        with self.connection, self.connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {SEARCH_TIMEOUT_MS}")

    def search(self, text: str) -> list[int]:
        """The portal's own search, in its own short transaction; fails if it waits SEARCH_TIMEOUT_MS."""
        with self.connection, self.connection.cursor() as cursor:
            return search_ids_with_cursor(concept_query(q=text), cursor)

    def one(self, sql: str, params: Any = None) -> Any:
        with self.connection, self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
            return row[0] if row else None

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def portal() -> Iterator[_Portal]:
    other = _Portal()
    yield other
    other.close()


def _old_vocabulary(tmp_path: Path) -> None:
    vocabulary_load_from_directory(directory=vocabulary_folder(tmp_path / "old", [list(c) for c in OLD_CONCEPTS]))


class _HeldLoad:
    """A load running in its thread, held by a lock on its source until ``release``."""

    def __init__(self, loader: _Loader, holder: Any) -> None:
        self.loader = loader
        self._holder = holder

    def release(self) -> Any:
        """End the source's lock, let the load finish, and return its report."""
        if not self._holder.closed:
            self._holder.rollback()
            self._holder.close()
        return self.loader.finish()


@pytest.fixture
def held_load(tmp_path: Path, cdm_gibleed_pg: Any, portal: _Portal) -> Iterator[_HeldLoad]:
    """The old vocabulary committed, then GiBleed's being loaded from its source and held in the middle of its
    COPY into the staging copy of CONCEPT_ANCESTOR: the source's table is locked, so the loader waits for the
    rows it streams. Released after the test if the test did not."""
    _old_vocabulary(tmp_path)
    source = gibleed_pg_source(cdm_gibleed_pg)
    holder = psycopg2.connect(cdm_gibleed_pg.url)
    engine = cdm_gibleed_pg.connect()
    with holder.cursor() as cursor:
        cursor.execute("LOCK TABLE gibleed.concept_ancestor IN ACCESS EXCLUSIVE MODE")
    held = _HeldLoad(_Loader(lambda: vocabulary_load_from_source(source=source, engine=engine)), holder)
    held.loader.start()
    try:
        _wait_for(
            lambda: (
                portal.one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state = 'active' AND query LIKE 'COPY %%warehouse_conceptancestor__staging%%'"
                )
                == 1
            ),
            "the loader's COPY into the staging ancestors",
        )
        yield held
    finally:
        held.release()
        engine.close()


@pytest.mark.django_db(transaction=True)
def test_searches_during_a_load_read_the_old_vocabulary_at_once_and_the_new_one_after_the_commit(
    held_load: _HeldLoad, portal: _Portal
) -> None:
    # The loader is in the middle of its COPY: concepts already copied, the ancestors arriving. Each search
    # would fail after SEARCH_TIMEOUT_MS if it waited for the load.
    assert sorted(portal.search("zebrafish")) == [1, 2]
    assert portal.search("gastrointestinal hemorrhage") == []
    assert 1 in portal.search("zebrafsh hemorrhage")  # corrected through the old word list
    assert portal.one("SELECT count(*) FROM warehouse_concept") == 2
    assert portal.one("SELECT count(*) FROM warehouse_conceptword WHERE word = 'zebrafish'") == 1

    held_load.release()

    assert portal.search("zebrafish") == []
    assert GI_BLEED in portal.search("gastrointestinal hemorrhage")
    assert portal.one("SELECT count(*) FROM warehouse_concept") == 444
    assert portal.one("SELECT count(*) FROM warehouse_conceptancestor") == 65690
    # The word list was built from the new names and swapped with them.
    assert portal.one("SELECT count(*) FROM warehouse_conceptword WHERE word = 'zebrafish'") == 0
    assert portal.one("SELECT count(*) FROM warehouse_conceptword WHERE word = 'gastrointestinal'") == 1


@pytest.mark.django_db(transaction=True)
def test_a_second_load_while_one_is_running_is_refused_and_changes_nothing(
    held_load: _HeldLoad, portal: _Portal, tmp_path: Path
) -> None:
    other = vocabulary_folder(tmp_path / "other", [concept_row(7, "Other vocabulary concept")])

    with pytest.raises(VocabularyError, match=r"^another vocabulary load is in progress \(PostgreSQL backend \d+"):
        vocabulary_load_from_directory(directory=other)

    assert sorted(portal.search("zebrafish")) == [1, 2]
    assert portal.one("SELECT count(*) FROM warehouse_concept") == 2


@pytest.mark.django_db(transaction=True)
def test_a_migration_during_a_load_waits_for_it_rather_than_be_undone_by_the_swap(
    held_load: _HeldLoad, portal: _Portal
) -> None:
    with portal.connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = 300")
        with pytest.raises(psycopg2.errors.LockNotAvailable):
            cursor.execute("CREATE INDEX concept_class ON warehouse_concept (concept_class_id)")
    portal.connection.rollback()

    held_load.release()

    with portal.connection, portal.connection.cursor() as cursor:  # once the load has committed, it goes ahead
        cursor.execute("CREATE INDEX concept_class ON warehouse_concept (concept_class_id)")
        cursor.execute("DROP INDEX concept_class")


@pytest.mark.django_db(transaction=True)
def test_a_long_reader_delays_the_swap_but_searches_meanwhile_wait_at_most_one_lock_try(
    tmp_path: Path, portal: _Portal
) -> None:
    _old_vocabulary(tmp_path)
    new = vocabulary_folder(tmp_path / "new", [concept_row(5, "Axolotl fracture")])
    reader = psycopg2.connect(**connection.get_connection_params())
    with reader.cursor() as cursor:  # a transaction left open after reading the concepts
        cursor.execute("SELECT count(*) FROM warehouse_concept")
    loader = _Loader(lambda: vocabulary_load_from_directory(directory=new))
    loader.start()
    try:
        _wait_for(
            lambda: (
                portal.one(
                    "SELECT count(*) FROM pg_locks WHERE relation = 'warehouse_concept'::regclass "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND mode = 'AccessExclusiveLock' AND NOT granted"
                )
                == 1
            ),
            "the swap's request for the live tables",
        )
        for _ in range(5):
            started = time.monotonic()
            assert sorted(portal.search("zebrafish")) == [1, 2]
            assert time.monotonic() - started < SWAP_LOCK_TIMEOUT_MS / 1000 + 1.0  # one try, not the reader
            time.sleep(0.2)
        assert loader.is_alive()
    finally:
        reader.rollback()
        reader.close()
    loader.finish()

    assert portal.search("zebrafish") == []
    assert portal.search("axolotl") == [5]


#: Definitions a migration or an administrator may give the live tables, beyond what the migrations make today.
EXTRA_DEFINITIONS = [
    "ALTER TABLE warehouse_concept ADD CONSTRAINT concept_id_positive CHECK (concept_id > 0)",
    "CREATE UNIQUE INDEX concept_code_per_vocabulary ON warehouse_concept (vocabulary_id, concept_code) "
    "WHERE invalid_reason = ''",
    "GRANT SELECT ON warehouse_concept TO PUBLIC",
    # Owned by another role than the one loading (here a superuser); the role goes with the test's rollback.
    "CREATE ROLE vocabulary_swap_test_owner",
    "ALTER TABLE warehouse_domain OWNER TO vocabulary_swap_test_owner",
    "ALTER TABLE warehouse_conceptancestor SET (fillfactor = 90)",
    # A serial column (a sequence owned by the column) instead of the identity Django creates.
    "ALTER TABLE warehouse_conceptrelationship ALTER id DROP IDENTITY",
    "CREATE SEQUENCE warehouse_conceptrelationship_id_seq OWNED BY warehouse_conceptrelationship.id",
    "ALTER TABLE warehouse_conceptrelationship ALTER id SET DEFAULT nextval('warehouse_conceptrelationship_id_seq')",
]


def _definitions() -> dict[str, Any]:
    """Everything of the vocabulary tables a swap must keep, by name: indexes, constraints, columns (type, NOT
    NULL, default, identity), privileges, storage options and the sequences their columns own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity, "
            "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE c.relname = ANY(%s) AND c.relnamespace = current_schema()::regnamespace AND a.attnum > 0 "
            "AND NOT a.attisdropped ORDER BY 1, a.attnum",
            [PORTAL_TABLES],
        )
        columns = cursor.fetchall()
        cursor.execute(
            "SELECT relname, relowner::regrole::text, relacl::text, reloptions::text FROM pg_class "
            "WHERE relname = ANY(%s) AND relnamespace = current_schema()::regnamespace ORDER BY 1",
            [PORTAL_TABLES],
        )
        tables = cursor.fetchall()
        cursor.execute(
            "SELECT c.relname, a.attname, pg_get_serial_sequence(c.relname, a.attname) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid WHERE c.relname = ANY(%s) "
            "AND c.relnamespace = current_schema()::regnamespace AND a.attnum > 0 AND NOT a.attisdropped "
            "AND pg_get_serial_sequence(c.relname, a.attname) IS NOT NULL ORDER BY 1, 2",
            [PORTAL_TABLES],
        )
        sequences = cursor.fetchall()
    indexes, constraints = indexes_and_constraints()
    return {"indexes": indexes, "constraints": constraints, "columns": columns, "tables": tables, "seq": sequences}


def _relations() -> list[str]:
    """Every table, index and sequence of the schema: a failed load leaves no staging relation behind."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
            "AND relkind IN ('r', 'i', 'S') ORDER BY 1"
        )
        return [name for (name,) in cursor.fetchall()]


@pytest.mark.django_db
def test_the_swapped_tables_keep_every_index_constraint_sequence_and_privilege_under_their_names(
    tmp_path: Path,
) -> None:
    with connection.cursor() as cursor:
        for statement in EXTRA_DEFINITIONS:
            cursor.execute(statement)
    before = _definitions()
    assert ("warehouse_conceptancestor", "id", "public.warehouse_conceptancestor_id_seq") in before["seq"]
    assert ("warehouse_conceptrelationship", "id", "public.warehouse_conceptrelationship_id_seq") in before["seq"]
    relations = _relations()

    report = vocabulary_load_from_directory(directory=vocabulary_folder(tmp_path / "v", big_concepts(300)))

    assert _definitions() == before
    assert _relations() == relations
    assert report.rows["concept"] == 300
    assert "index concept_code_per_vocabulary" in report.steps
    # The sequences are the new tables': the ORM inserts as usual into both kinds of column.
    ConceptAncestor.objects.create(
        ancestor_concept_id=1, descendant_concept_id=2, min_levels_of_separation=1, max_levels_of_separation=1
    )
    ConceptRelationship.objects.create(concept_id_1=1, concept_id_2=2, relationship_id="Maps to")


@pytest.mark.django_db
def test_migrations_that_name_an_index_or_a_constraint_still_find_it_after_a_load(tmp_path: Path) -> None:
    vocabulary_load_from_directory(directory=vocabulary_folder(tmp_path / "v", big_concepts(50)))
    indexes, constraints = indexes_and_constraints()
    renamed = models.Index(fields=["concept_id_1", "relationship_id"], name="relationship_from_renamed")

    # Django drops an index with IF EXISTS: the sets compared below show it found the one it named.
    with connection.schema_editor() as editor:
        editor.remove_index(Concept, Concept._meta.indexes[0])
        editor.remove_constraint(ConceptAncestor, ConceptAncestor._meta.constraints[0])
        editor.rename_index(ConceptRelationship, ConceptRelationship._meta.indexes[0], renamed)

    expected = set()
    for table, name, definition in indexes:
        if name == "relationship_from":
            expected.add((table, renamed.name, definition.replace(f"INDEX {name} ", f"INDEX {renamed.name} ")))
        elif name not in ("concept_domain_vocab", "one_ancestry_pair"):
            expected.add((table, name, definition))
    indexes_after, constraints_after = indexes_and_constraints()
    assert set(indexes_after) == expected
    assert set(constraints_after) == {row for row in constraints if row[1] != "one_ancestry_pair"}


def _break_gzip(folder: Path) -> None:
    """CONCEPT.csv gzipped and cut in the middle: its header reads, its rows end in a broken stream."""
    data = gzip.compress((folder / "CONCEPT.csv").read_bytes())
    (folder / "CONCEPT.csv").unlink()
    (folder / "CONCEPT.csv.gz").write_bytes(data[: len(data) // 2])


def _duplicate_ancestry_pair(folder: Path) -> None:
    with (folder / "CONCEPT_ANCESTOR.csv").open("a", encoding="utf-8") as handle:
        handle.write("1017\t1017\t0\t0\n")


def _bad_ancestor_level(folder: Path) -> None:
    with (folder / "CONCEPT_ANCESTOR.csv").open("a", encoding="utf-8") as handle:
        handle.write("1017\t1018\tone\t1\n")


#: (what fails, how, the message): while reading a file, in a COPY, and when the unique pairs are built.
FAILURES = [
    ("a broken file", _break_gzip, r"^CONCEPT\.csv\.gz, after line \d+: cannot read the file"),
    ("a bad row", _bad_ancestor_level, r"^CONCEPT_ANCESTOR\.csv, line 3002: bad row \(invalid literal for int"),
    ("a duplicate pair", _duplicate_ancestry_pair, r"^CONCEPT_ANCESTOR\.csv: .*\"one_ancestry_pair\".*=\(1017, 1017\)"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("what", "breaks", "message"), FAILURES, ids=[case[0] for case in FAILURES])
def test_a_failed_load_keeps_the_old_vocabulary_and_leaves_no_staging_table(
    tmp_path: Path, what: str, breaks: Callable[[Path], None], message: str
) -> None:
    _old_vocabulary(tmp_path)
    old = snapshot()
    definitions = _definitions()
    relations = _relations()
    folder = vocabulary_folder(tmp_path / "bad", big_concepts(3_000))
    breaks(folder)

    with pytest.raises(VocabularyError, match=message):
        vocabulary_load_from_directory(directory=folder)

    assert snapshot() == old
    assert _definitions() == definitions
    assert _relations() == relations
    assert not [name for name in relations if "staging" in name]


#: Objects that refer to a vocabulary table: replacing the table would need to drop them (CASCADE).
DEPENDENTS = [
    ("foreign key", "CREATE TABLE my_concept_notes (concept_id integer REFERENCES warehouse_concept)", "foreign key"),
    (
        "view",
        "CREATE VIEW my_standard_concepts AS SELECT * FROM warehouse_concept WHERE standard_concept = 'S'",
        "view",
    ),
    (
        "trigger",
        "CREATE FUNCTION concept_touched() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$; "
        "CREATE TRIGGER concept_touched BEFORE INSERT ON warehouse_concept FOR EACH ROW "
        "EXECUTE FUNCTION concept_touched()",
        "trigger",
    ),
    ("publication", "CREATE PUBLICATION vocabulary_feed FOR TABLE warehouse_conceptancestor", "publication"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("what", "statement", "named"), DEPENDENTS, ids=[case[0] for case in DEPENDENTS])
def test_a_load_that_would_drop_a_dependent_object_is_refused_before_it_starts(
    tmp_path: Path, what: str, statement: str, named: str
) -> None:
    _old_vocabulary(tmp_path)
    with connection.cursor() as cursor:
        cursor.execute(statement)
    old = snapshot()
    relations = _relations()

    with pytest.raises(VocabularyError, match=rf"would drop or lose {named} .*nothing was changed"):
        vocabulary_load_from_directory(directory=vocabulary_folder(tmp_path / "new", big_concepts(10)))

    assert snapshot() == old
    assert _relations() == relations
    assert ConceptWord.objects.filter(word="zebrafish").exists()
