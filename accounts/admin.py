from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import Organisation, User


@admin.register(User)
class SoyangUserAdmin(UserAdmin):
    list_display = ("username", "email", "organisation", "role", "status", "is_active")
    list_filter = ("role", "status", "organisation")
    fieldsets = (*UserAdmin.fieldsets, ("Soyang", {"fields": ("organisation", "role", "status")}))


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "created_at")
