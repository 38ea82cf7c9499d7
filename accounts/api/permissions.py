"""The default permission of every API view: an approved account."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.permissions import account_is_usable


class IsApprovedAccount(BasePermission):
    """Anonymous → 401; an authenticated account that is not approved → 403. What each object allows is decided
    by the viewset's restricted queryset and the services, not here."""

    message = "Your account is not approved."

    def has_permission(self, request: Request, view: Any) -> bool:
        return account_is_usable(request.user)
