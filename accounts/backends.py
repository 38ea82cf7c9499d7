"""Authentication: only approved, active accounts may sign in."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend

from accounts.choices import AccountStatus


class ApprovedAccountBackend(ModelBackend):
    """Pending, rejected and suspended accounts cannot sign in, whatever their password."""

    def user_can_authenticate(self, user: Any) -> bool:
        return super().user_can_authenticate(user) and getattr(user, "status", None) == AccountStatus.APPROVED
