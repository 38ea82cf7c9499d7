"""Running a CohortRun on the site's worker: claim, compute with cancel and lease renewal, record.

The run is a site job: its claim, lease, renewal, release and outcome follow ``jobs.lifecycle`` (exactly one
worker holds a live lease; a worker killed with SIGKILL stops renewing, its message is redelivered and the next
worker takes the run over once the lease has lapsed; only the lease holder records the outcome).
Cohort rows are written to the source's results schema keyed on the run id, delete-then-insert in one warehouse
transaction, so a retried or taken-over run leaves no duplicate rows.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from cohorts.expression import ExpressionError, parse_expression
from cohorts.runs.choices import RunKind
from cohorts.runs.demographics import PopulationCache, cohort_demographics
from cohorts.runs.generation import ConceptSetCache, count_cohort
from cohorts.runs.models import CohortRun
from cohorts.runs.stores import counting_engine
from disclosure.record_keys import RecordKeyError, record_keys_ensure, record_keys_fill
from jobs.choices import JobState
from jobs.errors import JobHeld, SiteUnreachable
from jobs.lifecycle import (
    job_cancel_requested,
    job_claim,
    job_finish,
    job_give_up,
    job_record,
    job_release,
    job_renew,
)
from jobs.models import SiteJob
from warehouse.engines import QueryCancelled, QueryTimeout, TransientEngineError, WarehouseError
from warehouse.services import source_connect, source_fingerprint_confirm

logger = logging.getLogger(__name__)

#: The concept sets this worker process resolved, per site and CDM fingerprint (``ConceptSetCache``).
CONCEPT_SETS = ConceptSetCache()
#: The site populations this worker process described, per site and CDM fingerprint (``PopulationCache``).
POPULATIONS = PopulationCache()


@dataclass
class _Progress:
    step: int = 0
    total: int = 0
    label: str = ""
    changed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def report(self, step: int, total: int, label: str) -> None:
        with self.lock:
            self.step, self.total, self.label, self.changed = step, total, label[:200], True


def _lease() -> timedelta:
    return timedelta(seconds=int(settings.SOYANG_RUN_LEASE_SECONDS))


def _finish(run_id: int, token: str, state: str, **fields: Any) -> bool:
    return job_finish(CohortRun, run_id, token, state, **fields)


def claim_or_hold(model: type[SiteJob], job_id: int, *, worker: str) -> tuple[str | None, str]:
    """Claim a site job for this worker: ``(token, "")``; or, when it cannot be claimed, ``(None, outcome)`` with
    the job's final state (or "missing": deleted, or not committed yet). Raises JobHeld while another worker holds
    a live lease on it, to come back when that lease would have lapsed."""
    token = job_claim(model, job_id, lease=_lease(), worker=worker)
    if token is not None:
        return token, ""
    job = model._default_manager.filter(pk=job_id).first()
    if job is None:
        logger.warning("%s %s does not exist (deleted or not yet committed)", model.__name__, job_id)
        return None, "missing"
    if job.is_final:
        return None, job.state
    remaining = (job.lease_expires_at - timezone.now()).total_seconds() if job.lease_expires_at else 1.0
    raise JobHeld(retry_in=max(1.0, remaining + 0.5))


def run_execute(*, run_id: int, worker: str = "") -> str:
    """Execute one run to its end; returns its state. Called by the Celery task of the run's site queue.

    Raises JobHeld while another worker holds a live lease on the run, and SiteUnreachable (lease given back)
    when the site's database is unreachable: the task retries both."""
    token, outcome = claim_or_hold(CohortRun, run_id, worker=worker)
    if token is None:
        return outcome
    run = CohortRun.objects.select_related("source", "version").get(pk=run_id)
    if run.cancel_requested:
        _finish(run_id, token, JobState.CANCELLED, error="Cancelled.")
        return JobState.CANCELLED
    try:
        expression = parse_expression(run.counted_expression)
    except ExpressionError as exc:
        _finish(run_id, token, JobState.FAILED, error=f"The definition is not valid: {exc}")
        return JobState.FAILED
    return _execute_claimed(run, token, expression)


def _execute_claimed(run: CohortRun, token: str, expression: Any) -> str:
    def work(engine: Any, fingerprint: str, progress: _Progress, engines: list[Any]) -> dict[str, Any]:
        return compute_run_result(
            engine,
            source=run.source,
            run=run,
            expression=expression,
            progress=progress,
            engines=engines,
            fingerprint=fingerprint,
        )

    return execute_watched(CohortRun, run, token, work, invalid="The definition is not valid")


