"""Pages of projects, memberships and the approval queues. Thin: forms in, services and selectors out."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from accounts import approvals, selectors, services
from accounts.choices import MembershipStatus
from accounts.forms import AccountDecisionForm, MembershipDecisionForm, ProjectForm
from accounts.permissions import is_steward, projects_for_user
from audit.http import client_ip

#: What a decision's success message says, in the reader's language.
DECISION_RECORDED = {
    "approve": gettext_lazy("Decision recorded: approved."),
    "reject": gettext_lazy("Decision recorded: rejected."),
    "revoke": gettext_lazy("Decision recorded: revoked."),
    "suspend": gettext_lazy("Decision recorded: suspended."),
    "reinstate": gettext_lazy("Decision recorded: reinstated."),
}


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc) or gettext("Not allowed.")


def _same_site_next(request: HttpRequest, *, default: str) -> str:
    """The ``next`` the form sent when it is a path of this site; ``default`` (a URL name) otherwise. A ``next``
    naming another host (or a scheme-relative ``//host``) would make the portal an open redirect."""
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    context = {
        "projects": projects_for_user(user).select_related("principal_investigator"),
        "memberships": selectors.memberships_of_user(user).exclude(status=MembershipStatus.APPROVED),
        "stewarded": selectors.projects_stewarded_by(user) if is_steward(user) else [],
        "candidates": selectors.project_join_candidates(user),
        "can_create": approvals.can_create_project(user),
    }
    return render(request, "accounts/project_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def project_create(request: HttpRequest) -> HttpResponse:
    if not approvals.can_create_project(request.user):
        raise Http404("no such page")
    form = ProjectForm(request.POST or None, creator=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(
                **form.cleaned_data, created_by=request.user, ip_address=client_ip(request)
            )
        except (PermissionDenied, ValidationError) as exc:
            form.add_error(None, _error_text(exc))
        else:
            messages.success(request, gettext("Project “%(title)s” opened.") % {"title": project.title})
            return redirect("accounts:project_detail", pk=project.pk)
    return render(request, "accounts/project_form.html", {"form": form})


@login_required
def project_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    project = selectors.project_get_for_user(user=user, pk=pk)
    memberships = list(project.memberships.select_related("user", "owner_approved_by", "steward_approved_by"))
    for membership in memberships:
        # What this viewer may do on each row, so the page shows only buttons that work.
        membership.can_approve = approvals.can_approve_owner_step(
            user, membership
        ) or approvals.can_approve_steward_step(user, membership)
        membership.can_reject = approvals.can_reject_membership(user, membership)
        membership.can_revoke = approvals.can_revoke_membership(user, membership)
    is_decider = approvals.is_project_owner(user, project) or approvals.is_project_steward(user, project)
    context = {
        "project": project,
        "members": [m for m in memberships if m.status == MembershipStatus.APPROVED],
        "requests": [m for m in memberships if m.status == MembershipStatus.REQUESTED] if is_decider else [],
        "sources": project.sources.all(),
        "is_decider": is_decider,
    }
    return render(request, "accounts/project_detail.html", context)


@login_required
@require_POST
def project_join(request: HttpRequest, pk: int) -> HttpResponse:
    project = selectors.project_joinable_get(user=request.user, pk=pk)
    try:
        services.membership_request(project=project, user=request.user, ip_address=client_ip(request))
    except (PermissionDenied, ValidationError) as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, gettext("Request sent: the project owner and a data steward will decide."))
    return redirect("accounts:project_list")


@login_required
@require_POST
def membership_decide(request: HttpRequest, pk: int) -> HttpResponse:
    membership = selectors.membership_get_for_decider(user=request.user, pk=pk)
    form = MembershipDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.non_field_errors()) or gettext("Choose a decision."))
        return redirect(_same_site_next(request, default="accounts:approvals"))
    decision, reason = form.cleaned_data["decision"], form.cleaned_data["reason"]
    ip_address = client_ip(request)
    try:
        if decision == "approve":
            services.membership_approve(membership=membership, approver=request.user, ip_address=ip_address)
        elif decision == "reject":
            services.membership_reject(
                membership=membership, rejecter=request.user, reason=reason, ip_address=ip_address
            )
        else:
            services.membership_revoke(
                membership=membership, revoked_by=request.user, reason=reason, ip_address=ip_address
            )
    except PermissionDenied as exc:
        # The request is visible (the project is) but this decision is not the viewer's to take.
        return render(request, "accounts/refused.html", {"message": _error_text(exc)}, status=403)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, DECISION_RECORDED[decision])
    return redirect("accounts:project_detail", pk=membership.project_id)


@login_required
def approvals_queue(request: HttpRequest) -> HttpResponse:
    user = request.user
    can_review = approvals.can_review_accounts(user)
    awaiting = selectors.membership_requests_awaiting(user)
    if not can_review and not awaiting:
        # Researchers owning no project with pending requests: the page is not theirs.
        raise Http404("no such page")
    context = {
        "pending_accounts": selectors.accounts_pending_review(user),
        "managed_accounts": selectors.accounts_managed_by(user),
        "membership_requests": awaiting,
        "account_form": AccountDecisionForm(reviewer=user) if can_review else None,
        "can_review": can_review,
    }
    return render(request, "accounts/approvals.html", context)


@login_required
@require_POST
def account_decide(request: HttpRequest, pk: int) -> HttpResponse:
    account = selectors.account_get_for_reviewer(user=request.user, pk=pk)
    form = AccountDecisionForm(request.POST, reviewer=request.user)
    if not form.is_valid():
        messages.error(request, " ".join(form.non_field_errors()) or gettext("Check the decision form."))
        return redirect("accounts:approvals")
    data = form.cleaned_data
    ip_address = client_ip(request)
    try:
        if data["decision"] == "approve":
            services.account_approve(
                user=account,
                organisation=data["organisation"],
                role=data["role"],
                decided_by=request.user,
                ip_address=ip_address,
            )
        elif data["decision"] == "reject":
            services.account_reject(user=account, reason=data["reason"], decided_by=request.user, ip_address=ip_address)
        elif data["decision"] == "suspend":
            services.account_suspend(
                user=account, reason=data["reason"], decided_by=request.user, ip_address=ip_address
            )
        else:
            services.account_reinstate(user=account, decided_by=request.user, ip_address=ip_address)
    except PermissionDenied as exc:
        return render(request, "accounts/refused.html", {"message": _error_text(exc)}, status=403)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, f"{account.username}: {DECISION_RECORDED[data['decision']]}")
    return redirect("accounts:approvals")
