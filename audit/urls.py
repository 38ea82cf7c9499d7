"""Audit log pages (admins, and data stewards for their site)."""

from __future__ import annotations

from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("", views.audit_list, name="event_list"),
    path("export.csv", views.audit_export, name="export"),
]