def execute_watched(
    model: type[SiteJob],
    job: Any,
    token: str,
    work: Callable[[Any, str, _Progress, list[Any]], dict[str, Any]],
    *,
    invalid: str,
    done_label: str | None = None,
) -> str:
    """Run the counting ``work`` of a claimed site job (a count, a comparison) to its one outcome; returns its
    state. The work runs in a thread on a connection confirmed with the CDM's fingerprint; from here the job's
    lease is renewed, its progress recorded and its cancel watched: a cancel stops the statement on every engine
    the work opened (``engines``). An unreachable site gives the lease back and raises SiteUnreachable (the task
    retries); a timeout, an invalid definition (``invalid``: the message's start) or a missing record key fails
    the job with a sentence; anything else fails it with its traceback for the admins."""
    source = job.source
    progress = _Progress()
    box: dict[str, Any] = {}
    try:
        engine, fingerprint = _connect_confirmed(source)
    except TransientEngineError as exc:
        # The site's database is unreachable or its file locked: give the lease back so that the retry can
        # claim the job at once; the task retries with backoff and fails the job when it gives up.
        job_release(model, job.pk, token)
        raise SiteUnreachable(str(exc)) from exc
    except WarehouseError as exc:
        job_finish(model, job.pk, token, JobState.FAILED, error=f"The site's database cannot be used: {exc}")
        return JobState.FAILED

    engines: list[Any] = [engine]

    def compute() -> None:
        try:
            box["result"] = work(engine, fingerprint, progress, engines)
        except BaseException as exc:  # handed to the main thread, which decides the outcome
            box["error"] = exc
            box["traceback"] = traceback.format_exc()

    thread = threading.Thread(target=compute, name=f"{model.__name__.lower()}-{job.pk}", daemon=True)
    started = time.monotonic()
    thread.start()
    cancelled = False
    last_renew = time.monotonic()
    poll = float(settings.SOYANG_RUN_POLL_SECONDS)
    try:
        while thread.is_alive():
            thread.join(poll)
            if not thread.is_alive():
                break
            now = time.monotonic()
            if progress.changed:
                with progress.lock:
                    step, total, label, progress.changed = progress.step, progress.total, progress.label, False
                job_record(model, job.pk, token, progress_step=step, progress_total=total, progress_label=label)
            if now - last_renew > _lease().total_seconds() / 3:
                job_renew(model, job.pk, token, lease=_lease())
                last_renew = now
            if not cancelled and job_cancel_requested(model, job.pk):
                cancelled = True
                for working in engines:
                    working.cancel()
        thread.join()
    finally:
        engine.close()
        close_old_connections()
    seconds = time.monotonic() - started
    error = box.get("error")
    if cancelled or isinstance(error, QueryCancelled):
        job_finish(model, job.pk, token, JobState.CANCELLED, error="Cancelled by the user; the query was stopped.")
        return JobState.CANCELLED
    if error is None:
        result = {**box["result"], "fingerprint": fingerprint}
        job_finish(
            model,
            job.pk,
            token,
            JobState.SUCCEEDED,
            result=result,
            database_seconds=result.get("seconds", seconds),
            progress_step=progress.total,
            progress_total=progress.total,
            progress_label=done_label or progress.label,
        )
        return JobState.SUCCEEDED
    if isinstance(error, QueryTimeout):
        message = f"The query took longer than the site's limit of {source.statement_timeout_seconds} seconds."
        job_finish(model, job.pk, token, JobState.FAILED, error=message)
        return JobState.FAILED
    if isinstance(error, TransientEngineError):
        # Let the lease lapse now so the retry can claim the job at once; Celery retries with backoff.
        job_release(model, job.pk, token)
        raise SiteUnreachable(str(error)) from error
    if isinstance(error, ExpressionError):
        job_finish(model, job.pk, token, JobState.FAILED, error=f"{invalid}: {error}")
        return JobState.FAILED
    if isinstance(error, RecordKeyError):
        job_finish(model, job.pk, token, JobState.FAILED, error=str(error))
        return JobState.FAILED
    logger.error("%s %s failed:\n%s", model.__name__, job.pk, box.get("traceback", ""))
    failure = f"{type(error).__name__}: {error}\n\n{box.get('traceback', '')}"
    job_finish(model, job.pk, token, JobState.FAILED, error=failure)
    return JobState.FAILED


