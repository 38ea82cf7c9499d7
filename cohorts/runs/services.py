"""Writes on counts: a user's run request, one run per site shared by identical requests, cancel, viewed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from accounts.permissions import user_can
from audit.services import audit_record
from cohorts.definitions.models import CohortDefinition, CohortDefinitionVersion
from cohorts.expression import parse_expression
from cohorts.expression.hashing import expression_hash
from cohorts.runs.cache_keys import run_cache_key
from cohorts.runs.choices import RunKind
from cohorts.runs.errors import (
    BrokerUnavailable,
    DraftNotAllowed,
    RunLimitReached,
    RunNotCancellable,
    SourceNotReady,
)
from cohorts.runs.models import CohortRun, RunRequest
from cohorts.runs.selectors import sources_for_user_and_definition
from jobs.choices import ACTIVE_STATES, JobState
from jobs.enqueue import broker_check, job_enqueue_on_commit
from jobs.errors import BrokerUnreachable
from jobs.lifecycle import job_cancel, job_enqueue_failed
from jobs.queues import site_queue
from warehouse.models import Source
from warehouse.selectors import source_fingerprint_is_recent

#: The permission to change a definition, which counting its unsaved draft needs.
CHANGE = "change_cohortdefinition"

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
    counted = _Counted(definition=version.definition, version=version, expression=None, sha=version.expression_hash)
    return _run_request_start(user=user, counted=counted, sources=sources, kind=RunKind(kind), supersede=False)


def run_request_create_for_draft(
    *, user: User, definition: CohortDefinition, expression: dict[str, Any], sources: Sequence[Any]
) -> RunRequest:
    """Count the builder's working draft of ``definition`` on each of the sources, without saving a version.

    The same guarantees as a count of a version: the same sites (``sources_for_user_and_definition``: the
    definition's project's sites the user may count on, and ``run_cohortdefinition``), the same result cache
    (the draft's expression hash; a draft identical to a saved version or an earlier draft reuses its run), the
    same audit event and site job. On top, counting a draft needs the right to change the definition: a draft is
    what its editor is about to save. The draft must parse (``ExpressionError`` otherwise, nothing written).

    A draft identical to the latest saved version is no draft: it is counted as that version, so the count is
    the definition's latest on its pages and lists like one started from the definition's page.

    The builder counts as the user types, so draft counts must not pile up: the user's earlier draft counts of
    this definition still in flight are cancelled (superseded) by this one, except for the runs it shares.
    """
    if not user_can(user, CHANGE, definition):
        raise DraftNotAllowed(_("Only the owner of this definition can count its unsaved changes."))
    offered = {source.pk for source in sources_for_user_and_definition(user, definition)}
    refused = sorted(source.key for source in sources if source.pk not in offered)
    if refused:
        raise SourceNotReady(_("You cannot count this definition on: %(sites)s.") % {"sites": ", ".join(refused[:10])})
    parse_expression(expression)
    sha = expression_hash(expression)
    latest = definition.latest_version()
    if latest is not None and latest.expression_hash == sha:
        counted = _Counted(definition=definition, version=latest, expression=None, sha=sha)
    else:
        counted = _Counted(definition=definition, version=None, expression=expression, sha=sha)
    return _run_request_start(user=user, counted=counted, sources=sources, kind=RunKind.COUNT, supersede=True)


@dataclass(frozen=True)
class _Counted:
    """What a request counts: a saved version, or a draft of the definition (``version`` None, its
    ``expression`` given), with the hash the result cache is keyed on."""

    definition: CohortDefinition
    version: CohortDefinitionVersion | None
    expression: dict[str, Any] | None
    sha: str


def _run_request_start(
    *, user: User, counted: _Counted, sources: Sequence[Any], kind: RunKind, supersede: bool
) -> RunRequest:
    _check_ready(sources)
    request, to_enqueue = _run_request_write(
        user=user, counted=counted, sources=sources, kind=kind, supersede=supersede
    )
    for run in to_enqueue:
        _enqueue_on_commit(run)
    return request


@transaction.atomic
def _run_request_write(
    *, user: User, counted: _Counted, sources: Sequence[Any], kind: RunKind, supersede: bool, check_limit: bool = True
) -> tuple[RunRequest, list[CohortRun]]:
    # A count from the builder supersedes the user's earlier draft counts of this definition still in flight, so
    # they do not count against the limit. Locked, so that two builder counts arriving together supersede in turn.
    superseded: list[RunRequest] = []
    if supersede:
        in_flight = RunRequest.objects.filter(
            definition=counted.definition,
            version__isnull=True,
            requested_by=user,
            cancelled_at__isnull=True,
            runs__state__in=ACTIVE_STATES,
        ).values("pk")
        superseded = list(RunRequest.objects.select_for_update().filter(pk__in=in_flight).order_by("pk"))
    if check_limit:
        _check_run_limit(user, superseded=superseded)
    request = RunRequest.objects.create(
        definition=counted.definition, version=counted.version, kind=kind, requested_by=user
    )
    to_enqueue: list[CohortRun] = []
    for source in sources:
        run, created = _run_for(counted=counted, source=source, kind=kind, user=user)
        request.runs.add(run)
        if created:
            to_enqueue.append(run)
    audit_record(
        action="count" if kind == RunKind.COUNT else f"run_{kind.value}",
        actor=user,
        obj=counted.definition,
        source_key=",".join(s.key for s in sources),
        detail={
            "version": counted.version.number if counted.version is not None else None,
            **({"draft": counted.sha} if counted.version is None else {}),
            "request": request.pk,
            "reused": len(sources) - len(to_enqueue),
        },
    )
    # After the new request joined its runs: a run the new draft shares (the same expression) is kept.
    for previous in superseded:
        _request_cancel(request=previous, user=user, detail={"superseded_by": request.pk})
    return request, to_enqueue


def _run_for(*, counted: _Counted, source: Any, kind: RunKind, user: User) -> tuple[CohortRun, bool]:
    # The fingerprint as the site's worker last recorded it (it changes under the caller's feet: every count and
    # the periodic check re-read it at the site), not as the caller's copy of the row says.
    source = Source.objects.get(pk=source.pk)
    key = run_cache_key(
        expression_sha=counted.sha, source_key=source.key, source_fingerprint=source.fingerprint, kind=kind
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
    for _attempt in range(3):
        reusable = CohortRun.objects.filter(reusable_runs, cache_key=key).order_by("-queued_at").first()
        if reusable is not None:
            if reusable.cancel_requested:
                # A superseded draft's run, wanted again before its worker stopped it (the user went back to the
                # same draft): take the cancellation back. A worker that already stopped it ends it cancelled.
                CohortRun.objects.filter(pk=reusable.pk, state=JobState.RUNNING).update(cancel_requested=False)
            return reusable, False
        try:
            with transaction.atomic():
                run = CohortRun.objects.create(
                    version=counted.version,
                    expression=counted.expression,
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


def run_set_create(
    *, user: User, versions: Sequence[CohortDefinitionVersion], sources: Sequence[Any], kind: str = RunKind.COUNT
) -> list[RunRequest]:
    """Count a set of definitions together (a study's cohort set, a PhenotypeLibrary selection): one request per
    definition, exactly as ``run_request_create`` makes it (cache, joined runs, audit), and one task per site that
    counts all of the site's new runs in one pass, sharing the resolution of their concept sets
    (``cohorts.runs.execution.run_execute_set``). The user's limit of counts running is checked once for the
    set; ``sources`` are checked once for all (the caller gives sites every definition may be counted on)."""
    kind = RunKind(kind)
    if not versions:
        raise SourceNotReady(_("Choose at least one definition."))
    if len(versions) > MAX_SET_SIZE:
        raise SourceNotReady(
            _("A set holds at most %(max)s definitions; %(n)s were chosen.") % {"max": MAX_SET_SIZE, "n": len(versions)}
        )
    _check_ready(sources)
    requests: list[RunRequest] = []
    by_site: dict[str, list[CohortRun]] = {}
    with transaction.atomic():
        _check_run_limit(user)
        for version in versions:
            counted = _Counted(
                definition=version.definition, version=version, expression=None, sha=version.expression_hash
            )
            request, to_enqueue = _run_request_write(
                user=user, counted=counted, sources=sources, kind=kind, supersede=False, check_limit=False
            )
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


def _check_ready(sources: Sequence[Any]) -> None:
    """Refuse, before anything is written, a count nobody could run: a site without data, or no broker."""
    _check_sources(sources)
    try:
        broker_check()
    except BrokerUnreachable as exc:
        raise BrokerUnavailable(
            "The task queue is not reachable right now; no count was started. Try again shortly."
        ) from exc


def _check_sources(sources: Sequence[Any]) -> None:
    if not sources:
        raise SourceNotReady(_("Choose at least one site."))
    for source in sources:
        if not source.is_active:
            raise SourceNotReady(_("The site %(site)s is not active.") % {"site": source.key})
        if not source.fingerprint:
            raise SourceNotReady(
                _(
                    "The site %(site)s has no data yet: an administrator loads it (manage.py load_omop) or "
                    "attaches the CDM the site already has (manage.py attach_source %(site)s)."
                )
                % {"site": source.key}
            )


def _check_run_limit(user: User, *, superseded: Sequence[RunRequest] = ()) -> None:
    """The user's limit of counts running; draft counts a new builder count supersedes do not count."""
    limit = settings.SOYANG_MAX_CONCURRENT_RUNS
    active = (
        RunRequest.objects.filter(requested_by=user, cancelled_at__isnull=True, runs__state__in=ACTIVE_STATES)
        .exclude(pk__in=[r.pk for r in superseded])
        .distinct()
        .count()
    )
    if active >= limit:
        raise RunLimitReached(
            _(
                "You already have %(active)s counts running (the limit is %(limit)s). "
                "Wait for one to finish or cancel one, then try again."
            )
            % {"active": active, "limit": limit}
        )


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
    if not _request_cancel(request=request, user=user):
        raise RunNotCancellable(_("This count has already finished."))
    return request


def _request_cancel(*, request: RunRequest, user: User, detail: dict[str, Any] | None = None) -> bool:
    """Cancel the request's runs no other active request shares; False (nothing written) when every run of it
    has already finished. Inside the caller's transaction."""
    runs = list(request.runs.select_for_update().all())
    if all(run.is_final for run in runs):
        return False
    request.cancelled_at = timezone.now()
    request.save(update_fields=["cancelled_at"])
    for run in runs:
        if run.is_final:
            continue
        shared = run.requests.filter(cancelled_at__isnull=True).exclude(pk=request.pk).exists()
        if shared:
            continue
        job_cancel(CohortRun, run.pk)
    audit_record(
        action="run_cancel", actor=user, obj=request.definition, detail={"request": request.pk, **(detail or {})}
    )
    return True


def run_result_viewed(*, request: RunRequest, user: User, ip_address: str | None = None, export: str = "") -> None:
    """Every look at a result is recorded: the page (``view_result``) and each CSV download (``export``)."""
    audit_record(
        action="export" if export else "view_result",
        actor=user,
        obj=request.definition,
        source_key=",".join(request.runs.values_list("source__key", flat=True).order_by("source__key")),
        ip_address=ip_address,
        detail={"request": request.pk, **({"table": export} if export else {})},
    )
