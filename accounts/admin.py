"""Accounts, groups, authenticators and lockouts in the Django admin.

Every admin here writes its changes to the audit log (``audit.admin.AuditedAdminMixin``); the admins of Django's
groups, allauth's authenticators and e-mail addresses and django-axes' lockout records are registered again with
it (their apps come before accounts in INSTALLED_APPS, so theirs are registered by the time this module runs).
"""

from __future__ import annotations

from typing import Any

from allauth.account.admin import EmailAddressAdmin
from allauth.account.models import EmailAddress
from allauth.mfa.admin import AuthenticatorAdmin
from allauth.mfa.models import Authenticator
from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db import transaction
from django.http import HttpRequest, HttpResponse

from accounts import services
from accounts.models import Organisation, User
from audit.admin import AuditedAdminMixin
from audit.http import client_ip


@admin.register(User)
class SoyangUserAdmin(AuditedAdminMixin, UserAdmin):
    list_display = ("username", "email", "organisation", "role", "status", "is_active")
    list_filter = ("role", "status", "organisation")
    fieldsets = (*UserAdmin.fieldsets, ("Soyang", {"fields": ("organisation", "role", "status")}))

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        # The admin is one more path that changes a role: it revokes the account's API tokens like the others.
        before = services.account_privileges(obj) if change else {}
        super().save_model(request, obj, form, change)
        services.account_privileges_changed(
            user=obj, before=before, changed_by=request.user, ip_address=client_ip(request)
        )

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        # Django saves the new password and logs the change in two steps: one transaction holds both and the audit
        # event, so a password is never changed without its event.
        with transaction.atomic():
            return super().user_change_password(request, id, form_url)


@admin.register(Organisation)
class OrganisationAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "kind", "created_at")


def _register_audited(model: type, model_admin: type[admin.ModelAdmin]) -> None:
    """Replace a third-party app's admin of ``model`` with the same admin that also audits (when that app shows
    the model in the admin at all: axes may be told not to)."""
    if not admin.site.is_registered(model):
        return
    admin.site.unregister(model)
    audited = type(f"Audited{model_admin.__name__}", (AuditedAdminMixin, model_admin), {})
    admin.site.register(model, audited)


_register_audited(Group, GroupAdmin)
_register_audited(EmailAddress, EmailAddressAdmin)
_register_audited(Authenticator, AuthenticatorAdmin)
_register_audited(AccessAttempt, AccessAttemptAdmin)
_register_audited(AccessLog, AccessLogAdmin)
_register_audited(AccessFailureLog, AccessFailureLogAdmin)
