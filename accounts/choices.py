"""Choices of the accounts app."""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    RESEARCHER = "researcher", "Researcher"
    PARTNER = "partner", "Pharma partner"
    STEWARD = "steward", "Data steward"
    ADMIN = "admin", "Administrator"


class AccountStatus(models.TextChoices):
    PENDING = "pending", "Pending approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    SUSPENDED = "suspended", "Suspended"


class ProjectRole(models.TextChoices):
    OWNER = "owner", "Owner"
    ANALYST = "analyst", "Analyst"
    PARTNER_VIEWER = "partner_viewer", "Partner viewer"


class MembershipStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    REVOKED = "revoked", "Revoked"
