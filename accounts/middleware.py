"""Checks on every request of a signed-in person."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext

from accounts.choices import AccountStatus
from accounts.permissions import mfa_enrolment_missing

#: Where the REST API lives (portal/urls.py). It refuses a steward or admin without TOTP itself, with a 403 in
#: its error shape (``accounts.api.permissions.IsApprovedAccount``), whether the call comes with a session or a
#: token: a redirect to an HTML page is no answer to a script.
API_PREFIX = "/api/"


class AccessGuardMiddleware:
    """Two rules that must hold on every page, not just at login:

    * an account suspended (or otherwise no longer approved) while signed in loses its session at its next
      request — the decision takes effect at once, not when the session idles out;
    * a data steward or admin without TOTP is sent to set it up before anything else. Only the pages needed to
      do that (MFA set-up, re-authentication, sign-out) and static files stay reachable; the API applies the
      same rule (``mfa_enrolment_missing``) and answers in its own shape.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            if user.status != AccountStatus.APPROVED or not user.is_active:
                logout(request)
                messages.error(request, gettext("Your account is not approved any more; you have been signed out."))
                return HttpResponseRedirect(reverse("login"))
            if not self._exempt(request.path) and mfa_enrolment_missing(user):
                messages.warning(request, gettext("Data stewards and admins must set up an authenticator app first."))
                return HttpResponseRedirect(reverse("mfa_activate_totp"))
        return self.get_response(request)

    @staticmethod
    def _exempt(path: str) -> bool:
        allowed = (
            reverse("mfa_index"),
            reverse("account_logout"),
            reverse("account_reauthenticate"),
            settings.STATIC_URL,
            reverse("health"),
            # The translations of the page scripts, which the TOTP set-up page itself loads.
            reverse("javascript-catalog"),
            API_PREFIX,
        )
        return path.startswith(allowed)
