"""Writes and site work of a cohort comparison: ask for one, cancel it, and compute it at each site.

Design:
- A comparison (``Comparison``) holds 2-4 latest versions of definitions the user may run, in the order chosen,
  and one site job (``ComparisonRun``) per site the user may count every one of them on (the same rule as a set
  counted together: ``sources_for_user_and_definitions``). Each site job computes the whole overlap in one
  counting transaction (``cohorts.runs.overlap``), so the combinations and the cohorts' totals come from one
  reading of the site's data and always add up.
- Comparisons are not shared with other requests (unlike counts): 2-4 definitions make too many orderings for a
  cache to pay, and a comparison is its requester's own analysis. The user's limit of counts running covers
  comparisons too (a comparison with a site still at work counts as one).
- The worker task is thin (``worker.tasks.comparison_execute``); the claim, lease, renewal, cancel and outcome
  follow ``jobs.lifecycle`` exactly as a count's do (``cohorts.runs.execution``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from accounts.permissions import user_can
from audit.services import audit_record
from cohorts.definitions.models import CohortDefinitionVersion
from cohorts.definitions.selectors import RUN
from cohorts.expression import ExpressionError, parse_expression
from cohorts.runs.errors import RunLimitReached, RunNotCancellable, SourceNotReady
from cohorts.runs.execution import CONCEPT_SETS, _Progress, claim_or_hold, execute_watched
from cohorts.runs.models import Comparison, ComparisonCohort, ComparisonRun, RunRequest
from cohorts.runs.overlap import MAX_COHORTS, MIN_COHORTS, cohort_overlap
from cohorts.runs.selectors import sources_for_user_and_definitions
from cohorts.runs.services import _check_ready
from cohorts.runs.stores import counting_engine
from disclosure.record_keys import RecordKeyError, record_keys_ensure, record_keys_fill
from jobs.choices import ACTIVE_STATES, JobState
from jobs.enqueue import job_enqueue_on_commit
from jobs.lifecycle import (
    job_cancel,
    job_enqueue_failed,
    job_finish,
    job_give_up,
)
from jobs.queues import site_queue

logger = logging.getLogger(__name__)

#: The worker's task that computes a comparison at one site (sent by name: cohorts does not import the worker).
COMPARISON_TASK_NAME = "worker.tasks.comparison_execute"


class ComparisonInvalid(SourceNotReady):
    """The comparison asked for cannot be made as asked (number of definitions, sites): HTTP 400."""


def comparison_create(*, user: User, versions: Sequence[CohortDefinitionVersion], sources: Sequence[Any]) -> Comparison:
    """Compare 2-4 versions (of distinct definitions the user may run) on each of ``sources``, which must all be
    sites where the user may count every one of them. Refused with a message, before anything is written:
    a wrong number of definitions or a repeated one, a site not offered, a site without data, no broker, the
    user's limit of counts running. One audit event names every compared version."""
    if not MIN_COHORTS <= len(versions) <= MAX_COHORTS:
        raise ComparisonInvalid(
            _("Choose %(min)s to %(max)s definitions to compare (you chose %(n)s).")
            % {"min": MIN_COHORTS, "max": MAX_COHORTS, "n": len(versions)}
        )
    definitions = [version.definition for version in versions]
    if len({d.pk for d in definitions}) != len(definitions):
        raise ComparisonInvalid(_("Choose each definition once."))
    if not all(user_can(user, RUN, definition) for definition in definitions):
        raise ComparisonInvalid(_("You may not count every one of these definitions."))
    offered = {source.pk for source in sources_for_user_and_definitions(user, definitions)}
    refused = sorted(source.key for source in sources if source.pk not in offered)
    if refused:
        raise ComparisonInvalid(
            _("You cannot count every one of these definitions on: %(sites)s.") % {"sites": ", ".join(refused[:10])}
        )
    _check_ready(sources)
    with transaction.atomic():
        _check_limit(user)
        comparison = Comparison.objects.create(requested_by=user)
        ComparisonCohort.objects.bulk_create(
            ComparisonCohort(comparison=comparison, position=i, version=v) for i, v in enumerate(versions)
        )
        runs = [ComparisonRun.objects.create(comparison=comparison, source=source) for source in sources]
        audit_record(
            action="compare",
            actor=user,
            obj=comparison,
            source_key=",".join(s.key for s in sources),
            detail={"versions": [[v.definition_id, v.number] for v in versions]},
        )
        for run in runs:
            _enqueue_on_commit(run)
    return comparison


def _check_limit(user: User) -> None:
    """The user's limit of counts running (``SOYANG_MAX_CONCURRENT_RUNS``), comparisons included."""
    limit = settings.SOYANG_MAX_CONCURRENT_RUNS
    counts = (
        RunRequest.objects.filter(requested_by=user, cancelled_at__isnull=True, runs__state__in=ACTIVE_STATES)
        .distinct()
        .count()
    )
    comparisons = (
        Comparison.objects.filter(requested_by=user, cancelled_at__isnull=True, runs__state__in=ACTIVE_STATES)
        .distinct()
        .count()
    )
    active = counts + comparisons
    if active >= limit:
        raise RunLimitReached(
            f"You already have {active} counts running (the limit is {limit}). "
            "Wait for one to finish or cancel one, then try again."
        )


