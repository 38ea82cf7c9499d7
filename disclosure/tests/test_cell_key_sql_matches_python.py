"""Cell keys computed in SQL, in the query that counts the cell, equal the Python ones — on PostgreSQL and DuckDB,
over GiBleed — and the site's secret never reaches the database."""

from __future__ import annotations

from collections import defaultdict

import pytest

from disclosure.cellkey import cell_key, count_and_cell_key_sql, record_key, record_key_table_build
from warehouse.engines import quote_ident

SECRET = b"record-key secret of the test site"
GI_BLEED = 192671


class RecordingEngine:
    """The engine, with every SQL text and parameter it is sent kept for inspection."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.sent: list[str] = []

    def execute(self, sql, params=None):
        self.sent.append(f"{sql} {params!r}")
        return self.engine.execute(sql, params)

    def fetchall(self, sql, params=None):
        self.sent.append(f"{sql} {params!r}")
        return self.engine.fetchall(sql, params)

    def copy_from_csv(self, table, path, columns, **options):
        self.sent.append(f"COPY {table} {columns} {options!r} {path.read_text()}")
        return self.engine.copy_from_csv(table, path, columns, **options)


@pytest.fixture
def keyed(cdm_gibleed):
    """A connection to GiBleed with the temporary record-key table ``record_keys`` built for SECRET."""
    engine = cdm_gibleed.connect()
    recording = RecordingEngine(engine)
    person_table = f"{quote_ident(cdm_gibleed.cdm_schema)}.person"
    persons = record_key_table_build(
        recording, secret=SECRET, person_table=person_table, table="record_keys", temporary=True
    )
    assert persons > 2000
    assert not any(SECRET.decode() in sent for sent in recording.sent), "the secret reached the database"
    yield engine, quote_ident(cdm_gibleed.cdm_schema)
    engine.close()


def test_record_keys_in_the_database_are_the_python_ones(keyed) -> None:
    engine, schema = keyed
    rows = engine.fetchall("SELECT person_id, record_key FROM record_keys")
    assert {int(p) for p, _ in rows} == {int(p) for (p,) in engine.fetchall(f"SELECT person_id FROM {schema}.person")}
    assert all(int(key) == record_key(SECRET, int(person)) for person, key in rows)


def test_cell_keys_from_sql_equal_python_per_group(keyed) -> None:
    engine, schema = keyed
    persons = engine.fetchall(f"SELECT person_id, gender_concept_id, year_of_birth FROM {schema}.person")
    for group_by, index in ((("gender_concept_id",), 1), (("year_of_birth",), 2)):
        expected: dict[int, list[int]] = defaultdict(list)
        for row in persons:
            expected[int(row[index])].append(record_key(SECRET, int(row[0])))
        sql = count_and_cell_key_sql(
            persons_sql=f"SELECT person_id, {group_by[0]} FROM {schema}.person",
            key_table="record_keys",
            group_by=group_by,
        )
        got = {int(group): (int(n), int(key), int(unkeyed)) for group, n, key, unkeyed in engine.fetchall(sql)}
        assert got == {group: (len(keys), cell_key(keys), 0) for group, keys in expected.items()}


def test_the_cell_key_of_a_cohort_counted_in_sql_equals_python(keyed) -> None:
    engine, schema = keyed
    cohort = f"SELECT DISTINCT person_id FROM {schema}.condition_occurrence WHERE condition_concept_id = %(concept)s"
    members = [int(p) for (p,) in engine.fetchall(cohort, {"concept": GI_BLEED})]
    assert len(members) > 100
    n, key, unkeyed = engine.fetchall(
        count_and_cell_key_sql(persons_sql=cohort, key_table="record_keys"), {"concept": GI_BLEED}
    )[0]
    assert (int(n), int(key), int(unkeyed)) == (len(members), cell_key(record_key(SECRET, p) for p in members), 0)


def test_persons_without_a_record_key_are_reported_not_silently_dropped(keyed) -> None:
    engine, schema = keyed
    engine.execute("DELETE FROM record_keys WHERE person_id = (SELECT MIN(person_id) FROM record_keys)")
    n, _, unkeyed = engine.fetchall(
        count_and_cell_key_sql(persons_sql=f"SELECT person_id FROM {schema}.person", key_table="record_keys")
    )[0]
    assert int(unkeyed) == 1
    assert int(n) == int(engine.fetchone(f"SELECT COUNT(*) FROM {schema}.person")[0])
