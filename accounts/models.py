"""Users, organisations and roles."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models

from accounts.choices import AccountStatus, Role


class Organisation(models.Model):
    """A hospital, university or company whose people use Soyang."""

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(
        max_length=20,
        choices=[("hospital", "Hospital"), ("academic", "Academic"), ("industry", "Industry"), ("other", "Other")],
        default="hospital",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A person with an account. Nobody sees anything before an admin approves the account with an
    organisation and a role."""

    email = models.EmailField("e-mail address", unique=True)
    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="members"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.RESEARCHER)
    status = models.CharField(max_length=20, choices=AccountStatus.choices, default=AccountStatus.PENDING)

    @property
    def is_approved(self) -> bool:
        return self.status == AccountStatus.APPROVED and self.is_active
