"""Pages of dataset requests. Thin: forms in, services and selectors out.

Objects are reached through the access selectors: what the user may not see answers 404 exactly like what does
not exist; 403 only when the user sees the request but may not act on it (deciding somebody else's site, one's own
request, withdrawing or downloading somebody else's), with the refusal of the rule in ``datasets.rules`` that the
service enforces too; the same rules decide which buttons a page offers.

Downloads are addressed by the extract's id, without a token in the URL: the session and the requester-only
check in ``services.download_open`` are what protect the file, every download is counted and audited, and a URL
that carries no secret cannot leak one through logs, browser history or a Referer header. The download is a POST,
so that link prefetchers and scanners never use up one of the limited downloads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.http import client_ip
from datasets import rules, selectors, services
from datasets.choices import (
    CLOSED_STATES,
    DELIVERABLE_STATES,
    WITHDRAWABLE_STATES,
    RequestState,
    SiteDecision,
)
from datasets.errors import DatasetError, DownloadRefused
from datasets.forms import DatasetRequestForm, ReviewForm
from datasets.models import DatasetRequest, SiteReview
from jobs.choices import JobState


def _errors(exc: Exception) -> str:
    return " ".join(getattr(exc, "messages", None) or [str(exc)])


@login_required
@require_GET
def request_list(request: HttpRequest) -> HttpResponse:
    visible = selectors.requests_for_user(request.user)
    context = {
        "mine": visible.filter(requester=request.user),
        "sites": visible.exclude(requester=request.user)[:200],
        "awaiting": selectors.reviews_awaiting(request.user),
        "definitions": selectors.definitions_requestable(request.user),
    }
    return render(request, "datasets/request_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def request_new(request: HttpRequest, pk: int) -> HttpResponse:
    definition = selectors.definitions_requestable(request.user).filter(pk=pk).first()
    if definition is None:
        raise Http404("No such cohort definition.")
    sites = definition.project.sources.filter(is_active=True).order_by("key")
    form = DatasetRequestForm(request.POST or None, request.FILES or None, sites=sites)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        submit = request.POST.get("action") == "submit"
        try:
            dataset_request = services.request_create(
                requester=request.user,
                definition=definition,
                sites=list(data["sites"]),
                selection=data["selection"],
                days_before=data["days_before"],
                days_after=data["days_after"],
                purpose=data["purpose"],
                legal_basis=data["legal_basis"],
                retention_days=data["retention_days"],
                output_format=data["output_format"],
                document=data.get("document"),
                submit=submit,
                ip_address=client_ip(request),
            )
            if submit:
                messages.success(request, _("Request submitted: each site computes its projection for the stewards."))
            else:
                messages.success(request, _("Request saved as a draft."))
            return redirect("datasets:request_detail", pk=dataset_request.pk)
        except (ValidationError, PermissionDenied, DatasetError) as exc:
            form.add_error(None, _errors(exc))
    status = 400 if request.method == "POST" else 200
    return render(request, "datasets/request_form.html", {"form": form, "definition": definition}, status=status)


@login_required
@require_GET
@never_cache
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    dataset_request = selectors.request_get_for_user(request.user, pk)
    reviews = list(dataset_request.reviews.select_related("source", "reviewer", "projection"))
    state = dataset_request.state
    for review in reviews:
        review.request = dataset_request
        review.can_see_counts = bool(rules.can_see_review_counts(request.user, review))
        review.shown_counts = rules.review_counts_as_seen_by(request.user, review)
        # The review link only while the decision is still open (``review_decide`` refuses it otherwise).
        review.can_decide = (
            bool(rules.can_decide_review(request.user, review))
            and state == RequestState.UNDER_REVIEW
            and review.decision == SiteDecision.PENDING
        )
    extracts = list(dataset_request.extracts.select_related("source"))
    for extract in extracts:
        extract.request = dataset_request
        extract.shown_manifest = rules.manifest_as_seen_by(request.user, extract)
    # Each button only where the rule allows the person and the request's state allows the move.
    context = {
        "req": dataset_request,
        "reviews": reviews,
        "extracts": extracts,
        "transitions": dataset_request.transitions.select_related("actor"),
        "is_requester": dataset_request.requester_id == request.user.pk,
        "can_submit": bool(rules.can_submit(request.user, dataset_request)) and state == RequestState.DRAFT,
        "can_revoke": bool(rules.can_revoke(request.user, dataset_request)) and state not in CLOSED_STATES,
        "can_withdraw": bool(rules.can_withdraw(request.user, dataset_request)) and state in WITHDRAWABLE_STATES,
        "deliverable": state in DELIVERABLE_STATES,
        "done": JobState.SUCCEEDED,
    }
    return render(request, "datasets/request_detail.html", context)


@login_required
@require_POST
def request_submit(request: HttpRequest, pk: int) -> HttpResponse:
    dataset_request = selectors.request_get_for_user(request.user, pk)
    rules.require(rules.can_submit(request.user, dataset_request))
    try:
        services.request_submit(request=dataset_request, user=request.user)
        messages.success(request, _("Request submitted."))
    except (ValidationError, DatasetError) as exc:
        messages.error(request, _errors(exc))
    return redirect("datasets:request_detail", pk=pk)


@login_required
@require_POST
def request_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    dataset_request = selectors.request_get_for_user(request.user, pk)
    rules.require(rules.can_withdraw(request.user, dataset_request))
    return _close(
        request,
        dataset_request,
        services.request_withdraw,
        success=_("Request withdrawn: no site will review it any more."),
    )


def _close(
    request: HttpRequest, dataset_request: DatasetRequest, service: Callable[..., Any], *, success: str
) -> HttpResponse:
    """Withdraw or revoke with the posted reason; a refusal (wrong state, bad reason) becomes the page's error."""
    try:
        service(
            request=dataset_request,
            user=request.user,
            reason=request.POST.get("reason", ""),
            ip_address=client_ip(request),
        )
        messages.success(request, success)
    except (ValidationError, DatasetError) as exc:
        messages.error(request, _errors(exc))
    return redirect("datasets:request_detail", pk=dataset_request.pk)


