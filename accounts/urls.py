"""Pages of projects and approvals (the sign-in pages are django-allauth's, under /accounts/)."""

from __future__ import annotations

from django.urls import path

from accounts import views
from accounts.api import pages as token_pages

app_name = "accounts"

urlpatterns = [
    path("projects/", views.project_list, name="project_list"),
    path("projects/new/", views.project_create, name="project_create"),
    path("projects/<int:pk>/", views.project_detail, name="project_detail"),
    path("projects/<int:pk>/join/", views.project_join, name="project_join"),
    path("projects/requests/<int:pk>/decide/", views.membership_decide, name="membership_decide"),
    path("approvals/", views.approvals_queue, name="approvals"),
    path("approvals/accounts/<int:pk>/", views.account_decide, name="account_decide"),
    path("api-tokens/", token_pages.token_list, name="tokens"),
    path("api-tokens/<int:pk>/revoke/", token_pages.token_revoke, name="token_revoke"),
]
