"""The count store of a PostgreSQL site counts exactly what the site's database counts, and only while it is fresh.

The store is the site's CDM copied into DuckDB (``warehouse.count_store``); the count path runs on it with the
same compiled definition (``cohorts.runs.generation.count_cohort``). Proven here: every oracle definition counts
Circe's persons, rules and attrition on the store of a PostgreSQL CDM; a change to the CDM makes the store stale,
and a stale store is never used (the count goes to the database, says so, and a sync is queued); a copy during
which the CDM changed is thrown away and the store in place is kept.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from cohorts.expression import parse_expression
from cohorts.runs.generation import count_cohort
from cohorts.runs.models import CountStoreSync
from cohorts.runs.stores import COUNT_STORE, counting_engine, site_check, store_sync_execute
from cohorts.tests.conftest import CDM_FIXTURES, oracle_manifest
from jobs.choices import JobState
from warehouse.count_store import CountStoreError, store_open, store_remove, store_state, store_sync
from warehouse.fingerprint import cdm_fingerprint, counted_tables
from warehouse.models import Source
from warehouse.tests.plain_cdm import etl_change

PG_CASES = [
    pytest.param(entry["name"], entry["dataset"], id=entry["name"])
    for entry in oracle_manifest()
    if (entry["dataset"], "postgresql") in CDM_FIXTURES
]


def _site(cdm: Any, **fields: Any) -> Source:
    """A site on the loaded PostgreSQL test CDM ``cdm`` (not saved unless a test needs the row)."""
    return Source(
        key=f"store{uuid.uuid4().hex[:8]}",
        name="store site",
        engine="postgresql",
        url=cdm.url,
        cdm_schema=cdm.cdm_schema,
        vocabulary_schema=cdm.vocabulary_schema,
        results_schema=cdm.results_schema,
        **fields,
    )


def _sync(cdm: Any, site: Source) -> Any:
    engine = cdm.connect()
    try:
        return store_sync(site, tables=counted_tables(site), fingerprint=lambda: cdm_fingerprint(engine, site))
    finally:
        engine.close()


@pytest.fixture(scope="module")
def stores(request: pytest.FixtureRequest) -> dict[str, Source]:
    """One store per PostgreSQL data set of the oracle, synced once for the module."""
    out = {}
    for dataset in sorted({entry["dataset"] for entry in oracle_manifest()}):
        cdm = request.getfixturevalue(CDM_FIXTURES[(dataset, "postgresql")])
        site = _site(cdm)
        _sync(cdm, site)
        out[dataset] = site
    return out


@pytest.mark.parametrize(("name", "dataset"), PG_CASES)
def test_oracle_definition_counts_like_circe_on_the_count_store(
    stores: dict[str, Source], oracle_dir: Path, name: str, dataset: str
) -> None:
    site = stores[dataset]
    expression = parse_expression(json.loads((oracle_dir / "cohorts" / f"{name}.json").read_text()))
    expected = json.loads((oracle_dir / "expected" / f"{name}.json").read_text())
    store = store_open(site, statement_timeout_seconds=60)
    try:
        result = count_cohort(
            store,
            expression,
            cdm_schema=site.cdm_schema,
            vocabulary_schema=site.vocabulary_schema,
            results_schema=site.results_schema,
        )
    finally:
        store.close()
    assert store.kind == "duckdb"
    assert result.persons == expected["persons"]
    by_person = expected["by_person"]
    assert result.inclusion_rules == [(r["name"], r["count"]) for r in by_person["inclusion_rules"]]
    assert result.attrition == [(r["name"], r["count"]) for r in by_person["attrition"]]


def test_the_store_holds_every_table_counting_reads_with_the_sites_row_counts(cdm_gibleed_pg: Any) -> None:
    site = _site(cdm_gibleed_pg)
    report = _sync(cdm_gibleed_pg, site)
    engine = cdm_gibleed_pg.connect()
    try:
        for name, rows in report.rows.items():
            schema, table = name.split(".")
            (expected,) = engine.fetchone(f'SELECT COUNT(*) FROM "{schema}"."{table}"')
            assert rows == expected, name
    finally:
        engine.close()
    assert {f"{s}.{t}" for s, t in counted_tables(site)} == set(report.rows) | set(report.missing)
    state = store_state(site)
    assert state is not None and state.rows == report.rows and state.bytes == report.bytes > 0


@pytest.mark.django_db
def test_a_stale_store_is_never_used_and_a_sync_is_queued(cdm_gibleed_pg: Any, settings: Any) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    site = _site(cdm_gibleed_pg, count_store=True, fingerprint="x")
    site.save()
    _sync(cdm_gibleed_pg, site)
    engine = cdm_gibleed_pg.connect()
    try:
        fresh = counting_engine(site, engine)
        assert fresh.name == COUNT_STORE and not fresh.note
        fresh.close()
        assert Source.objects.get(pk=site.pk).count_store_state == "fresh"

        # The hospital's ETL publishes a new release (its own session): the CDM's fingerprint moves, the store's not.
        etl_change(cdm_gibleed_pg, _release(cdm_gibleed_pg, "source_release_date + 1"))
        try:
            stale = counting_engine(site, engine)
            assert stale.name == "postgresql" and stale.engine is engine
            assert "older than its CDM" in stale.note
            assert Source.objects.get(pk=site.pk).count_store_state == "stale"
            sync = CountStoreSync.objects.get(source=site)
            assert sync.trigger == CountStoreSync.Trigger.STALE and sync.state == JobState.QUEUED
            # A second stale count queues no second sync.
            counting_engine(site, engine)
            assert CountStoreSync.objects.filter(source=site).count() == 1
        finally:
            etl_change(cdm_gibleed_pg, _release(cdm_gibleed_pg, "source_release_date - 1"))
    finally:
        engine.close()


def _release(cdm: Any, date: str) -> str:
    """The statement by which an ETL records a new release of the CDM (``date``: an SQL expression)."""
    return f"UPDATE {cdm.cdm_schema}.cdm_source SET source_release_date = {date}"


def test_a_copy_during_which_the_cdm_changed_is_thrown_away_and_the_store_kept(cdm_gibleed_pg: Any) -> None:
    site = _site(cdm_gibleed_pg)
    first = _sync(cdm_gibleed_pg, site)
    readings = iter(["before", "after"])
    with pytest.raises(CountStoreError, match="changed while it was copied"):
        store_sync(site, tables=counted_tables(site), fingerprint=lambda: next(readings))
    state = store_state(site)
    assert state is not None and state.fingerprint == first.fingerprint
    assert not list(state.path.parent.glob(f"{state.path.name}.building*"))


def test_a_sync_keeps_one_file_per_store_and_never_touches_another_sites(cdm_gibleed_pg: Any) -> None:
    site = _site(cdm_gibleed_pg)
    neighbour = _site(cdm_gibleed_pg)
    neighbour.key = f"{site.key}_b"  # a key the first one is a prefix of
    _sync(cdm_gibleed_pg, neighbour)
    first = _sync(cdm_gibleed_pg, site)
    second = _sync(cdm_gibleed_pg, site)
    assert second.fingerprint == first.fingerprint
    directory = store_state(site).path.parent
    own = sorted(p.name for p in directory.iterdir() if p.name.startswith(f"soyang_count_store_{site.key}_"))
    assert len([name for name in own if not name.startswith(f"soyang_count_store_{neighbour.key}")]) == 1
    assert store_state(neighbour) is not None
    assert store_remove(site) and store_state(site) is None
    assert store_state(neighbour) is not None


@pytest.mark.django_db(transaction=True)  # the sync closes the worker's old connections, as after every job
def test_the_periodic_check_has_a_missing_store_built_and_leaves_a_fresh_one(cdm_gibleed_pg: Any) -> None:
    site = _site(cdm_gibleed_pg, count_store=True, fingerprint="x")
    site.save()
    assert site_check(source_id=site.pk).endswith("count store missing")
    sync = CountStoreSync.objects.get(source=site)
    assert sync.trigger == CountStoreSync.Trigger.SCHEDULE and sync.state == JobState.QUEUED
    assert store_sync_execute(sync_id=sync.pk, worker="test") == JobState.SUCCEEDED
    assert site_check(source_id=site.pk).endswith("count store fresh")
    assert CountStoreSync.objects.filter(source=site).count() == 1
    assert Source.objects.get(pk=site.pk).count_store_state == "fresh"
