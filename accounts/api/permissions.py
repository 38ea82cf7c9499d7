"""The default permission of every API view: an approved account, and TOTP enrolled for stewards and admins."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.permissions import account_is_usable, mfa_enrolment_missing

MFA_REQUIRED_CODE = "mfa_required"
MFA_REQUIRED_MESSAGE = (
    "Data stewards and admins must set up an authenticator app (TOTP) before using the API: "
    "sign in to the portal in a browser and set it up under Security."
)


class IsApprovedAccount(BasePermission):
    """Anonymous → 401; an authenticated account that is not approved → 403. What each object allows is decided
    by the viewset's restricted queryset and the services, not here.

    A steward or admin without TOTP is refused every call (403, ``mfa_required``), as the pages refuse it every
    page: a token is no way around the second factor. A token made while its owner was a researcher is revoked
    when the role changes (``accounts.api.tokens.tokens_revoke_all``), and this check holds even if one is not.
    A view about the caller's own credentials only (its tokens) sets ``mfa_exempt``, as the pages let the MFA
    set-up through: it grants nothing of the role.
    """

    message = "Your account is not approved."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not account_is_usable(request.user):
            return False
        if mfa_enrolment_missing(request.user) and not getattr(view, "mfa_exempt", False):
            raise PermissionDenied(MFA_REQUIRED_MESSAGE, code=MFA_REQUIRED_CODE)
        return True
