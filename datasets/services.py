"""Writes of the datasets app: request, submit, withdrawal, projection, review, extraction, download, expiry,
revocation.

Every state change goes through ``_transition`` (checked against ``choices.TRANSITIONS``, recorded on the timeline,
audited with ``audit_record`` in the same transaction, and e-mailed after the commit). Worker-side work
(projection, extraction) claims its row with a conditional update, so a redelivered message never runs twice.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F, Q
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
    JobState,
    LegalBasis,
    OutputFormat,
    RequestState,
    SiteDecision,
)
from datasets.errors import DatasetError, DownloadRefused, InvalidTransition, NotSubmitted
from datasets.extraction import (
    DATASET_COHORT_BASE,
    ExtractionRefused,
    ExtractSpec,
    build_extract,
    project_rows,
    read_extract,
    sha256_bytes,
)
from datasets.models import DatasetRequest, Extract, RequestTransition, SiteReview
from datasets.notifications import notify
from datasets.selectors import policy_for
from warehouse.engines import TransientEngineError, WarehouseError
from warehouse.models import Source
from warehouse.services import source_connect

logger = logging.getLogger(__name__)

PROJECT_TASK = "worker.tasks.datasets_project_site"
EXTRACT_TASK = "worker.tasks.datasets_extract_site"
#: How long a worker holds a projection or extraction before another may take it over (its worker died).
LEASE = timedelta(minutes=30)
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


def _site_queue(source_key: str) -> str:
    # The worker app's naming (worker.celery.site_queue); datasets does not import worker, worker imports it.
    return f"site.{source_key}"


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


def _send(task: str, *, queue: str, **kwargs: Any) -> None:
    def send() -> None:
        try:
            current_app.send_task(
                task,
                kwargs=kwargs,
                queue=queue,
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
            )
        except Exception:  # the broker went away: the row stays pending, visible to the steward and the admin
            logger.exception("could not enqueue %s %s", task, kwargs)

    transaction.on_commit(send)


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
    message for bad input. A submission refused after the draft was written raises NotSubmitted: the draft stays,
    exactly as when it is saved and submitted in two steps."""
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
    except BaseException:
        # Nothing written: the document goes with the rolled-back request.
        if stored is not None:
            stored.unlink(missing_ok=True)
        raise
    if submit:
        try:
            request = request_submit(request=request, user=requester)
        except (ValidationError, DatasetError) as exc:
            raise NotSubmitted(request, " ".join(getattr(exc, "messages", None) or [str(exc)])) from exc
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
        _send(PROJECT_TASK, queue=_site_queue(source.key), review_id=review.pk)
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


def _claim(model: Any, pk: int, state_field: str, **conditions: Any) -> bool:
    """Pending → running, or running with a lapsed lease (its worker died) → running again; ``conditions`` are
    further lookups the row must match, checked in the same conditional update."""
    now = timezone.now()
    fields = {state_field: JobState.RUNNING, "lease_expires_at": now + LEASE}
    if model is Extract:
        fields.update(attempts=F("attempts") + 1, started_at=now)
    claimed = model.objects.filter(
        Q(**{state_field: JobState.PENDING}) | Q(**{state_field: JobState.RUNNING, "lease_expires_at__lt": now}),
        pk=pk,
        **conditions,
    ).update(**fields)
    return bool(claimed)


def _release(model: Any, pk: int) -> None:
    """Give a claimed row back (the site was unreachable): the task's retry may claim it at once."""
    model.objects.filter(pk=pk).update(lease_expires_at=timezone.now())


def projection_execute(*, review_id: int) -> str:
    """Generate the cohort at the site and count the rows each requested table would hold. Raises
    TransientEngineError (after giving the claim back) when the site is unreachable, so the task retries."""
    # Only for a request still waiting for its sites: one withdrawn (or rejected, revoked) before this site got to
    # it is not projected, and a redelivered message skips the same way. The state is read at the claim: a
    # projection already running when the request closes finishes harmlessly (``_projection_finish`` records it
    # and moves the request on only while it is still submitted).
    if not _claim(SiteReview, review_id, "projection_state", request__state__in=REVIEW_OPEN_STATES):
        return "skipped"
    review = SiteReview.objects.select_related("request__version", "source").get(pk=review_id)
    request, source = review.request, review.source
    try:
        with source_connect(source) as engine:
            generated = generate_cohort(
                engine,
                request.version.expression,
                cdm_schema=source.cdm_schema,
                vocabulary_schema=source.vocabulary_schema,
                results_schema=source.results_schema,
                cohort_id=DATASET_COHORT_BASE + review.pk,
            )
            _persons, counts = project_rows(
                engine,
                cdm_schema=source.cdm_schema,
                results_schema=source.results_schema,
                cohort_id=DATASET_COHORT_BASE + review.pk,
                selection=request.selection,
                days_before=request.days_before,
                days_after=request.days_after,
            )
    except TransientEngineError:
        _release(SiteReview, review_id)
        raise
    except (WarehouseError, ExpressionError) as exc:
        _projection_finish(review_id, state=JobState.FAILED, error=str(exc) or type(exc).__name__)
        return JobState.FAILED
    _projection_finish(review_id, state=JobState.DONE, persons=generated.persons, counts=counts)
    return JobState.DONE