def _enqueue_on_commit(run: ComparisonRun) -> None:
    def not_sent() -> None:
        job_enqueue_failed(
            ComparisonRun,
            run.pk,
            error="The task queue was not reachable; the comparison was not started. Try again shortly.",
        )

    job_enqueue_on_commit(
        COMPARISON_TASK_NAME, queue=site_queue(run.source.key), kwargs={"run_id": run.pk}, on_failure=not_sent
    )


@transaction.atomic
def comparison_cancel(*, comparison: Comparison, user: User) -> Comparison:
    """Cancel a comparison: queued sites end at once, running ones stop their statement and record it."""
    if comparison.cancelled_at is not None:
        return comparison
    runs = list(comparison.runs.select_for_update().all())
    if all(run.is_final for run in runs):
        raise RunNotCancellable(_("This comparison has already finished."))
    comparison.cancelled_at = timezone.now()
    comparison.save(update_fields=["cancelled_at"])
    for run in runs:
        if not run.is_final:
            job_cancel(ComparisonRun, run.pk)
    audit_record(action="compare_cancel", actor=user, obj=comparison)
    return comparison


def comparison_viewed(*, comparison: Comparison, user: User, ip_address: str | None = None, export: str = "") -> None:
    """Every look at a comparison's result is recorded, like a count's: the page and each CSV download."""
    audit_record(
        action="export" if export else "view_result",
        actor=user,
        obj=comparison,
        source_key=",".join(comparison.runs.values_list("source__key", flat=True).order_by("source__key")),
        ip_address=ip_address,
        detail={"comparison": comparison.pk, **({"table": export} if export else {})},
    )


# --- at the site -------------------------------------------------------------------------------------------------


def _finish(run_id: int, token: str, state: str, **fields: Any) -> bool:
    return job_finish(ComparisonRun, run_id, token, state, **fields)


def comparison_execute(*, run_id: int, worker: str = "") -> str:
    """Compute one site's overlap of a comparison; returns the run's state. Called by the site queue's task.

    Raises JobHeld while another worker holds a live lease, and SiteUnreachable (lease given back) when the site's
    database cannot be reached: the task retries both, and fails the run when it gives up."""
    token, outcome = claim_or_hold(ComparisonRun, run_id, worker=worker)
    if token is None:
        return outcome
    run = ComparisonRun.objects.select_related("source", "comparison").get(pk=run_id)
    if run.cancel_requested:
        _finish(run_id, token, JobState.CANCELLED, error="Cancelled.")
        return JobState.CANCELLED
    try:
        expressions = [parse_expression(c.version.expression) for c in run.comparison.ordered_cohorts()]
    except ExpressionError as exc:
        _finish(run_id, token, JobState.FAILED, error=f"A definition is not valid: {exc}")
        return JobState.FAILED
    return _execute_claimed(run, token, expressions)


def _execute_claimed(run: ComparisonRun, token: str, expressions: list[Any]) -> str:
    """The count's loop (``cohorts.runs.execution.execute_watched``): the work in a thread, the lease renewed and
    the cancel watched; a cancel stops the statement on every engine the work opened."""

    def work(engine: Any, fingerprint: str, progress: _Progress, engines: list[Any]) -> dict[str, Any]:
        return compute_overlap_result(
            engine,
            source=run.source,
            expressions=expressions,
            progress=progress,
            engines=engines,
            fingerprint=fingerprint,
        )

    return execute_watched(ComparisonRun, run, token, work, invalid="A definition is not valid", done_label="Done")


def compute_overlap_result(
    engine: Any,
    *,
    source: Any,
    expressions: list[Any],
    progress: _Progress,
    engines: list[Any] | None = None,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """The aggregates of one site's comparison (``Overlap.as_result``), with cell keys; never a person id. On the
    site's count store when fresh, as a count (``counting_engine``). Persons without a record key (a reloaded
    CDM) are keyed and the overlap computed again on the site's database, once; still unkeyed → not released."""
    record_keys = record_keys_ensure(engine, source=source)
    schemas = {
        "cdm_schema": source.cdm_schema,
        "vocabulary_schema": source.vocabulary_schema,
        "results_schema": source.results_schema,
    }
    counting = counting_engine(source, engine, fingerprint=fingerprint)
    if engines is not None:
        engines.append(counting.engine)
    try:
        resolved = None
        if fingerprint is not None:
            vocabulary = f"{source.key}:{fingerprint}"
            resolved = [
                CONCEPT_SETS.resolve(
                    counting.engine, e, vocabulary_schema=source.vocabulary_schema, vocabulary=vocabulary
                )
                for e in expressions
            ]
        overlap = cohort_overlap(
            counting.engine,
            expressions,
            record_keys=record_keys,
            progress=progress.report,
            resolved=resolved,
            **schemas,
        )
    finally:
        counting.close()
    engine_name = counting.name
    if overlap.unkeyed:
        keyed = record_keys_fill(engine, source=source)
        logger.info("source %s: %s persons keyed after a reload of the CDM; comparison again", source.key, keyed)
        overlap = cohort_overlap(engine, expressions, record_keys=record_keys, progress=progress.report, **schemas)
        engine_name = engine.kind
        if overlap.unkeyed:
            raise RecordKeyError("Some persons of the cohorts have no record key; the comparison is not released.")
    return {**overlap.as_result(), "engine": engine_name, "engine_note": counting.note}


def comparison_give_up(*, run_id: int, reason: str) -> None:
    """Fail a comparison's site job whose retries are exhausted (its site stayed unreachable)."""
    job_give_up(ComparisonRun, run_id, error=f"The site could not be reached after several tries: {reason}")
