"""Writes of the datasets app: request, submit, withdrawal, projection, review, extraction, download, expiry,
revocation.

Every state change goes through ``_transition`` (checked against ``choices.TRANSITIONS``, recorded on the timeline,
audited with ``audit_record`` in the same transaction, and e-mailed after the commit). Worker-side work
(projection, extraction) is a site job (``jobs.lifecycle``): claimed with a conditional update and a lease, so a
redelivered message never runs twice, and recorded only by the lease holder.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.choices import AccountStatus, Role
from accounts.models import Project, User
from accounts.permissions import grant, projects_for_user
from audit.services import audit_record
from cohorts.definitions.models import CohortDefinition, CohortDefinitionVersion
from cohorts.expression import ExpressionError
from cohorts.runs.generation import generate_cohort
from datasets import catalogue, rules
from datasets.choices import (
    DELIVERABLE_STATES,
    REVIEW_OPEN_STATES,
    TRANSITIONS,
    WITHDRAWABLE_STATES,
    LegalBasis,
    OutputFormat,
    RequestState,
    SiteDecision,
)
from datasets.errors import DownloadRefused, InvalidTransition
from datasets.extraction import (
    DATASET_COHORT_BASE,
    ExtractionRefused,
    ExtractSpec,
    ProjectedCounts,
    UnkeyedCohort,
    build_extract,
    project_rows,
    read_extract,
    sha256_bytes,
)
from datasets.models import DatasetRequest, Extract, Projection, RequestTransition, SiteReview
from datasets.notifications import notify
from datasets.selectors import policy_for
from disclosure.record_keys import RecordKeyError, record_keys_ensure, record_keys_fill
from disclosure.selectors import rule_for
from jobs.choices import ACTIVE_STATES, JobState
from jobs.enqueue import job_enqueue_on_commit
from jobs.errors import SiteUnreachable
from jobs.lifecycle import job_cancel, job_claim, job_finish, job_give_up, job_release
from jobs.queues import site_queue
from warehouse.engines import TransientEngineError, WarehouseError
from warehouse.models import Source
from warehouse.services import source_connect

logger = logging.getLogger(__name__)

PROJECT_TASK = "worker.tasks.datasets_project_site"
EXTRACT_TASK = "worker.tasks.datasets_extract_site"
#: How long a worker holds a projection or extraction before another may take it over (its worker died).
LEASE = timedelta(minutes=30)
#: Why an extraction was cancelled: its request was revoked, expired or failed at another site.
EXTRACT_CANCELLED = "The request was closed; its files were deleted."
MAX_WINDOW_DAYS = 36_500
#: Longest reason a requester gives for a withdrawal (as the API's and the forms' reasons).
MAX_REASON_CHARS = 2000

#: Accepted approval documents, recognised by their first bytes (the name and the browser's type are not trusted).
DOCUMENT_SIGNATURES = (
    (b"%PDF-", "application/pdf", ".pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
)


# --- helpers ----------------------------------------------------------------------------------------------------


def dataset_root() -> Path:
    return Path(settings.SOYANG_DATASET_ROOT)


def _stewards_of(sources: Iterable[Source]) -> list[str]:
    organisations = {s.organisation_id for s in sources if s.organisation_id}
    return list(
        User.objects.filter(
            organisation_id__in=organisations, role=Role.STEWARD, status=AccountStatus.APPROVED, is_active=True
        ).values_list("email", flat=True)
    )


def _transition(
    request: DatasetRequest,
    to_state: str,
    *,
    actor: User | None = None,
    note: str = "",
    recipients: Iterable[str] = (),
    ip_address: str | None = None,
) -> None:
    """Move the (locked) request to ``to_state``: checked, on the timeline, audited, notified after commit."""
    if to_state not in TRANSITIONS[request.state]:
        raise InvalidTransition(
            _("A request that is %(state)s cannot become %(target)s.")
            % {"state": request.get_state_display(), "target": RequestState(to_state).label}
        )
    from_state = request.state
    request.state = to_state
    if note and to_state in (RequestState.REJECTED, RequestState.FAILED, RequestState.REVOKED, RequestState.WITHDRAWN):
        request.reason = note
    request.save(update_fields=["state", "reason", "expires_at", "updated_at"])
    RequestTransition.objects.create(request=request, from_state=from_state, to_state=to_state, actor=actor, note=note)
    audit_record(
        action=f"dataset_{to_state}",
        actor=actor,
        obj=request,
        ip_address=ip_address,
        source_key=",".join(request.sites.order_by("key").values_list("key", flat=True)),
        detail={"from": from_state, "to": to_state, **({"note": note[:500]} if note else {})},
    )
    notify(
        to=[request.requester.email, *recipients],
        context={
            "request": request,
            "note": note,
            "path": reverse("datasets:request_detail", kwargs={"pk": request.pk}),
        },
    )


def _locked(request: DatasetRequest) -> DatasetRequest:
    return DatasetRequest.objects.select_for_update().select_related("requester").get(pk=request.pk)


def _send(task: str, *, source: Source, **kwargs: Any) -> None:
    # By the task's name: datasets does not import the worker package. When the broker went away the job stays
    # queued, visible to the steward and the admin.
    job_enqueue_on_commit(task, queue=site_queue(source.key), kwargs=kwargs)


def _check_document(document: UploadedFile) -> tuple[bytes, str, str]:
    """The document's bytes, type and extension, or ValidationError: PDF, PNG or JPEG by content, size-limited."""
    limit = int(settings.SOYANG_DATASET_MAX_UPLOAD_BYTES)
    if document.size is None or document.size > limit:
        raise ValidationError(
            _("The document is larger than the limit of %(mb)s MB; nothing was saved.") % {"mb": limit // (1024 * 1024)}
        )
    data = document.read(limit + 1)
    if len(data) > limit:
        raise ValidationError(_("The document is larger than the limit; nothing was saved."))
    for signature, content_type, extension in DOCUMENT_SIGNATURES:
        if data.startswith(signature):
            return data, content_type, extension
    raise ValidationError(
        _("The document must be a PDF, PNG or JPEG file (checked by its content); nothing was saved.")
    )


def _clean_window(days_before: int, days_after: int) -> None:
    for value in (days_before, days_after):
        if not isinstance(value, int) or value < 0 or value > MAX_WINDOW_DAYS:
            raise ValidationError(_("The window is a number of days from 0 to %(max)s.") % {"max": MAX_WINDOW_DAYS})


# --- request and submission -------------------------------------------------------------------------------------


def request_create(
    *,
    requester: User,
    definition: CohortDefinition,
    sites: Iterable[Source],
    selection: dict[str, list[str]],
    days_before: int,
    days_after: int,
    purpose: str,
    legal_basis: str,
    retention_days: int,
    output_format: str = OutputFormat.CSV,
    document: UploadedFile | None = None,
    submit: bool = False,
    ip_address: str | None = None,
) -> DatasetRequest:
    """A draft request for the latest version of ``definition``, submitted at once with ``submit`` (the form's
    "submit" button, the API's ``submit=true``). Everything is validated before anything is written:
    PermissionDenied when the requester may not request it (``rules.can_request_dataset``), ValidationError with a
    message for bad input. With ``submit`` the draft and its submission are one transaction: a refused submission
    (no document, no right to submit) leaves nothing behind — no draft for the stewards to see, no stored file."""
    rules.require(rules.can_request_dataset(requester, definition))
    project = definition.project
    version = definition.latest_version()
    if version is None:
        raise ValidationError(_("The definition has no saved version."))
    sites = list(sites)
    if not sites:
        raise ValidationError(_("Choose at least one site."))
    project_sites = set(project.sources.values_list("pk", flat=True))
    if any(s.pk not in project_sites or not s.is_active for s in sites):
        raise ValidationError(_("Only the active sites of the definition's project can be asked."))
    try:
        selection = catalogue.validate_selection(selection)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    _clean_window(days_before, days_after)
    if not purpose.strip():
        raise ValidationError(_("State the purpose of the request."))
    if legal_basis not in LegalBasis.values:
        raise ValidationError(_("Choose the legal basis."))
    if output_format not in OutputFormat.values:
        raise ValidationError(_("Choose CSV or Parquet."))
    if not isinstance(retention_days, int) or not 1 <= retention_days <= 365:
        raise ValidationError(_("The retention is 1 to 365 days."))
    if submit and document is None:
        raise ValidationError(_("Attach the IRB approval or data-use agreement before submitting."))
    checked = _check_document(document) if document is not None else None
    stored: Path | None = None
    fields: dict[str, Any] = {}
    if checked is not None:
        data, content_type, extension = checked
        relative = f"documents/{secrets.token_hex(16)}{extension}"
        stored = dataset_root() / relative
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(data)
        fields = {
            "document_path": relative,
            "document_name": Path(document.name or f"document{extension}").name[:200],  # type: ignore[union-attr]
            "document_type": content_type,
        }
    try:
        with transaction.atomic():
            request = _request_write(
                requester=requester,
                version=version,
                project=project,
                sites=sites,
                ip_address=ip_address,
                selection=selection,
                days_before=days_before,
                days_after=days_after,
                purpose=purpose.strip(),
                legal_basis=legal_basis,
                retention_days=retention_days,
                output_format=output_format,
                **fields,
            )
            if submit:
                request = request_submit(request=request, user=requester)
    except BaseException:
        # Nothing written: the document goes with the rolled-back request (and its refused submission).
        if stored is not None:
            stored.unlink(missing_ok=True)
        raise
    return request


@transaction.atomic
def _request_write(
    *,
    requester: User,
    version: CohortDefinitionVersion,
    project: Project,
    sites: list[Source],
    ip_address: str | None,
    **fields: Any,
) -> DatasetRequest:
    request = DatasetRequest.objects.create(requester=requester, version=version, project=project, **fields)
    request.sites.set(sites)
    grant(request, codenames=["view_datasetrequest"], to_user=requester)
    RequestTransition.objects.create(request=request, from_state="", to_state=RequestState.DRAFT, actor=requester)
    audit_record(
        action="dataset_request",
        actor=requester,
        obj=request,
        ip_address=ip_address,
        source_key=",".join(s.key for s in sites),
        detail={"definition": version.definition_id, "version": version.number, "tables": list(request.selection)},
    )
    return request


@transaction.atomic
def request_submit(*, request: DatasetRequest, user: User) -> DatasetRequest:
    """Submit a draft: one review per site, and a projection task on each site's queue after the commit."""
    request = _locked(request)
    rules.require(rules.can_submit(user, request))
    if not request.document_path:
        raise ValidationError(_("Attach the IRB approval or data-use agreement before submitting."))
    _transition(request, RequestState.SUBMITTED, actor=user, recipients=_stewards_of(request.sites.all()))
    for source in request.sites.all():
        review, _created = SiteReview.objects.get_or_create(request=request, source=source)
        Projection.objects.get_or_create(review=review)
        _send(PROJECT_TASK, source=source, review_id=review.pk)
    return request


@transaction.atomic
def request_withdraw(
    *, request: DatasetRequest, user: User, reason: str = "", ip_address: str | None = None
) -> DatasetRequest:
    """The requester takes back a request the sites have not approved yet (draft, submitted or under review).

    PermissionDenied for anybody but the requester, InvalidTransition once the request was approved (extraction
    may have begun: only a steward's or an admin's revocation ends it then) or closed; nothing changes on refusal.
    The sites' undecided reviews stay as they are: ``review_decide`` refuses them (the request is no longer under
    review), ``projection_execute`` skips a projection not yet started, and the stewards' queues no longer list
    them. The approval document is kept, as on rejection: it is part of the record of what was asked and why.
    """
    request = _locked(request)
    rules.require(rules.can_withdraw(user, request))
    if request.state not in WITHDRAWABLE_STATES:
        raise InvalidTransition(
            _("A request can be withdrawn only until the sites approve it; this one is %(state)s.")
            % {"state": request.get_state_display()}
        )
    reason = reason.strip()
    if len(reason) > MAX_REASON_CHARS:
        raise ValidationError(_("The reason is longer than %(max)s characters.") % {"max": MAX_REASON_CHARS})
    # The stewards were told of the request when it was submitted; a draft they never heard of needs no e-mail.
    recipients = _stewards_of(request.sites.all()) if request.state != RequestState.DRAFT else []
    _transition(request, RequestState.WITHDRAWN, actor=user, note=reason, recipients=recipients, ip_address=ip_address)
    return request


# --- projection (site worker) -----------------------------------------------------------------------------------


def projection_execute(*, review_id: int, worker: str = "") -> str:
    """Generate the cohort at the site and count the rows each requested table would hold. Raises SiteUnreachable
    (after giving the lease back) when the site is unreachable, so the task retries."""
    # Only for a request still waiting for its sites: one withdrawn (or rejected, revoked) before this site got to
    # it is not projected, and a redelivered message skips the same way. The state is read at the claim: a
    # projection already running when the request closes finishes harmlessly (``_projection_recorded`` records it
    # and moves the request on only while it is still submitted).
    token = job_claim(Projection, review_id, lease=LEASE, worker=worker, review__request__state__in=REVIEW_OPEN_STATES)
    if token is None:
        return "skipped"
    review = SiteReview.objects.select_related("request__version", "source").get(pk=review_id)
    request, source = review.request, review.source
    try:
        with source_connect(source) as engine:
            record_keys = record_keys_ensure(engine, source=source)
            generate_cohort(
                engine,
                request.version.expression,
                cdm_schema=source.cdm_schema,
                vocabulary_schema=source.vocabulary_schema,
                results_schema=source.results_schema,
                cohort_id=DATASET_COHORT_BASE + review.pk,
            )
            projected = _project(engine, review, record_keys)
            if projected.unkeyed:
                # Persons added since the site keyed them (a reload of the CDM): key them and count again, once.
                record_keys_fill(engine, source=source)
                projected = _project(engine, review, record_keys)
                if projected.unkeyed:
                    raise RecordKeyError("Some persons of the cohort have no record key; nothing was counted.")
    except TransientEngineError as exc:
        job_release(Projection, review_id, token)
        raise SiteUnreachable(str(exc)) from exc
    except (WarehouseError, ExpressionError) as exc:
        _projection_finish(review_id, token, state=JobState.FAILED, error=str(exc) or type(exc).__name__)
        return JobState.FAILED
    _projection_finish(review_id, token, state=JobState.SUCCEEDED, projected=projected)
    return JobState.SUCCEEDED


def _project(engine: Any, review: SiteReview, record_keys: str) -> ProjectedCounts:
    request, source = review.request, review.source
    return project_rows(
        engine,
        cdm_schema=source.cdm_schema,
        results_schema=source.results_schema,
        cohort_id=DATASET_COHORT_BASE + review.pk,
        selection=request.selection,
        days_before=request.days_before,
        days_after=request.days_after,
        record_keys=record_keys,
    )


@transaction.atomic
def projection_give_up(*, review_id: int, reason: str) -> None:
    """The site stayed unreachable: the projection fails (unless a worker holds it again), the steward sees why."""
    error = _("The site could not be reached: %s") % reason
    if job_give_up(Projection, review_id, error=error[:2000]):
        _projection_recorded(review_id, state=JobState.FAILED, error=error)


@transaction.atomic
def _projection_finish(
    review_id: int, token: str, *, state: str, projected: ProjectedCounts | None = None, error: str = ""
) -> None:
    # Only the lease holder records: a worker overtaken after its lease lapsed leaves the outcome to the new one.
    if job_finish(Projection, review_id, token, state, error=error[:2000]):
        _projection_recorded(review_id, state=state, projected=projected, error=error)


def _projection_recorded(
    review_id: int, *, state: str, projected: ProjectedCounts | None = None, error: str = ""
) -> None:
    """The projection ended: its numbers on the review, with their cell keys, audited; the request goes under
    review once every site's projection has ended. Inside the caller's transaction.

    The audit event says which tables were projected, not how many persons or rows: the audit log is read by the
    admins too, and the exact figures are the site's stewards' only (``rules.review_counts_as_seen_by``)."""
    review = SiteReview.objects.select_for_update().get(pk=review_id)
    review.cohort_persons = projected.persons if projected else None
    review.cohort_persons_key = projected.persons_key if projected else None
    review.projected_rows = projected.rows if projected else {}
    review.projected_row_keys = projected.row_keys if projected else {}
    review.save(update_fields=["cohort_persons", "cohort_persons_key", "projected_rows", "projected_row_keys"])
    request = _locked(review.request)
    audit_record(
        action="dataset_projection",
        obj=request,
        source_key=review.source.key,
        outcome="success" if state == JobState.SUCCEEDED else "failure",
        detail={"tables": sorted(projected.rows) if projected else [], **({"error": error[:500]} if error else {})},
    )
    open_reviews = request.reviews.filter(projection__state__in=ACTIVE_STATES).exists()
    if request.state == RequestState.SUBMITTED and not open_reviews:
        _transition(request, RequestState.UNDER_REVIEW, recipients=_stewards_of(request.sites.all()))


# --- review -----------------------------------------------------------------------------------------------------


@transaction.atomic
def review_decide(
    *,
    review: SiteReview,
    steward: User,
    approve: bool,
    reason: str = "",
    narrowed_selection: dict[str, list[str]] | None = None,
    narrowed_days_before: int | None = None,
    narrowed_days_after: int | None = None,
    ip_address: str | None = None,
) -> SiteReview:
    """The site steward's decision. PermissionDenied for anybody but the site's steward and for one's own
    request (``rules.can_decide_review``); ValidationError (nothing changed) for a request over the site's row limit
    or a wider narrowing."""
    request = _locked(review.request)
    review = SiteReview.objects.select_for_update().select_related("source").get(pk=review.pk)
    review.request = request
    rules.require(rules.can_decide_review(steward, review))
    if request.state != RequestState.UNDER_REVIEW or review.decision != SiteDecision.PENDING:
        raise InvalidTransition(
            _("This site's decision is not open (the request is %s).") % request.get_state_display()
        )
    if approve:
        if review.projection_state != JobState.SUCCEEDED:
            raise ValidationError(_("The projection of this site failed; the request can only be rejected."))
        limit = policy_for(review.source).row_limit
        if review.projected_total > limit:
            raise ValidationError(
                _("The request would release %(rows)s rows (%(detail)s), over the site's limit of %(limit)s.")
                % {
                    "rows": review.projected_total,
                    "detail": ", ".join(f"{t}: {n}" for t, n in review.projected_rows.items()),
                    "limit": limit,
                }
            )
        if narrowed_selection is not None:
            try:
                review.narrowed_selection = catalogue.narrow_selection(request.selection, narrowed_selection)
            except ValueError as exc:
                raise ValidationError(str(exc)) from exc
        for value, bound, name in (
            (narrowed_days_before, request.days_before, "narrowed_days_before"),
            (narrowed_days_after, request.days_after, "narrowed_days_after"),
        ):
            if value is not None:
                if value < 0 or value > bound:
                    raise ValidationError(_("A narrowed window is between 0 and the requested number of days."))
                setattr(review, name, value)
    elif not reason.strip():
        raise ValidationError(_("Give the reason for the rejection."))
    review.decision = SiteDecision.APPROVED if approve else SiteDecision.REJECTED
    review.reviewer = steward
    review.reason = reason.strip()
    review.decided_at = timezone.now()
    review.save()
    audit_record(
        action="approve" if approve else "reject",
        actor=steward,
        obj=request,
        source_key=review.source.key,
        ip_address=ip_address,
        detail={
            "review": review.pk,
            "narrowed": review.narrowed_selection is not None
            or review.narrowed_days_before is not None
            or review.narrowed_days_after is not None,
            **({"reason": reason[:500]} if reason else {}),
        },
    )
    if not approve:
        _transition(
            request,
            RequestState.REJECTED,
            actor=steward,
            note=f"{review.source.name}: {reason.strip()}",
        )
    elif not request.reviews.exclude(decision=SiteDecision.APPROVED).exists():
        _transition(request, RequestState.APPROVED, actor=steward)
        _extraction_start(request)
    return review


def _extraction_start(request: DatasetRequest) -> None:
    _transition(request, RequestState.EXTRACTING)
    for review in request.reviews.select_related("source"):
        extract, _created = Extract.objects.get_or_create(
            request=request, source=review.source, defaults={"max_downloads": policy_for(review.source).max_downloads}
        )
        _send(EXTRACT_TASK, source=review.source, extract_id=extract.pk)


# --- extraction (site worker) -----------------------------------------------------------------------------------


def extraction_execute(*, extract_id: int, worker: str = "") -> str:
    """Build the site's extract. Raises SiteUnreachable (lease given back) when the site is unreachable, so the task
    retries; any other failure fails the whole request and removes every file of it."""
    token = job_claim(Extract, extract_id, lease=LEASE, worker=worker)
    if token is None:
        return "skipped"
    extract = Extract.objects.select_related("request__version", "request__requester", "source").get(pk=extract_id)
    if extract.cancel_requested:
        # Cancelled (revoked, or failed at another site) while a worker that then died held it: taken over only
        # to record the end.
        job_finish(Extract, extract_id, token, JobState.CANCELLED, error=EXTRACT_CANCELLED)
        return "skipped"
    request, source = extract.request, extract.source
    review = SiteReview.objects.get(request=request, source=source)
    before, after = review.approved_window()
    policy = policy_for(source)
    try:
        with source_connect(source) as engine:
            spec = ExtractSpec(
                request_id=request.pk,
                site_key=source.key,
                cdm_schema=source.cdm_schema,
                results_schema=source.results_schema,
                cohort_id=DATASET_COHORT_BASE + review.pk,
                selection=review.approved_selection(),
                days_before=before,
                days_after=after,
                output_format=request.output_format,
                policy=policy.as_dict(),
                count_rule=rule_for(source=source, role=request.requester.role),
                record_keys=record_keys_ensure(engine, source=source),
            )
            # Generated again: the site's data may have changed since the projection, and the results table
            # is the site's own scratch space.
            generate_cohort(
                engine,
                request.version.expression,
                cdm_schema=source.cdm_schema,
                vocabulary_schema=source.vocabulary_schema,
                results_schema=source.results_schema,
                cohort_id=spec.cohort_id,
            )
            try:
                built = build_extract(engine, spec, root=dataset_root(), key=settings.SOYANG_DATASET_KEY)
            except UnkeyedCohort:
                # Persons added since the site keyed them (a reload of the CDM): key them and build again, once.
                record_keys_fill(engine, source=source)
                built = build_extract(engine, spec, root=dataset_root(), key=settings.SOYANG_DATASET_KEY)
    except TransientEngineError as exc:
        job_release(Extract, extract_id, token)
        raise SiteUnreachable(str(exc)) from exc
    except Exception as exc:  # the reason is recorded; no file was left (build_extract cleans up)
        logger.error("extract %s failed:\n%s", extract_id, traceback.format_exc())
        message = (
            str(exc) if isinstance(exc, ExtractionRefused | WarehouseError | ExpressionError) else type(exc).__name__
        )
        _extraction_fail(extract_id, reason=message or type(exc).__name__, token=token)
        return JobState.FAILED
    return _extraction_finish(extract_id, token, built)


@transaction.atomic
def _extraction_finish(extract_id: int, token: str, built: Any) -> str:
    extract = Extract.objects.select_for_update().get(pk=extract_id)
    request = _locked(extract.request)
    if request.state != RequestState.EXTRACTING or extract.state != JobState.RUNNING or extract.cancel_requested:
        # Revoked (or failed at another site) meanwhile, or taken over: the new file must not outlive the decision.
        (dataset_root() / built.relative_path).unlink(missing_ok=True)
        job_finish(Extract, extract_id, token, JobState.CANCELLED, error=EXTRACT_CANCELLED)
        return "discarded"
    job_finish(
        Extract,
        extract_id,
        token,
        JobState.SUCCEEDED,
        file_path=built.relative_path,
        size_bytes=built.size_bytes,
        sha256=built.sha256,
        encrypted=built.encrypted,
        manifest=built.manifest,
    )
    audit_record(
        action="dataset_extract",
        obj=request,
        source_key=extract.source.key,
        # The rows of the released files (which the requester holds) and the step applied; not the number of
        # persons suppressed, which with them gives the exact cohort size: that is the site's stewards' only, and
        # the admins read the audit log too.
        detail={"rows": built.manifest.get("rows", {}), "generalization": built.manifest["generalization"]["step"]},
    )
    if not request.extracts.exclude(state=JobState.SUCCEEDED).exists():
        days = min([request.retention_days, *(policy_for(s).link_valid_days for s in request.sites.all())])
        request.expires_at = timezone.now() + timedelta(days=days)
        request.extracts.update(expires_at=request.expires_at)
        _transition(request, RequestState.READY)
    return JobState.SUCCEEDED


def extraction_give_up(*, extract_id: int, reason: str) -> None:
    """The site stayed unreachable: the request fails (unless a worker holds the extract again)."""
    _extraction_fail(extract_id, reason=f"The site could not be reached: {reason}")


@transaction.atomic
def _extraction_fail(extract_id: int, *, reason: str, token: str | None = None) -> None:
    """One site's extraction failed (its holder's ``token``; None: given up after the retries): the request fails
    with the reason, and no file of it stays on disk."""
    extract = Extract.objects.select_for_update().select_related("source").get(pk=extract_id)
    request = _locked(extract.request)
    if token is not None:
        ended = job_finish(Extract, extract_id, token, JobState.FAILED, error=reason[:2000])
    else:
        ended = job_give_up(Extract, extract_id, error=reason[:2000])
    if not ended:
        return
    _delete_files(request)
    audit_record(
        action="dataset_extract",
        obj=request,
        source_key=extract.source.key,
        outcome="failure",
        detail={"error": reason[:500]},
    )
    if request.state == RequestState.EXTRACTING:
        _transition(request, RequestState.FAILED, note=f"{extract.source.name}: {reason}")


def _delete_files(request: DatasetRequest) -> int:
    """Delete every extract file of the request and cancel the extractions still to end (the caller holds the
    request's lock): a queued one ends at once, a running one's worker discards its file when it finishes."""
    deleted = 0
    now = timezone.now()
    for extract in request.extracts.select_for_update():
        if extract.file_path:
            (dataset_root() / extract.file_path).unlink(missing_ok=True)
            deleted += 1
            Extract.objects.filter(pk=extract.pk).update(file_path="", files_deleted_at=now)
        job_cancel(Extract, extract.pk, error=EXTRACT_CANCELLED)
    return deleted


# --- delivery ---------------------------------------------------------------------------------------------------


def download_open(*, extract: Extract, user: User, ip_address: str | None = None) -> tuple[bytes, str]:
    """The plain zip and its file name for the requester, counted and audited. PermissionDenied for anybody else;
    DownloadRefused (audited as a failure) when expired, used up, not ready or the file fails its check."""
    with transaction.atomic():
        extract = Extract.objects.select_for_update().select_related("request", "source").get(pk=extract.pk)
        request = _locked(extract.request)
        extract.request = request
        rules.require(rules.can_download(user, extract))
        problem = ""
        if request.state not in DELIVERABLE_STATES or extract.state != JobState.SUCCEEDED or not extract.file_path:
            problem = _("The dataset is not available (the request is %s).") % request.get_state_display()
        elif request.expires_at is None or request.expires_at <= timezone.now():
            problem = _("The download link has expired.")
        elif not projects_for_user(user).filter(pk=request.project_id).exists():
            # Access ends with the project (or the membership), like every other access in the portal.
            problem = _("You no longer work in the request's project.")
        elif extract.download_count >= extract.max_downloads:
            problem = _("The dataset was already downloaded %(n)s times, the most allowed.") % {
                "n": extract.max_downloads
            }
        data = b""
        if not problem:
            try:
                data = read_extract(
                    dataset_root() / extract.file_path, encrypted=extract.encrypted, key=settings.SOYANG_DATASET_KEY
                )
                if sha256_bytes(data) != extract.sha256:
                    raise ValueError("checksum mismatch")
            except Exception:  # missing, tampered or undecryptable: never hand out a file that fails its check
                logger.exception("extract %s failed its integrity check", extract.pk)
                problem = _("The dataset file failed its integrity check and was not delivered.")
        if not problem:
            extract.download_count += 1
            extract.save(update_fields=["download_count"])
            audit_record(
                action="export",
                actor=user,
                obj=request,
                source_key=extract.source.key,
                ip_address=ip_address,
                detail={"extract": extract.pk, "download": extract.download_count, "sha256": extract.sha256},
            )
            if request.state == RequestState.READY:
                _transition(request, RequestState.DOWNLOADED, actor=user)
            return data, f"soyang-dataset-{request.pk}-{extract.source.key}.zip"
    # Recorded outside the refused transaction's scope so that the refusal itself is kept.
    audit_record(
        action="export",
        actor=user,
        obj=request,
        source_key=extract.source.key,
        ip_address=ip_address,
        outcome="refused",
        detail={"extract": extract.pk, "reason": problem},
    )
    raise DownloadRefused(problem)


def document_viewed(*, request: DatasetRequest, user: User, ip_address: str | None = None) -> Path:
    """The approval document's path, the look recorded."""
    if not request.document_path:
        raise DownloadRefused(_("No document was attached."))
    audit_record(action="dataset_document_view", actor=user, obj=request, ip_address=ip_address)
    return dataset_root() / request.document_path


# --- revocation and expiry --------------------------------------------------------------------------------------


@transaction.atomic
def request_revoke(
    *, request: DatasetRequest, user: User, reason: str, ip_address: str | None = None
) -> DatasetRequest:
    """A site steward or an admin revokes a request (``rules.can_revoke``): its files are deleted at once."""
    request = _locked(request)
    rules.require(rules.can_revoke(user, request))
    if not reason.strip():
        raise ValidationError(_("Give the reason for the revocation."))
    deleted = _delete_files(request)
    _transition(request, RequestState.REVOKED, actor=user, note=reason.strip())
    audit_record(
        action="dataset_files_deleted", actor=user, obj=request, ip_address=ip_address, detail={"files": deleted}
    )
    return request


def requests_expire(*, now: datetime | None = None) -> int:
    """Expire every delivered request past its date: files deleted, state expired. Run by Celery beat."""
    now = now or timezone.now()
    expired = 0
    due = DatasetRequest.objects.filter(state__in=DELIVERABLE_STATES, expires_at__lte=now).values_list("pk", flat=True)
    for pk in list(due):
        with transaction.atomic():
            request = DatasetRequest.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if request is None or request.state not in DELIVERABLE_STATES:
                continue  # another process got there first
            deleted = _delete_files(request)
            _transition(
                request, RequestState.EXPIRED, note=_("The download period ended; %s file(s) deleted.") % deleted
            )
            expired += 1
    return expired


def reviews_rows_pruned(*, review_ids: Iterable[int], at: datetime) -> int:
    """Record that the site deleted the cohort rows of these reviews (``worker.retention``); returns how many were
    not recorded yet. Conditional: a review another prune recorded first keeps its time and is not counted."""
    return SiteReview.objects.filter(pk__in=list(review_ids), rows_pruned_at__isnull=True).update(rows_pruned_at=at)
