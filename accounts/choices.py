"""Choices of the accounts app."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    RESEARCHER = "researcher", _("Researcher")
    PARTNER = "partner", _("Pharma partner")
    STEWARD = "steward", _("Data steward")
    ADMIN = "admin", _("Administrator")


class AccountStatus(models.TextChoices):
    PENDING = "pending", _("Pending approval")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    SUSPENDED = "suspended", _("Suspended")


class ProjectRole(models.TextChoices):
    OWNER = "owner", _("Owner")
    ANALYST = "analyst", _("Analyst")
    PARTNER_VIEWER = "partner_viewer", _("Partner viewer")


class MembershipStatus(models.TextChoices):
    REQUESTED = "requested", _("Requested")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    REVOKED = "revoked", _("Revoked")
