"""Writes on counts: a user's run request, one run per site shared by identical requests, cancel, viewed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from cohorts.definitions.models import CohortDefinitionVersion
from cohorts.runs.cache_keys import run_cache_key
from cohorts.runs.choices import RunKind
from cohorts.runs.errors import BrokerUnavailable, RunLimitReached, RunNotCancellable, SourceNotReady
from cohorts.runs.models import CohortRun, RunRequest
from jobs.choices import ACTIVE_STATES, JobState
from jobs.enqueue import broker_check, job_enqueue_on_commit
from jobs.errors import BrokerUnreachable
from jobs.lifecycle import job_cancel, job_enqueue_failed
from jobs.queues import site_queue
from warehouse.models import Source
from warehouse.selectors import source_fingerprint_is_recent

#: The worker's task that executes one run (sent by name: cohorts does not import the worker package).
RUN_TASK_NAME = "worker.tasks.run_execute"


def run_request_create(
    *, user: User, version: CohortDefinitionVersion, sources: Sequence[Any], kind: str = RunKind.COUNT
) -> RunRequest:
    """Ask for one kind of result of a version on each of the sources.

    Each source gets one run on its own queue. A succeeded run with the same cache key (same normalized
    expression, same source data fingerprint, same kind) is reused instead of running again; an identical
    run still queued or running is joined, so identical requests arriving together run once.
    """
    kind = RunKind(kind)
    _check_sources(sources)
    try:
        broker_check()
    except BrokerUnreachable as exc:
        raise BrokerUnavailable(
            "The task queue is not reachable right now; no count was started. Try again shortly."
        ) from exc
    with transaction.atomic():
        _check_run_limit(user)
        request, to_enqueue = _run_request_write(user=user, version=version, sources=sources, kind=kind)
    for run in to_enqueue:
        _enqueue_on_commit(run)
    return request


def run_set_create(
    *, user: User, versions: Sequence[CohortDefinitionVersion], sources: Sequence[Any], kind: str = RunKind.COUNT
) -> list[RunRequest]:
    """Count a set of definitions together (a study's cohort set, a PhenotypeLibrary selection): one request per
    definition, exactly as ``run_request_create`` makes it (cache, joined runs, audit), and one task per site that
    counts all of the site's new runs in one pass, sharing the resolution of their concept sets
    (``cohorts.runs.execution.run_execute_set``). The user's limit of counts running is checked once for the
    set; ``sources`` are checked once for all (the caller gives each definition's sites it may count on)."""
    kind = RunKind(kind)
    if not versions:
        raise SourceNotReady("Choose at least one definition.")
    if len(versions) > MAX_SET_SIZE:
        raise SourceNotReady(f"A set holds at most {MAX_SET_SIZE} definitions; {len(versions)} were chosen.")
    _check_sources(sources)
    try:
        broker_check()
    except BrokerUnreachable as exc:
        raise BrokerUnavailable(
            "The task queue is not reachable right now; no count was started. Try again shortly."
        ) from exc
    requests: list[RunRequest] = []
    by_site: dict[str, list[CohortRun]] = {}
    with transaction.atomic():
        _check_run_limit(user)
        for version in versions:
            request, to_enqueue = _run_request_write(user=user, version=version, sources=sources, kind=kind)
            requests.append(request)
            for run in to_enqueue:
                by_site.setdefault(run.source.key, []).append(run)
        for key, runs in by_site.items():
            if len(runs) == 1:
                _enqueue_on_commit(runs[0])
            else:
                _enqueue_set_on_commit(key, runs)
    return requests


#: The most definitions one set may count at once (PhenotypeLibrary selections are tens, not thousands).
MAX_SET_SIZE = 200
#: The worker's task that executes the runs of a set at one site in one pass.
RUN_SET_TASK_NAME = "worker.tasks.run_execute_set"


def _enqueue_set_on_commit(key: str, runs: list[CohortRun]) -> None:
    ids = [run.pk for run in runs]

    def not_sent() -> None:
        for run_id in ids:
            job_enqueue_failed(
                CohortRun, run_id, error="The task queue was not reachable; the run was not started. Try again shortly."
            )

    job_enqueue_on_commit(RUN_SET_TASK_NAME, queue=site_queue(key), kwargs={"run_ids": ids}, on_failure=not_sent)


def _check_sources(sources: Sequence[Any]) -> None:
    if not sources:
        raise SourceNotReady("Choose at least one site.")
    for source in sources:
        if not source.is_active:
            raise SourceNotReady(f"The site {source.key} is not active.")
        if not source.fingerprint:
            raise SourceNotReady(
                f"The site {source.key} has no data yet: an administrator loads it (manage.py load_omop) or "
                f"attaches the CDM the site already has (manage.py attach_source {source.key})."
            )


def _check_run_limit(user: User) -> None:
    limit = settings.SOYANG_MAX_CONCURRENT_RUNS
    active = (
        RunRequest.objects.filter(requested_by=user, cancelled_at__isnull=True, runs__state__in=ACTIVE_STATES)
        .distinct()
        .count()
    )
    if active >= limit:
        raise RunLimitReached(
            f"You already have {active} counts running (the limit is {limit}). "
            "Wait for one to finish or cancel one, then try again."
        )


def _run_request_write(
    *, user: User, version: CohortDefinitionVersion, sources: Sequence[Any], kind: RunKind
) -> tuple[RunRequest, list[CohortRun]]:
    request = RunRequest.objects.create(version=version, kind=kind, requested_by=user)
    to_enqueue: list[CohortRun] = []
    for source in sources:
        run, created = _run_for(version=version, source=source, kind=kind, user=user)
        request.runs.add(run)
        if created:
            to_enqueue.append(run)
    audit_record(
        action="count" if kind == RunKind.COUNT else f"run_{kind.value}",
        actor=user,
        obj=version.definition,
        source_key=",".join(s.key for s in sources),
        detail={"version": version.number, "request": request.pk, "reused": len(sources) - len(to_enqueue)},
    )
    return request, to_enqueue


def _run_for(*, version: CohortDefinitionVersion, source: Any, kind: RunKind, user: User) -> tuple[CohortRun, bool]:
    # The fingerprint as the site's worker last recorded it (it changes under the caller's feet: every count and
    # the periodic check re-read it at the site), not as the caller's copy of the row says.
    source = Source.objects.get(pk=source.pk)
    key = run_cache_key(
        expression_sha=version.expression_hash, source_key=source.key, source_fingerprint=source.fingerprint, kind=kind
    )
    # An active run with the same key is joined: its worker reads the fingerprint before counting. A succeeded one
    # is served only when computed on this very fingerprint and the site confirmed the fingerprint recently, so a
    # reload the site has seen, or one it has had no chance to see (its worker down), is never answered from
    # older data.
    reusable_runs = Q(state__in=ACTIVE_STATES)
    if source_fingerprint_is_recent(source):
        reusable_runs |= Q(state=JobState.SUCCEEDED, result__fingerprint=source.fingerprint)
    # Reuse a succeeded or active run with the same key; otherwise create one. The partial unique index allows
    # one active run per key: when a concurrent identical request got there first the insert fails, and by the
    # time we look again its run may already have succeeded, so the lookup is simply repeated.
    for _ in range(3):
        reusable = CohortRun.objects.filter(reusable_runs, cache_key=key).order_by("-queued_at").first()
        if reusable is not None:
            return reusable, False
        try:
            with transaction.atomic():
                run = CohortRun.objects.create(
                    version=version,
                    source=source,
                    kind=kind,
                    cache_key=key,
                    source_fingerprint=source.fingerprint,
                    requested_by=user,
                )
        except IntegrityError:
            continue
        return run, True
    raise IntegrityError(f"could not reuse or create the run for cache key {key}")


def _enqueue_on_commit(run: CohortRun) -> None:
    def not_sent() -> None:
        # The broker went away between the check and the commit: nobody would ever run it.
        job_enqueue_failed(
            CohortRun, run.pk, error="The task queue was not reachable; the run was not started. Try again shortly."
        )

    job_enqueue_on_commit(
        RUN_TASK_NAME, queue=site_queue(run.source.key), kwargs={"run_id": run.pk}, on_failure=not_sent
    )


@transaction.atomic
def run_request_cancel(*, request: RunRequest, user: User) -> RunRequest:
    """Cancel a request: each of its runs that no other active request shares is cancelled.

    A queued run becomes cancelled at once; a running one gets ``cancel_requested`` and its worker cancels
    the statement on the database and records the cancellation.
    """
    if request.cancelled_at is not None:
        return request
    runs = list(request.runs.select_for_update().all())
    if all(run.is_final for run in runs):
        raise RunNotCancellable("This count has already finished.")
    request.cancelled_at = timezone.now()
    request.save(update_fields=["cancelled_at"])
    for run in runs:
        if run.is_final:
            continue
        shared = run.requests.filter(cancelled_at__isnull=True).exclude(pk=request.pk).exists()
        if shared:
            continue
        job_cancel(CohortRun, run.pk)
    audit_record(action="run_cancel", actor=user, obj=request.version.definition, detail={"request": request.pk})
    return request


def run_result_viewed(*, request: RunRequest, user: User, ip_address: str | None = None, export: str = "") -> None:
    """Every look at a result is recorded: the page (``view_result``) and each CSV download (``export``)."""
    audit_record(
        action="export" if export else "view_result",
        actor=user,
        obj=request.version.definition,
        source_key=",".join(request.runs.values_list("source__key", flat=True).order_by("source__key")),
        ip_address=ip_address,
        detail={"request": request.pk, **({"table": export} if export else {})},
    )
