"""API endpoint of the exact-count grants: read-only, for the sites' stewards (their organisation's sites) and
admins (every site); nobody else learns it exists. Grants are made and revoked on the grants page, where the
steward signs in with the second factor.

Authentication, the approved-account permission (with the MFA rule for stewards and admins), pagination and the
error shape come from the API defaults in the settings (accounts/api/).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.request import Request

from disclosure.models import ExactCountGrant
from disclosure.permissions import can_read_exact_grants
from disclosure.selectors import exact_grant_state, exact_grants_visible_to


class ExactCountGrantSerializer(serializers.ModelSerializer):
    project_title = serializers.CharField(source="project.title", read_only=True)
    source = serializers.CharField(source="source.key", read_only=True)
    granted_by = serializers.CharField(source="granted_by.username", read_only=True)
    revoked_by = serializers.CharField(source="revoked_by.username", read_only=True, default=None, allow_null=True)
    state = serializers.SerializerMethodField()

    class Meta:
        model = ExactCountGrant
        fields = [
            "id",
            "project",
            "project_title",
            "source",
            "reason",
            "granted_by",
            "granted_at",
            "ends_at",
            "revoked_at",
            "revoked_by",
            "revocation_reason",
            "state",
        ]
        read_only_fields = fields

    def get_state(self, grant: ExactCountGrant) -> str:
        return exact_grant_state(grant)


@extend_schema_view(
    list=extend_schema(summary="Exact-count grants (stewards: their sites; admins: all), newest first"),
    retrieve=extend_schema(summary="One exact-count grant"),
)
class ExactCountGrantViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ExactCountGrantSerializer
    lookup_value_regex = r"[0-9]+"

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not can_read_exact_grants(request.user):
            raise Http404("No such page.")

    def get_queryset(self) -> QuerySet[ExactCountGrant]:
        return exact_grants_visible_to(self.request.user)
