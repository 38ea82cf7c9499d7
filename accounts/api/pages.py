"""The browser page for personal API tokens: make one (its secret is shown once), list them, revoke one."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.api import tokens
from audit.http import client_ip


class TokenForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, help_text=_("What will use it, e.g. “R notebook”."))
    days = forms.IntegerField(label=_("Valid for (days)"), min_value=1, initial=90)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # The longest lifetime is a setting, read when the form is made (not when the module is imported).
        self.fields["days"] = forms.IntegerField(
            label=_("Valid for (days)"), min_value=1, max_value=settings.SOYANG_API_TOKEN_MAX_DAYS, initial=90
        )


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    """The person's tokens and the form to make one. After making one the page shows its secret, once: it is
    rendered into this response only (never stored, never redirected through the session)."""
    form = TokenForm(request.POST or None)
    created = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                created = tokens.token_create(
                    user=request.user,
                    name=form.cleaned_data["name"],
                    days=form.cleaned_data["days"],
                    ip_address=client_ip(request),
                )
            except ValidationError as exc:
                form.add_error(None, " ".join(exc.messages))
        if created is None:
            status = 400
        else:
            form = TokenForm()
    context = {
        "form": form,
        "created": created,
        "tokens": tokens.tokens_of_user(request.user),
        "max_days": settings.SOYANG_API_TOKEN_MAX_DAYS,
        "now": timezone.now(),
    }
    return render(request, "accounts/tokens.html", context, status=status)


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = tokens.token_get_for_user(user=request.user, pk=pk)
    tokens.token_revoke(token=token, by=request.user, ip_address=client_ip(request))
    messages.success(request, _("Token “%(name)s” revoked.") % {"name": token.name})
    return redirect("accounts:tokens")
