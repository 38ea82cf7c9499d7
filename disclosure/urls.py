"""Pages of the disclosure app: the exact-count grants."""

from __future__ import annotations

from django.urls import path

from disclosure import views

app_name = "disclosure"

urlpatterns = [
    path("grants/", views.grant_list, name="grant_list"),
    path("grants/<int:pk>/revoke/", views.grant_revoke, name="grant_revoke"),
]
