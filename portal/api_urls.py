"""The REST API's URLs: /api/v1/ (router of every app's viewsets), the OpenAPI schema and its two viewers."""

from __future__ import annotations

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from accounts.api.exceptions import api_not_found
from accounts.api.views import MembershipViewSet, PendingAccountViewSet, ProjectViewSet, TokenViewSet
from audit.api import AuditEventViewSet
from cohorts.api.concepts import ConceptSetViewSet, ConceptViewSet
from cohorts.api.views import ComparisonViewSet, DefinitionViewSet, RunViewSet, SourceViewSet
from datasets.api import DatasetRequestViewSet
from disclosure.api import ExactCountGrantViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("tokens", TokenViewSet, basename="token")
router.register("sources", SourceViewSet, basename="source")
router.register("projects", ProjectViewSet, basename="project")
router.register(r"projects/(?P<project_pk>\d+)/memberships", MembershipViewSet, basename="membership")
router.register("accounts/pending", PendingAccountViewSet, basename="pending-account")
router.register("cohort-definitions", DefinitionViewSet, basename="cohort-definition")
router.register("runs", RunViewSet, basename="run")
router.register("comparisons", ComparisonViewSet, basename="comparison")
router.register("audit-events", AuditEventViewSet, basename="audit-event")
router.register("concepts", ConceptViewSet, basename="concept")
router.register("concept-sets", ConceptSetViewSet, basename="concept-set")
router.register("dataset-requests", DatasetRequestViewSet, basename="dataset-request")
router.register("exact-count-grants", ExactCountGrantViewSet, basename="exact-count-grant")

app_name = "api"

urlpatterns = [
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Split: the start-up script is served at its own URL, as the CSP allows no inline script.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api:schema", template_name="api/swagger_ui.html"),
        name="docs",
    ),
    # Our own Redoc page: the packaged one loads web fonts from a CDN.
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema", template_name="api/redoc.html"), name="redoc"),
    # Anything else under /api/ answers JSON too, never the HTML 404 page.
    re_path(r"^(?P<path>.*)$", api_not_found, name="not_found"),
]