def _connect_confirmed(source: Any) -> tuple[Any, str]:
    """A connection to the site's CDM and the fingerprint of its data now, recorded on the source before counting
    (``warehouse.services.source_fingerprint_confirm``): a reload by the site's ETL is seen before its count, and
    the result records the data it was computed on, so that the portal's cache never serves older data."""
    engine = source_connect(source)
    try:
        return engine, source_fingerprint_confirm(engine, source=source)
    except BaseException:
        engine.close()
        raise


def compute_run_result(
    engine: Any,
    *,
    source: Any,
    run: CohortRun,
    expression: Any,
    progress: _Progress,
    engines: list[Any] | None = None,
    fingerprint: str | None = None,
) -> dict:
    """The aggregates of one run: counts and Circe's by-person inclusion statistics always; demographics
    when asked. Never a patient row. Every count comes with its cell key (``key``, ``persons_key``), computed
    with the site's record keys in the query that counts it; the portal perturbs each count with its key.

    The count runs on the site's count store when it keeps one that holds the CDM as it is now
    (``cohorts.runs.stores``), else on ``engine``; ``result["engine"]`` names which answered and
    ``result["engine_note"]`` why the store did not. ``engines``, when given, receives every engine the count
    opens, so that a cancel can reach the one at work; ``fingerprint``, the CDM's fingerprint just read (else
    it is read when the site keeps a store).

    A count with persons that have no record key yet (the CDM was reloaded with new persons) is not released
    with a wrong key: the missing persons are keyed and the run computed again (on the site's database), once."""
    record_keys = record_keys_ensure(engine, source=source)
    counting = counting_engine(source, engine, fingerprint=fingerprint)
    if engines is not None:
        engines.append(counting.engine)
    try:
        resolved = None
        if fingerprint is not None:
            resolved = CONCEPT_SETS.resolve(
                counting.engine,
                expression,
                vocabulary_schema=source.vocabulary_schema,
                vocabulary=f"{source.key}:{fingerprint}",
            )
        result = _compute_keyed(
            counting.engine,
            source=source,
            run=run,
            expression=expression,
            progress=progress,
            keys=record_keys,
            resolved=resolved,
            site=f"{source.key}:{fingerprint}" if fingerprint is not None else None,
        )
    finally:
        counting.close()
    result["engine"], result["engine_note"] = counting.name, counting.note
    if result.pop("unkeyed", 0):
        keyed = record_keys_fill(engine, source=source)
        logger.info("source %s: %s persons keyed after a reload of the CDM; run %s again", source.key, keyed, run.pk)
        result = _compute_keyed(
            engine, source=source, run=run, expression=expression, progress=progress, keys=record_keys
        )
        result["engine"], result["engine_note"] = engine.kind, counting.note
        if result.pop("unkeyed", 0):
            raise RecordKeyError("Some persons of the cohort have no record key; the count is not released.")
    return result


