"""Users, organisations and roles."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, Group
from django.db import models

from accounts.choices import AccountStatus, MembershipStatus, ProjectRole, Role


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
    # Why the account was last rejected or suspended, shown to the person and kept in the audit log too.
    status_reason = models.TextField(blank=True)

    @property
    def is_approved(self) -> bool:
        return self.status == AccountStatus.APPROVED and self.is_active


class Project(models.Model):
    """A research project: the unit of approval. Members see and run only what their project allows, on
    the sites the project may query (``project.sources``, a relation the sites declare: accounts refers to no
    other app), between its start and expiry dates."""

    title = models.CharField(max_length=200)
    purpose = models.TextField()
    approval_number = models.CharField("IRB or approval number", max_length=100)
    principal_investigator = models.ForeignKey(User, on_delete=models.PROTECT, related_name="led_projects")
    organisation = models.ForeignKey(Organisation, null=True, blank=True, on_delete=models.PROTECT)
    starts_on = models.DateField()
    expires_on = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]
        permissions = [("run_project", "Run counts in the project")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_on__gte=models.F("starts_on")), name="project_dates_ordered"
            )
        ]

    def __str__(self) -> str:
        return self.title


class ProjectMembership(models.Model):
    """A person's place in a project. Joining is a request approved by the project owner and the site's
    data steward; only approved memberships of a running project give access."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=ProjectRole.choices, default=ProjectRole.ANALYST)
    status = models.CharField(max_length=20, choices=MembershipStatus.choices, default=MembershipStatus.REQUESTED)
    owner_approved_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    steward_approved_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_project")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role}, {self.status})"


class ProjectGroup(models.Model):
    """The guardian group of one role in one project. Objects shared with a project carry object permissions
    for these groups; approved members sit in the group of their role. ``accounts.permissions`` honours a
    group's permissions only while the project runs, so expiry needs no clean-up job."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="groups")
    role = models.CharField(max_length=20, choices=ProjectRole.choices)
    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="soyang_project_group")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "role"], name="one_group_per_project_role")]

    def __str__(self) -> str:
        return f"{self.project} · {self.get_role_display()}"


class ApiToken(models.Model):
    """A personal token for scripts calling the REST API (``Authorization: Token <secret>``).

    Only the SHA-256 of the secret is stored: the secret is shown once, when the token is made, and a stolen
    database dump cannot be replayed against the API. A token acts as its user, with the user's permissions of
    the moment; it stops working when it expires, when it is revoked, or when the account is no longer approved.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The first characters of the secret, shown in lists so that a person can tell their tokens apart.
    prefix = models.CharField(max_length=16)
    secret_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