@login_required
@require_GET
def request_document(request: HttpRequest, pk: int) -> HttpResponse:
    dataset_request = selectors.request_get_for_user(request.user, pk)
    try:
        path = services.document_viewed(request=dataset_request, user=request.user, ip_address=client_ip(request))
    except DownloadRefused as exc:
        return render(request, "datasets/refused.html", {"message": str(exc), "req": dataset_request}, status=404)
    response = FileResponse(path.open("rb"), content_type=dataset_request.document_type)
    response["Content-Disposition"] = f'attachment; filename="request-{dataset_request.pk}-document{path.suffix}"'
    return response


@login_required
@require_POST
def request_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    dataset_request = selectors.request_get_for_user(request.user, pk)
    rules.require(rules.can_revoke(request.user, dataset_request))
    return _close(
        request, dataset_request, services.request_revoke, success=_("Request revoked; its files were deleted.")
    )


def _review_form(review: SiteReview, data: Any = None) -> ReviewForm:
    return ReviewForm(data, requested=review.request.selection, window=review.approved_window())


@login_required
@require_http_methods(["GET", "POST"])
def review(request: HttpRequest, pk: int) -> HttpResponse:
    site_review = selectors.review_get_for_user(request.user, pk)
    dataset_request = site_review.request
    rules.require(rules.can_decide_review(request.user, site_review))
    form = _review_form(site_review, request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.review_decide(
                    review=site_review,
                    steward=request.user,
                    approve=data["decision"] == "approve",
                    reason=data["reason"],
                    narrowed_selection=form.narrowed_selection(),
                    narrowed_days_before=data["days_before"],
                    narrowed_days_after=data["days_after"],
                    ip_address=client_ip(request),
                )
                messages.success(request, _("Decision recorded."))
                return redirect("datasets:request_detail", pk=dataset_request.pk)
            except (ValidationError, DatasetError) as exc:
                form.add_error(None, _errors(exc))
    context = {
        "review": site_review,
        "req": dataset_request,
        "form": form,
        "policy": selectors.policy_for(site_review.source),
    }
    return render(request, "datasets/review.html", context, status=status)


@login_required
@require_POST
@never_cache
def extract_download(request: HttpRequest, pk: int) -> HttpResponse:
    extract = selectors.extract_get_for_user(request.user, pk)
    rules.require(rules.can_download(request.user, extract))
    try:
        data, filename = services.download_open(extract=extract, user=request.user, ip_address=client_ip(request))
    except DownloadRefused as exc:
        return render(request, "datasets/refused.html", {"message": str(exc), "req": extract.request}, status=410)
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
