"""Serializers of the accounts endpoints: tokens, projects, memberships, pending accounts. Input serializers only
validate shapes; the services decide and write."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from accounts.api.fields import StrictCharField, StrictIntegerField
from accounts.api.tokens import token_is_live
from accounts.choices import Role
from accounts.models import ApiToken, Project, ProjectMembership, User


class TokenSerializer(serializers.ModelSerializer):
    live = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at", "live"]
        read_only_fields = fields

    def get_live(self, token: ApiToken) -> bool:
        return token_is_live(token)


class TokenCreateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=100, single_line=True)
    days = StrictIntegerField(min_value=1, max_value=3650, default=90)

    def validate_days(self, value: int) -> int:
        if value > settings.SOYANG_API_TOKEN_MAX_DAYS:
            raise serializers.ValidationError(
                f"A token is valid for at most {settings.SOYANG_API_TOKEN_MAX_DAYS} days."
            )
        return value


class TokenCreatedSerializer(TokenSerializer):
    secret = serializers.CharField(help_text="Shown once, now: store it; Soyang keeps only its hash.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class ProjectSerializer(serializers.ModelSerializer):
    principal_investigator = serializers.CharField(source="principal_investigator.username", read_only=True)
    sources = serializers.SlugRelatedField(slug_field="key", many=True, read_only=True)

    class Meta:
        model = Project
        fields = [
            "id",
            "title",
            "purpose",
            "approval_number",
            "principal_investigator",
            "starts_on",
            "expires_on",
            "sources",
        ]
        read_only_fields = fields


class ProjectTitleSerializer(serializers.ModelSerializer):
    """What anybody approved may see of a running project before joining it: its title and investigator."""

    principal_investigator = serializers.CharField(source="principal_investigator.username", read_only=True)

    class Meta:
        model = Project
        fields = ["id", "title", "principal_investigator", "starts_on", "expires_on"]
        read_only_fields = fields


class MembershipSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)
    owner_approved_by = serializers.CharField(source="owner_approved_by.username", read_only=True, allow_null=True)
    steward_approved_by = serializers.CharField(source="steward_approved_by.username", read_only=True, allow_null=True)

    class Meta:
        model = ProjectMembership
        fields = [
            "id",
            "project",
            "user",
            "role",
            "status",
            "owner_approved_by",
            "steward_approved_by",
            "requested_at",
            "decided_at",
            "reason",
        ]
        read_only_fields = fields


class ReasonSerializer(serializers.Serializer):
    reason = StrictCharField(max_length=2000, help_text="Told to the person and kept in the audit log.")


class PendingAccountSerializer(serializers.ModelSerializer):
    organisation = serializers.CharField(source="organisation.name", read_only=True, allow_null=True)
    email_verified = serializers.BooleanField(read_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "email", "first_name", "last_name", "organisation", "date_joined", "email_verified"]
        read_only_fields = fields


class AccountApproveSerializer(serializers.Serializer):
    organisation = StrictCharField(
        max_length=200, single_line=True, help_text="Name of the organisation the person joins."
    )
    role = serializers.ChoiceField(choices=Role.choices)
