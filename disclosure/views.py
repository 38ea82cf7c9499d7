"""The exact-count grants page: a site's stewards list, grant and revoke; admins read. Thin: forms in, services
and selectors out."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts.permissions import is_steward
from audit.http import client_ip
from disclosure import services
from disclosure.forms import ExactCountGrantForm, ExactCountRevokeForm
from disclosure.permissions import can_manage_exact_grants, can_read_exact_grants
from disclosure.selectors import exact_grant_state, exact_grants_visible_to


def _refused(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "accounts/refused.html", {"message": message}, status=403)


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc) or _("Not allowed.")


@login_required
@require_http_methods(["GET", "POST"])
def grant_list(request: HttpRequest) -> HttpResponse:
    """GET: the grants of the reader's sites (a steward's organisation; every site for admins), newest first,
    with their state. POST: a steward grants (``services.grant_exact_counts``). Anybody else: 403."""
    user = request.user
    if not can_read_exact_grants(user):
        return _refused(request, _("Exact-count grants are for the sites' data stewards and admins."))
    form = ExactCountGrantForm(request.POST or None, steward=user) if is_steward(user) else None
    if request.method == "POST":
        if form is None:
            return _refused(request, _("Only a data steward of the site's organisation grants exact counts."))
        if form.is_valid():
            try:
                grant = services.grant_exact_counts(**form.cleaned_data, granted_by=user, ip_address=client_ip(request))
            except PermissionDenied as exc:
                return _refused(request, _error_text(exc))
            except ValidationError as exc:
                form.add_error(None, _error_text(exc))
            else:
                messages.success(request, _("Grant #%(grant)s recorded.") % {"grant": grant.pk})
                return redirect("disclosure:grant_list")
    grants = list(exact_grants_visible_to(user))
    for grant in grants:
        grant.state = exact_grant_state(grant)
        grant.can_revoke = grant.revoked_at is None and can_manage_exact_grants(user, grant.source)
    context = {"grants": grants, "form": form}
    return render(request, "disclosure/grant_list.html", context)


@login_required
@require_POST
def grant_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """A steward of the grant's site ends it now. A grant the reader may not list is answered like a missing one."""
    grant = exact_grants_visible_to(request.user).filter(pk=pk).first()
    if grant is None:
        raise Http404("No such grant.")
    form = ExactCountRevokeForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Give the reason for the revocation."))
        return redirect("disclosure:grant_list")
    try:
        services.revoke_exact_counts(
            grant=grant, revoked_by=request.user, reason=form.cleaned_data["reason"], ip_address=client_ip(request)
        )
    except PermissionDenied as exc:
        return _refused(request, _error_text(exc))
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, _("Grant #%(grant)s revoked.") % {"grant": grant.pk})
    return redirect("disclosure:grant_list")
