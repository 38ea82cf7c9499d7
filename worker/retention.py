"""Retention of a site's results rows: the cohorts Soyang wrote at a site are deleted once nothing needs them.

A dataset request writes its cohort into the site's own ``<results>.cohort`` and ``<results>.cohort_inclusion_result``
under ``DATASET_COHORT_BASE + review.pk`` (``datasets.services``); runs counted before the count path (which
writes nothing, ``cohorts.runs.execution``) wrote theirs under ``cohort_definition_id = run.pk``. Only the task
that wrote the rows reads them: a dataset extraction generates its cohort again rather than reading the
projection's. Kept for ever, they would fill the site's results tables without bound.

Rules and invariants:
- Only ids the portal knows for that site are deleted: the pks of the site's final runs and the dataset ids of
  the site's reviews, each by its own ``DELETE … WHERE cohort_definition_id = id``. No other id of those tables
  (the site's own cohorts, ``run_cohort``'s ids) is ever touched.
- A run is due once it has been final for longer than the retention (``SOYANG_RESULTS_RETENTION_HOURS``): final
  is absorbing (a final run is never claimed again, so no new task writes its id). The one writer left would be
  a worker that lost its lease while still alive and was overtaken: the retention is what gives it time to end.
  A dataset cohort is due once no job of its request runs at the site any more
  (``datasets.selectors.reviews_rows_due``).
- The site deletes in batches, one warehouse transaction each; the portal records a batch as pruned
  (``rows_pruned_at``) only after the site committed it. A failure (site down) leaves the rest unrecorded, and
  the next prune deletes them; a batch committed but not recorded is deleted again (nothing left) and recorded.
- One prune of a site at a time: an advisory lock on the portal database, so that two prunes (the beat and an
  operator's command) neither attribute the same rows twice in the audit log nor wait on each other's deletes.
"""

# SQL text here is built from the source's validated results schema (quote_ident) and the two table names of
# ``RESULTS_TABLES``; the cohort id is a bound parameter.
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from audit.services import audit_record
from cohorts.compiler import RESULTS_TABLES
from cohorts.compiler.dialects import dialect_for
from cohorts.runs.models import CohortRun
from datasets.extraction import DATASET_COHORT_BASE
from datasets.selectors import reviews_rows_due
from datasets.services import reviews_rows_pruned
from jobs.choices import FINAL_STATES
from jobs.enqueue import job_send
from jobs.queues import site_queue
from warehouse.engines import Engine, WarehouseError, quote_ident
from warehouse.models import Source
from warehouse.services import source_connect
from warehouse.spark_catalog import table_names

logger = logging.getLogger(__name__)

PRUNE_TASK_NAME = "worker.tasks.results_prune_site"
#: Cohorts deleted per warehouse transaction. A cohort of a whole site is under a million rows: ten of them are a
#: transaction of seconds, which neither holds the results tables' locks long nor loses much work to a failure.
BATCH_COHORTS = 10
#: First key of the portal-side advisory lock of a site's prune ("PRN"); the second is the source's pk.
_LOCK_CLASS = 0x50524E


@dataclass(frozen=True)
class DueCohort:
    """One cohort id of the site whose rows may go, and the portal record it belongs to."""

    cohort_id: int
    label: str
    run_id: int | None = None
    review_id: int | None = None


@dataclass(frozen=True)
class PrunedCohort:
    """The rows a prune deleted (or, in a dry run, would delete) of one cohort id."""

    cohort: DueCohort
    rows: int
    inclusion_rows: int


@dataclass
class PruneReport:
    """What one prune of a site did. ``recorded``: the cohorts this prune marked as pruned (another prune that got
    there first keeps them); ``error``: why it stopped early (the unrecorded rest waits for the next prune)."""

    source_key: str
    cutoff: datetime
    retention_hours: int
    dry_run: bool = False
    due: int = 0
    pruned: list[PrunedCohort] = field(default_factory=list)
    recorded: int = 0
    batches: int = 0
    error: str = ""
    busy: bool = False

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.pruned)

    @property
    def inclusion_rows(self) -> int:
        return sum(p.inclusion_rows for p in self.pruned)


def retention_hours() -> int:
    """``SOYANG_RESULTS_RETENTION_HOURS``: how long a final run's rows stay at the site (0: pruned once final)."""
    return int(settings.SOYANG_RESULTS_RETENTION_HOURS)


