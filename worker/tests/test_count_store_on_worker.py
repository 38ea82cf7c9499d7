"""A PostgreSQL site's count store, the whole way with a real worker process: a steward asks for it from the site
page, the site's worker builds it, counts are answered by it while it is fresh; the hospital's ETL changes the CDM,
the next count goes to the database and says so, the worker rebuilds the store, and counts go back to it."""

from __future__ import annotations

from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from django.test import Client
from django.urls import reverse

from accounts.choices import Role
from accounts.tests.factories import enroll_totp
from audit.models import AuditEvent
from cohorts.runs.models import CountStoreSync
from cohorts.runs.services import run_request_create, site_queue
from cohorts.runs.stores import COUNT_STORE
from jobs.choices import FINAL_STATES, JobState
from warehouse.count_store import store_state
from warehouse.models import Source
from warehouse.tests.plain_cdm import etl_change
from worker.tests.helpers import (
    make_source,
    make_user,
    oracle_definition,
    oracle_expected,
    wait_final,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _signed_in(user: Any) -> Client:
    if user.role == Role.STEWARD and not Authenticator.objects.filter(user=user).exists():
        enroll_totp(user)  # stewards work with a second factor
    client = Client()
    client.force_login(user)
    return client


def _synced(source: Source, after: int = 0) -> CountStoreSync:
    return wait_for(
        lambda: (
            CountStoreSync.objects.filter(source=source, pk__gt=after, state__in=FINAL_STATES).order_by("-pk").first()
        ),
        timeout=90,
        what="the count store sync to end",
    )


def test_a_steward_builds_the_store_counts_use_it_and_a_reload_sends_them_back_to_the_database(
    start_worker, cdm_gibleed_pg, oracle_dir
) -> None:
    steward = make_user(role=Role.STEWARD)
    source = make_source(cdm_gibleed_pg, organisation=steward.organisation)
    researcher = make_user()
    start_worker(site_queue(source.key))

    # The site page shows the store as not built, with a button for the site's steward only.
    page = _signed_in(steward).get(reverse("home")).content.decode()
    assert "Build a count store" in page
    assert _signed_in(researcher).post(reverse("cohorts:count_store_sync", args=[source.pk])).status_code == 404
    response = _signed_in(steward).post(reverse("cohorts:count_store_sync", args=[source.pk]))
    assert response.status_code == 302
    sync = _synced(source)
    assert sync.state == JobState.SUCCEEDED, sync.error
    assert sync.trigger == CountStoreSync.Trigger.STEWARD and sync.requested_by == steward
    assert sync.bytes > 0 and sum(sync.rows.values()) > 200_000
    assert AuditEvent.objects.filter(action="count_store.synced", source_key=source.key).exists()
    source.refresh_from_db()
    assert source.count_store and source.count_store_state == "fresh"
    page = _signed_in(steward).get(reverse("home")).content.decode()
    assert "fresh" in page and "last sync" in page and "Rebuild now" in page

    first = oracle_definition(oracle_dir, "pl_3385", researcher)
    (run,) = wait_final(run_request_create(user=researcher, version=first.latest_version(), sources=[source]))
    assert run.state == JobState.SUCCEEDED, run.error
    assert run.result["engine"] == COUNT_STORE and run.result["engine_note"] == ""
    assert run.result["persons"] == oracle_expected(oracle_dir, "pl_3385")["persons"]

    # The hospital's ETL publishes a new release: the next count is answered by the database and says why.
    release = f"UPDATE {cdm_gibleed_pg.cdm_schema}.cdm_source SET source_release_date = source_release_date + %s"
    etl_change(cdm_gibleed_pg, release % 1)
    try:
        _after_the_release(source, researcher, oracle_dir, sync)
    finally:
        etl_change(cdm_gibleed_pg, release % -1)


def _after_the_release(source: Source, researcher: Any, oracle_dir: Any, sync: CountStoreSync) -> None:
    fingerprint = store_state(source).fingerprint
    second = oracle_definition(oracle_dir, "pl_10606", researcher)
    (run,) = wait_final(run_request_create(user=researcher, version=second.latest_version(), sources=[source]))
    assert run.state == JobState.SUCCEEDED, run.error
    assert run.result["engine"] == "postgresql"
    assert "older than its CDM" in run.result["engine_note"]
    assert run.result["persons"] == oracle_expected(oracle_dir, "pl_10606")["persons"]

    # ... and the worker rebuilds the store, after which counts go back to it.
    rebuilt = _synced(source, after=sync.pk)
    assert rebuilt.state == JobState.SUCCEEDED and rebuilt.trigger == CountStoreSync.Trigger.STALE
    assert store_state(source).fingerprint != fingerprint
    third = oracle_definition(oracle_dir, "h04_gibleed_censored_by_acetaminophen", researcher)
    (run,) = wait_final(run_request_create(user=researcher, version=third.latest_version(), sources=[source]))
    assert run.result["engine"] == COUNT_STORE
    assert run.result["persons"] == oracle_expected(oracle_dir, "h04_gibleed_censored_by_acetaminophen")["persons"]


def test_a_steward_of_another_hospital_cannot_rebuild_the_store(cdm_gibleed_pg) -> None:
    source = make_source(cdm_gibleed_pg, organisation=make_user(role=Role.STEWARD).organisation)
    outsider = make_user(role=Role.STEWARD)
    outsider.organisation = None
    outsider.save()
    response = _signed_in(outsider).post(reverse("cohorts:count_store_sync", args=[source.pk]))
    assert response.status_code == 404
    assert not CountStoreSync.objects.filter(source=source).exists()