def projection_give_up(*, review_id: int, reason: str) -> None:
    """The site stayed unreachable: the projection fails, the steward sees why."""
    _projection_finish(review_id, state=JobState.FAILED, error=_("The site could not be reached: %s") % reason)


@transaction.atomic
def _projection_finish(
    review_id: int, *, state: str, persons: int | None = None, counts: dict[str, int] | None = None, error: str = ""
) -> None:
    review = SiteReview.objects.select_for_update().get(pk=review_id)
    review.projection_state = state
    review.projection_error = error[:2000]
    review.cohort_persons = persons
    review.projected_rows = counts or {}
    review.lease_expires_at = None
    review.save()
    request = _locked(review.request)
    audit_record(
        action="dataset_projection",
        obj=request,
        source_key=review.source.key,
        outcome="success" if state == JobState.DONE else "failure",
        detail={"persons": persons, "rows": counts or {}, **({"error": error[:500]} if error else {})},
    )
    open_reviews = request.reviews.filter(projection_state__in=[JobState.PENDING, JobState.RUNNING]).exists()
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
        if review.projection_state != JobState.DONE:
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
        _send(EXTRACT_TASK, queue=_site_queue(review.source.key), extract_id=extract.pk)


# --- extraction (site worker) -----------------------------------------------------------------------------------


def extraction_execute(*, extract_id: int) -> str:
    """Build the site's extract. Raises TransientEngineError (claim given back) when the site is unreachable, so
    the task retries; any other failure fails the whole request and removes every file of it."""
    if not _claim(Extract, extract_id, "state"):
        return "skipped"
    extract = Extract.objects.select_related("request__version", "source").get(pk=extract_id)
    request, source = extract.request, extract.source
    review = SiteReview.objects.get(request=request, source=source)
    before, after = review.approved_window()
    policy = policy_for(source)
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
    )
    try:
        with source_connect(source) as engine:
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
            built = build_extract(engine, spec, root=dataset_root(), key=settings.SOYANG_DATASET_KEY)
    except TransientEngineError:
        _release(Extract, extract_id)
        raise
    except Exception as exc:  # the reason is recorded; no file was left (build_extract cleans up)
        logger.error("extract %s failed:\n%s", extract_id, traceback.format_exc())
        message = (
            str(exc) if isinstance(exc, ExtractionRefused | WarehouseError | ExpressionError) else type(exc).__name__
        )
        extraction_fail(extract_id=extract_id, reason=message or type(exc).__name__)
        return JobState.FAILED
    return _extraction_finish(extract_id, built)


@transaction.atomic
def _extraction_finish(extract_id: int, built: Any) -> str:
    extract = Extract.objects.select_for_update().get(pk=extract_id)
    request = _locked(extract.request)
    if request.state != RequestState.EXTRACTING or extract.state != JobState.RUNNING:
        # Revoked (or failed at another site) meanwhile: the new file must not outlive the decision.
        (dataset_root() / built.relative_path).unlink(missing_ok=True)
        return "discarded"
    extract.state = JobState.DONE
    extract.file_path = built.relative_path
    extract.size_bytes = built.size_bytes
    extract.sha256 = built.sha256
    extract.encrypted = built.encrypted
    extract.manifest = built.manifest
    extract.finished_at = timezone.now()
    extract.lease_expires_at = None
    extract.save()
    audit_record(
        action="dataset_extract",
        obj=request,
        source_key=extract.source.key,
        detail={
            "rows": built.manifest.get("rows", {}),
            "suppressed": built.manifest.get("persons_suppressed_k_anonymity"),
        },
    )
    if not request.extracts.exclude(state=JobState.DONE).exists():
        days = min([request.retention_days, *(policy_for(s).link_valid_days for s in request.sites.all())])
        request.expires_at = timezone.now() + timedelta(days=days)
        request.extracts.update(expires_at=request.expires_at)
        _transition(request, RequestState.READY)
    return JobState.DONE


@transaction.atomic
def extraction_fail(*, extract_id: int, reason: str) -> None:
    """One site's extraction failed: the request fails with the reason, and no file of it stays on disk."""
    extract = Extract.objects.select_for_update().select_related("source").get(pk=extract_id)
    request = _locked(extract.request)
    extract.state = JobState.FAILED
    extract.error = reason[:2000]
    extract.finished_at = timezone.now()
    extract.lease_expires_at = None
    extract.save()
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
    """Delete every extract file of the request (the caller holds the request's lock)."""
    deleted = 0
    for extract in request.extracts.select_for_update():
        if extract.file_path:
            (dataset_root() / extract.file_path).unlink(missing_ok=True)
            deleted += 1
        if extract.state in (JobState.DONE, JobState.PENDING, JobState.RUNNING):
            extract.state = JobState.DELETED
        extract.file_path = ""
        extract.save(update_fields=["state", "file_path"])
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
        if request.state not in DELIVERABLE_STATES or extract.state != JobState.DONE or not extract.file_path:
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
    """Record that the site deleted the cohort rows of these reviews (``cohorts.retention``); returns how many were
    not recorded yet. Conditional: a review another prune recorded first keeps its time and is not counted."""
    return SiteReview.objects.filter(pk__in=list(review_ids), rows_pruned_at__isnull=True).update(rows_pruned_at=at)
