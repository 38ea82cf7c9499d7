"""Pages of dataset requests (mounted at /datasets/)."""

from __future__ import annotations

from django.urls import path

from datasets import views

app_name = "datasets"

urlpatterns = [
    path("", views.request_list, name="request_list"),
    path("definitions/<int:pk>/request/", views.request_new, name="request_new"),
    path("<int:pk>/", views.request_detail, name="request_detail"),
    path("<int:pk>/submit/", views.request_submit, name="request_submit"),
    path("<int:pk>/withdraw/", views.request_withdraw, name="request_withdraw"),
    path("<int:pk>/document/", views.request_document, name="request_document"),
    path("<int:pk>/revoke/", views.request_revoke, name="request_revoke"),
    path("reviews/<int:pk>/", views.review, name="review"),
    path("extracts/<int:pk>/download/", views.extract_download, name="extract_download"),
]
