"""The count store of a PostgreSQL site as counts use it: which engine answers a count, and the store's syncs.

A site that keeps a count store (``Source.count_store``; the copy itself is ``warehouse.count_store``) counts on
it only while the store holds the CDM as it is now: before every count the worker reads the CDM's fingerprint
(``warehouse.fingerprint``, catalog reads only) and compares it with the one the store copied. A missing or stale
store is never used silently: the count goes to the site's database, its result says so (``engine`` and
``engine_note``), and a sync is queued. Syncs are site jobs (``CountStoreSync``, ``jobs.lifecycle``): claimed with
a lease renewed while the copy runs, at most one active per site, asked for by a steward or admin of the site, by
the beat's periodic check (``site_check``, with the fingerprint's), by a count that found the store stale, or
by ``sync_count_store``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, close_old_connections, transaction
from django.utils import timezone

from accounts.models import User
from accounts.permissions import is_admin
from audit.services import audit_record
from cohorts.runs.errors import BrokerUnavailable
from cohorts.runs.models import CountStoreSync
from disclosure.permissions import is_site_steward
from disclosure.record_keys import record_key_table_name, record_keys_ensure, record_keys_fill
from jobs.choices import ACTIVE_STATES, JobState
from jobs.enqueue import broker_check, job_enqueue_on_commit
from jobs.errors import BrokerUnreachable, SiteUnreachable
from jobs.lifecycle import job_claim, job_finish, job_give_up, job_release, job_renew
from jobs.queues import site_queue
from warehouse.choices import EngineKind
from warehouse.count_store import CountStoreBusy, CountStoreError, store_open, store_state, store_sync
from warehouse.engines import Engine, TransientEngineError, WarehouseError
from warehouse.fingerprint import cdm_fingerprint, counted_tables
from warehouse.models import Source
from warehouse.services import source_connect, source_fingerprint_check

logger = logging.getLogger(__name__)

SYNC_TASK_NAME = "worker.tasks.count_store_sync"
#: What answered a count: the store, or the site's own database engine (``postgresql`` / ``duckdb``).
COUNT_STORE = "count-store"


def can_sync_count_store(user: User | AnonymousUser, source: Source) -> bool:
    """Building or refreshing a site's count store: its stewards and the admins (it costs the site's database a
    full read of the tables counts use)."""
    return is_admin(user) or is_site_steward(user, source)


@dataclass
class Counting:
    """The engine a count runs on, what it is called in the result, and why it is not the store when it is not."""

    engine: Engine
    name: str
    note: str = ""
    opened: bool = False

    def close(self) -> None:
        if self.opened:
            self.engine.close()


def counting_engine(source: Source, engine: Engine, *, fingerprint: str | None = None) -> Counting:
    """The store when the site keeps one and it holds the CDM as it is now, else the site's database ``engine``
    (a sync is then queued, and the note says why). ``fingerprint``: the CDM's, just read (else read here)."""
    if not source.count_store or source.engine != EngineKind.POSTGRESQL:
        return Counting(engine, engine.kind)
    state = store_state(source)
    current = fingerprint if fingerprint is not None else cdm_fingerprint(engine, source)
    if state is not None and state.fingerprint == current:
        try:
            store = store_open(source, statement_timeout_seconds=source.statement_timeout_seconds)
        except CountStoreError as exc:
            logger.warning("%s", exc)
        else:
            _record_check(source, "fresh")
            return Counting(store, COUNT_STORE, opened=True)
    found = "missing" if state is None else "stale"
    _record_check(source, found)
    store_sync_request(source=source, trigger=CountStoreSync.Trigger.STALE)
    note = (
        "The site's count store is not built yet: counted on the site's database; the store is being built."
        if state is None
        else "The site's count store is older than its CDM: counted on the site's database; the store is being rebuilt."
    )
    return Counting(engine, engine.kind, note)


def _record_check(source: Source, found: str) -> None:
    Source.objects.filter(pk=source.pk).update(count_store_state=found, count_store_checked_at=timezone.now())


def store_sync_request(*, source: Source, trigger: str, user: User | None = None, send: bool = True) -> CountStoreSync:
    """Queue a sync of the site's store, or return the one already queued or running (one per site).

    Asked for by a person (``user``): the broker is checked first, so that a sync nobody would run is not
    recorded (raises ``BrokerUnavailable``)."""
    active = CountStoreSync.objects.filter(source=source, state__in=ACTIVE_STATES).first()
    if active is not None:
        return active
    if user is not None and send:
        try:
            broker_check()
        except BrokerUnreachable as exc:
            raise BrokerUnavailable(
                "The task queue does not answer, so the site's worker cannot be asked now. Try again later."
            ) from exc
    try:
        with transaction.atomic():
            if trigger in (CountStoreSync.Trigger.STEWARD, CountStoreSync.Trigger.COMMAND) and not source.count_store:
                # Asking for a store is turning it on: the site counts on it from its first sync.
                Source.objects.filter(pk=source.pk).update(count_store=True)
                source.count_store = True
            sync = CountStoreSync.objects.create(source=source, trigger=trigger, requested_by=user)
            audit_record(
                action="count_store.sync_requested",
                obj=sync,
                actor=user,
                source_key=source.key,
                detail={"trigger": trigger},
            )
            if send:
                job_enqueue_on_commit(SYNC_TASK_NAME, queue=site_queue(source.key), kwargs={"sync_id": sync.pk})
    except IntegrityError:  # another request queued one at the same moment
        return CountStoreSync.objects.get(source=source, state__in=ACTIVE_STATES)
    return sync