def _compute_keyed(
    engine: Any,
    *,
    source: Any,
    run: CohortRun,
    expression: Any,
    progress: _Progress,
    keys: str,
    resolved: dict[int, list[int]] | None = None,
    site: str | None = None,
) -> dict[str, Any]:
    extra = 1 if run.kind == RunKind.DEMOGRAPHICS else 0
    total = 1 + extra
    progress.report(0, total, "Finding the cohort")

    def statement_progress(step: int, statements: int, label: str) -> None:
        # "Step k of n" over the cohort's statements, plus the demographics pass when asked for.
        nonlocal total
        total = statements + extra
        progress.report(step, total, label)

    describe = None
    if run.kind == RunKind.DEMOGRAPHICS:

        def describe(engine: Any, cohort: tuple[str, dict[str, Any]]) -> dict[str, Any]:
            progress.report(total - 1, total, "Describing the cohort")
            return cohort_demographics(
                engine,
                cdm_schema=source.cdm_schema,
                vocabulary_schema=source.vocabulary_schema,
                cohort=cohort,
                record_keys=keys,
                population=POPULATIONS,
                site=site,
            )

    counted = count_cohort(
        engine,
        expression,
        cdm_schema=source.cdm_schema,
        vocabulary_schema=source.vocabulary_schema,
        results_schema=source.results_schema,
        progress=statement_progress,
        record_keys=keys,
        describe=describe,
        resolved=resolved,
    )
    result: dict[str, Any] = {
        "persons": counted.persons,
        "persons_key": counted.persons_key,
        "rows": counted.rows,
        "seconds": counted.seconds,
        "inclusion_rules": [
            {"name": name, "persons": n, "key": key}
            for (name, n), key in zip(counted.inclusion_rules, counted.inclusion_rule_keys, strict=True)
        ],
        "attrition": [
            {"name": name, "persons": n, "key": key}
            for (name, n), key in zip(counted.attrition, counted.attrition_keys, strict=True)
        ],
        # Before any inclusion rule (every qualified person and event), and Circe's by-event statistics: the
        # attrition page starts from these (``cohorts.runs.attrition``). Results stored before them lack the keys.
        "initial": {"persons": counted.initial_persons, "key": counted.initial_persons_key},
        "by_event": {
            "initial": {"events": counted.by_event.initial, "key": counted.by_event.initial_key},
            "inclusion_rules": [
                {"name": name, "events": n, "key": key}
                for (name, n), key in zip(
                    counted.by_event.inclusion_rules, counted.by_event.inclusion_rule_keys, strict=True
                )
            ],
            "attrition": [
                {"name": name, "events": n, "key": key}
                for (name, n), key in zip(counted.by_event.attrition, counted.by_event.attrition_keys, strict=True)
            ],
        },
        "unkeyed": counted.unkeyed,
    }
    if counted.described is not None:
        demographics = dict(counted.described)
        result["unkeyed"] += demographics.pop("unkeyed", 0)
        result["demographics"] = demographics
    progress.report(total, total, "Done")
    return result


def run_execute_set(*, run_ids: Sequence[int], worker: str = "") -> list[str]:
    """Execute the runs of a set of definitions counted together at one site (a study's cohort set), in one pass:
    the concept sets of every definition are resolved in one query first (``ConceptSetCache.preload``), then each
    run is executed as alone (its own claim, lease, cancel, result), without resolving any of them again.

    A run another worker holds is left to it; raises ``SiteUnreachable`` after the others when the site could not
    be reached (the task retries the set; runs already final return at once)."""
    runs = list(CohortRun.objects.filter(pk__in=run_ids, state=JobState.QUEUED).select_related("source", "version"))
    if runs:
        _preload_concept_sets(runs)
    states: list[str] = []
    unreachable: SiteUnreachable | None = None
    for run_id in run_ids:
        try:
            states.append(run_execute(run_id=run_id, worker=worker))
        except JobHeld:
            states.append("held")
        except SiteUnreachable as exc:
            unreachable = exc
            states.append("unreachable")
    if unreachable is not None:
        raise unreachable
    return states


def _preload_concept_sets(runs: list[CohortRun]) -> None:
    """Resolve the concept sets of the runs' definitions (one site) in one query on the engine that will count."""
    source = runs[0].source
    expressions = []
    for run in runs:
        try:
            expressions.append(parse_expression(run.counted_expression))
        except ExpressionError:
            continue  # the run itself fails with the message
    if not expressions:
        return
    try:
        engine, fingerprint = _connect_confirmed(source)
    except WarehouseError:
        return  # each run meets the same error and records it
    try:
        counting = counting_engine(source, engine, fingerprint=fingerprint)
        try:
            resolved = CONCEPT_SETS.preload(
                counting.engine,
                expressions,
                vocabulary_schema=source.vocabulary_schema,
                vocabulary=f"{source.key}:{fingerprint}",
            )
            logger.info(
                "source %s: %s concept sets of %s definitions resolved at once", source.key, resolved, len(runs)
            )
        finally:
            counting.close()
    except WarehouseError as exc:
        logger.warning("source %s: the set's concept sets were not resolved at once: %s", source.key, exc)
    finally:
        engine.close()


def run_give_up(*, run_id: int, reason: str) -> None:
    """Fail a run whose retries are exhausted (its site stayed unreachable), whoever held it last."""
    job_give_up(CohortRun, run_id, error=f"The site could not be reached after several tries: {reason}")


def run_set_give_up(*, run_ids: Sequence[int], reason: str) -> None:
    """Fail the runs of a set whose retries are exhausted (runs already final keep their outcome)."""
    for run_id in run_ids:
        run_give_up(run_id=run_id, reason=reason)