def results_due(*, source: Source, cutoff: datetime) -> list[DueCohort]:
    """The cohort ids of ``source`` whose rows may be deleted: runs final since before ``cutoff``, then dataset
    cohorts whose site work ended before it. Never an id of another site or one the portal does not know."""
    runs = (
        CohortRun.objects.filter(
            source=source, rows_pruned_at__isnull=True, state__in=FINAL_STATES, finished_at__lte=cutoff
        )
        .order_by("pk")
        .values_list("pk", "kind", "state")
    )
    due = [DueCohort(cohort_id=pk, label=f"run {pk} ({kind}, {state})", run_id=pk) for pk, kind, state in runs]
    reviews = reviews_rows_due(source=source, cutoff=cutoff).values_list("pk", "request_id", "request__state")
    due += [
        DueCohort(
            cohort_id=DATASET_COHORT_BASE + pk,
            label=f"dataset request {request_id} ({state})",
            review_id=pk,
        )
        for pk, request_id, state in reviews
    ]
    return due


def results_prune(
    *,
    source_id: int,
    older_than_hours: int | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH_COHORTS,
    trigger: str = "schedule",
) -> PruneReport:
    """Delete at the site the rows of the cohorts of ``source_id`` that are due, ``batch_size`` ids per warehouse
    transaction; record them as pruned and audit the prune (one event, counts only). Runs where the site's
    database is reachable: on the site's worker, or the site operator's ``prune_results`` command.

    ``older_than_hours`` overrides the retention; ``dry_run`` only counts the rows at the site. A warehouse error
    (site down, lock conflict…) stops the prune: the report says so in ``error`` and what was done before stays
    done and recorded. ``busy`` when another prune of the site holds the lock (nothing done).
    """
    source = Source.objects.get(pk=source_id)
    hours = retention_hours() if older_than_hours is None else int(older_than_hours)
    if hours < 0:
        raise ValueError("the retention is a number of hours, 0 or more")
    if batch_size < 1:
        raise ValueError("a batch holds at least one cohort")
    report = PruneReport(
        source_key=source.key, cutoff=timezone.now() - timedelta(hours=hours), retention_hours=hours, dry_run=dry_run
    )
    # A dry run only counts (SELECT): it does not take the lock, so a prune meanwhile goes ahead. Not a read-only
    # connection though: DuckDB refuses one beside a read-write connection to the same file in the same process.
    with _site_prune_lock(source, take=not dry_run) as held:
        if not held:
            report.busy = True
            return report
        due = results_due(source=source, cutoff=report.cutoff)
        report.due = len(due)
        if not due:
            return report
        try:
            with source_connect(source) as engine:
                _prune_batches(engine, source=source, due=due, batch_size=batch_size, report=report)
        except WarehouseError as exc:
            report.error = str(exc) or type(exc).__name__
            logger.warning("prune of the results of %s stopped: %s", source.key, report.error)
        if not dry_run and report.pruned:
            _prune_audit(source, report, trigger=trigger)
    return report


def _prune_batches(
    engine: Engine, *, source: Source, due: Sequence[DueCohort], batch_size: int, report: PruneReport
) -> None:
    schema = quote_ident(source.results_schema)
    tables = _results_tables(engine, source.results_schema)
    for start in range(0, len(due), batch_size):
        batch = due[start : start + batch_size]
        if report.dry_run:
            report.pruned += [_cohort_rows(engine, schema, tables, cohort, delete=False) for cohort in batch]
            continue
        with engine.transaction():
            pruned = [_cohort_rows(engine, schema, tables, cohort, delete=True) for cohort in batch]
        # Recorded only now that the site committed: a crash in between leaves the batch unrecorded, and the next
        # prune deletes nothing more and records it.
        report.pruned += pruned
        report.batches += 1
        report.recorded += _record_pruned(batch)


def _results_tables(engine: Engine, results_schema: str) -> set[str]:
    """Which results tables exist at the site: none before its first generation (a run that failed to connect)."""
    if engine.kind == "spark":  # no information_schema on Spark
        return table_names(engine, [results_schema]).get(results_schema, set()) & set(RESULTS_TABLES)
    rows = engine.fetchall(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %(schema)s",
        {"schema": results_schema},
    )
    return {str(name) for (name,) in rows} & set(RESULTS_TABLES)