def _lease() -> timedelta:
    return timedelta(seconds=int(settings.SOYANG_RUN_LEASE_SECONDS))


def store_sync_execute(*, sync_id: int, worker: str = "", progress: Callable[[str, int], None] | None = None) -> str:
    """Run one sync at the site: key every person (the store copies the record keys), copy, swap, record.

    Raises ``SiteUnreachable`` (lease given back) when the site's database cannot be reached: the task retries."""
    token = job_claim(CountStoreSync, sync_id, lease=_lease(), worker=worker)
    if token is None:
        sync = CountStoreSync.objects.filter(pk=sync_id).first()
        return "missing" if sync is None else sync.state
    sync = CountStoreSync.objects.select_related("source").get(pk=sync_id)
    source = sync.source
    try:
        engine = source_connect(source)
    except TransientEngineError as exc:
        job_release(CountStoreSync, sync_id, token)
        raise SiteUnreachable(str(exc)) from exc
    except WarehouseError as exc:
        job_finish(CountStoreSync, sync_id, token, JobState.FAILED, error=f"The site's database cannot be used: {exc}")
        return JobState.FAILED
    box: dict[str, Any] = {}

    def copy() -> None:
        try:
            record_keys_ensure(engine, source=source)
            record_keys_fill(engine, source=source)
            tables = [*counted_tables(source), (source.results_schema, record_key_table_name(source.key))]
            box["report"] = store_sync(
                source, tables=tables, fingerprint=lambda: cdm_fingerprint(engine, source), progress=progress
            )
        except BaseException as exc:  # handed to the main thread, which records the outcome
            box["error"] = exc

    thread = threading.Thread(target=copy, name=f"count-store-{source.key}", daemon=True)
    thread.start()
    last_renew = time.monotonic()
    try:
        while thread.is_alive():
            thread.join(float(settings.SOYANG_RUN_POLL_SECONDS))
            if thread.is_alive() and time.monotonic() - last_renew > _lease().total_seconds() / 3:
                job_renew(CountStoreSync, sync_id, token, lease=_lease())
                last_renew = time.monotonic()
    finally:
        engine.close()
        close_old_connections()
    error = box.get("error")
    if error is None:
        report = box["report"]
        # One transaction: whoever sees the sync final sees the store's state and the audit record with it.
        with transaction.atomic():
            job_finish(
                CountStoreSync,
                sync_id,
                token,
                JobState.SUCCEEDED,
                fingerprint=report.fingerprint,
                bytes=report.bytes,
                rows=report.rows,
                seconds=report.seconds,
            )
            _record_check(source, "fresh")
            audit_record(
                action="count_store.synced",
                obj=sync,
                source_key=source.key,
                detail={"rows": report.total_rows, "bytes": report.bytes, "seconds": report.seconds},
            )
        return JobState.SUCCEEDED
    if isinstance(error, TransientEngineError):
        job_release(CountStoreSync, sync_id, token)
        raise SiteUnreachable(str(error)) from error
    message = str(error) if isinstance(error, WarehouseError) else f"{type(error).__name__}: {error}"
    if isinstance(error, CountStoreBusy):
        message = "Another sync of this store is running on the site's worker."
    elif not isinstance(error, CountStoreError | WarehouseError):
        logger.error("count store sync %s failed", sync_id, exc_info=error)
    job_finish(CountStoreSync, sync_id, token, JobState.FAILED, error=message[:2000])
    return JobState.FAILED


def store_sync_give_up(*, sync_id: int, reason: str) -> None:
    """Fail a sync whose retries are exhausted (the site's database stayed unreachable)."""
    job_give_up(CountStoreSync, sync_id, error=f"The site could not be reached after several tries: {reason}")


def store_freshness(source: Source) -> str:
    """``fresh``, ``stale`` or ``missing``: the store compared with the CDM as it is now (read-only)."""
    state = store_state(source)
    if state is None:
        return "missing"
    engine = source_connect(source, read_only=True)
    try:
        current = cdm_fingerprint(engine, source)
    finally:
        engine.close()
    return "fresh" if state.fingerprint == current else "stale"


def store_check(*, source_id: int) -> str:
    """At the site (the beat's periodic check): compare the store with the CDM, record what was found, and queue
    a sync when the store is missing or stale."""
    source = Source.objects.get(pk=source_id)
    if not source.count_store or source.engine != EngineKind.POSTGRESQL or not source.is_active:
        return "off"
    try:
        found = store_freshness(source)
    except WarehouseError as exc:
        return f"unreachable: {exc}"
    _record_check(source, found)
    if found != "fresh":
        store_sync_request(source=source, trigger=CountStoreSync.Trigger.SCHEDULE)
    return found


def site_check(*, source_id: int) -> str:
    """At the site, on the beat's periodic check (``worker.fingerprints``): read and record the CDM's fingerprint
    (``warehouse.services.source_fingerprint_check``), then compare the count store with it when the site keeps
    one. Returns what was found, for the task's log."""
    found = source_fingerprint_check(source_id=source_id)
    store = store_check(source_id=source_id)
    return found if store == "off" else f"{found}; count store {store}"
