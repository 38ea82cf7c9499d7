"""Fixtures of the attack suite: the sites and what the attacker asks them (generated once per session), and
the portal (per test).

The sites' record-key secrets are fixed for the session, so that every run of the suite releases the same
numbers and measures the same rates: a failure is a change of the code, never a new draw of keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from accounts.choices import Role
from accounts.tests.factories import OrganisationFactory, SourceFactory, UserFactory, make_project
from disclosure.record_keys import record_key_secret_variable
from disclosure.tests.attacks import plans
from disclosure.tests.attacks.portal import Portal
from disclosure.tests.attacks.site import Generated, Site, Warehouse
from warehouse.engines import quote_ident

SITES = ("north", "south")
SECRETS = {"north": "attack suite: the secret of the north site", "south": "attack suite: the secret of the south"}


@pytest.fixture(scope="session")
def warehouse(cdm_gibleed_duckdb: Any) -> Iterator[Warehouse]:
    """GiBleed at two sites: one DuckDB file, a results schema and a secret per site."""
    engine = cdm_gibleed_duckdb.connect()
    with pytest.MonkeyPatch.context() as patch:
        sites = {}
        for key in SITES:
            patch.setenv(record_key_secret_variable(key), SECRETS[key])
            results = f"{key}_results"
            engine.execute_script(
                f"DROP SCHEMA IF EXISTS {quote_ident(results)} CASCADE; CREATE SCHEMA {quote_ident(results)};"
            )
            sites[key] = Site(key, engine, cdm_gibleed_duckdb.cdm_schema, cdm_gibleed_duckdb.vocabulary_schema, results)
        yield Warehouse(engine, cdm_gibleed_duckdb.cdm_schema, sites)
    engine.close()


@pytest.fixture(scope="session")
def chains(warehouse: Warehouse) -> list[plans.Chain]:
    return [plans.chain_of(warehouse.sites["north"], warehouse, condition) for condition in plans.CONDITIONS]


@pytest.fixture(scope="session")
def broken_down(warehouse: Warehouse) -> list[Generated]:
    """First diagnoses with their demographics: those of the chains' conditions and of the margins' own."""
    north = warehouse.sites["north"]
    return [plans.base_of(north, condition) for condition in plans.CONDITIONS + plans.MARGIN_CONDITIONS]


@pytest.fixture(scope="session")
def pairs(warehouse: Warehouse) -> list[plans.Pair]:
    return plans.all_pairs(warehouse.sites["north"], warehouse, plans.CONDITIONS)


@pytest.fixture(scope="session")
def federated_pairs(warehouse: Warehouse, pairs: list[plans.Pair]) -> list[tuple[plans.Pair, plans.Pair]]:
    """The pairs of the federated conditions at both sites: (north's, south's)."""
    south = plans.all_pairs(warehouse.sites["south"], warehouse, plans.FEDERATED_CONDITIONS)
    north = {(pair.larger.name, pair.smaller.name): pair for pair in pairs}
    return [(north[pair.larger.name, pair.smaller.name], pair) for pair in south]


@pytest.fixture(scope="session")
def trackers(warehouse: Warehouse) -> list[plans.Tracker]:
    return [plans.tracker_of(warehouse.sites["north"], warehouse, c) for c in plans.TRACKER_CONDITIONS]


@pytest.fixture(scope="session")
def variants(warehouse: Warehouse) -> list[plans.Variants]:
    return [plans.variants_of(warehouse.sites["north"], warehouse, c) for c in plans.VARIANT_CONDITIONS]


@pytest.fixture
def portal(db: Any, warehouse: Warehouse, cdm_gibleed_duckdb: Any) -> Portal:
    """The portal's rows for the sites, and a researcher of a project on both."""
    hospital, other = OrganisationFactory(name="North Hospital"), OrganisationFactory(name="South Hospital")
    sources = {
        key: SourceFactory(
            key=key,
            organisation=organisation,
            engine="duckdb",
            url=cdm_gibleed_duckdb.url,
            cdm_schema=warehouse.sites[key].cdm_schema,
            vocabulary_schema=warehouse.sites[key].vocabulary_schema,
            results_schema=warehouse.sites[key].results_schema,
            fingerprint=key[0] * 64,
        )
        for key, organisation in (("north", hospital), ("south", other))
    }
    researcher = UserFactory(username="mallory", organisation=hospital, role=Role.RESEARCHER)
    admin = UserFactory(username="attack-admin", role=Role.ADMIN, organisation=hospital)
    project = make_project(
        principal_investigator=researcher, created_by=admin, sources=list(sources.values()), title="Attack suite"
    )
    return Portal(sources, researcher, project)