def _cohort_rows(engine: Engine, schema: str, tables: set[str], cohort: DueCohort, *, delete: bool) -> PrunedCohort:
    counts = {}
    for table in ("cohort", "cohort_inclusion_result"):
        if table not in tables:
            counts[table] = 0
            continue
        rows = f"FROM {schema}.{quote_ident(table)} WHERE cohort_definition_id = %(cohort_id)s"
        # One statement that deletes and counts, the same on both engines; one id per statement, so that
        # PostgreSQL's BRIN index of the column narrows the scan exactly as for the generation's own delete.
        dialect = dialect_for(engine.kind)
        if delete and dialect.writes_by_partition:
            # Spark cannot DELETE: the rows are counted, then the cohort's partition dropped (no transaction there;
            # rows written for this id in between, by nothing Soyang runs once the run is final, go uncounted).
            row = engine.fetchone(f"SELECT COUNT(*) {rows}", {"cohort_id": cohort.cohort_id})  # noqa: S608
            cohort_id = str(int(cohort.cohort_id))
            for statement in dialect.delete_cohort_rows(f"{schema}.{quote_ident(table)}", cohort_id):
                engine.execute(statement)
            counts[table] = int(row[0]) if row else 0
            continue
        if delete:
            sql = f"WITH gone AS (DELETE {rows} RETURNING cohort_definition_id) SELECT COUNT(*) FROM gone"  # noqa: S608
        else:
            sql = f"SELECT COUNT(*) {rows}"  # noqa: S608
        row = engine.fetchone(sql, {"cohort_id": cohort.cohort_id})
        counts[table] = int(row[0]) if row else 0
    return PrunedCohort(cohort=cohort, rows=counts["cohort"], inclusion_rows=counts["cohort_inclusion_result"])


def _record_pruned(batch: Sequence[DueCohort]) -> int:
    now = timezone.now()
    run_ids = [c.run_id for c in batch if c.run_id is not None]
    review_ids = [c.review_id for c in batch if c.review_id is not None]
    # Conditional on "not yet recorded": the count is of the cohorts this prune recorded.
    recorded = CohortRun.objects.filter(pk__in=run_ids, rows_pruned_at__isnull=True).update(rows_pruned_at=now)
    return recorded + (reviews_rows_pruned(review_ids=review_ids, at=now) if review_ids else 0)


def _prune_audit(source: Source, report: PruneReport, *, trigger: str) -> None:
    runs = sum(1 for p in report.pruned if p.cohort.run_id is not None)
    audit_record(
        action="results_prune",
        obj=source,
        source_key=source.key,
        outcome="failure" if report.error else "success",
        # Counts and the rule applied only: never a row, and no id of a person.
        detail={
            "cohorts": len(report.pruned),
            "runs": runs,
            "dataset_cohorts": len(report.pruned) - runs,
            "rows": report.rows,
            "inclusion_rows": report.inclusion_rows,
            "recorded": report.recorded,
            "batches": report.batches,
            "retention_hours": report.retention_hours,
            "cutoff": report.cutoff.isoformat(),
            "trigger": trigger,
            **({"error": report.error[:500], "left": report.due - len(report.pruned)} if report.error else {}),
        },
    )


@contextmanager
def _site_prune_lock(source: Source, *, take: bool = True) -> Iterator[bool]:
    """A session-level advisory lock on the portal database for the prune of one site; yields False when another
    process holds it. Session-level, not transaction-level: the prune commits in batches while it holds it. Where
    the portal database has no advisory locks, prunes are not serialized (they stay correct: deletes and records
    are idempotent, only the audit's counts could be split between two prunes)."""
    if not take or connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_CLASS, source.pk])
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_CLASS, source.pk])
            except DatabaseError:
                # The connection is gone, and the lock with it (the server releases it with the session).
                logger.warning("could not release the prune lock of %s", source.key, exc_info=True)


def results_prune_enqueue() -> int:
    """Celery beat, on the portal: one prune task on the queue of each active site, whose worker reaches the site's
    database (the portal may not). Returns how many were sent.

    A task not started within one beat interval (the site's worker is down) expires: the next beat sends a fresh
    one, so a site back after a long outage runs one prune rather than one per missed hour.
    """
    interval = int(settings.SOYANG_RESULTS_PRUNE_INTERVAL_SECONDS)
    sent = 0
    for source in Source.objects.filter(is_active=True).only("pk", "key").order_by("key"):
        job_send(PRUNE_TASK_NAME, kwargs={"source_id": source.pk}, queue=site_queue(source.key), expires=interval)
        sent += 1
    return sent
