"""The disclosure policy of each site: what of its counts may leave the portal, and for whom."""

from __future__ import annotations

from fractions import Fraction

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from accounts.choices import Role
from disclosure.ptable import DEFAULT_MAX_ADJUSTMENT, DEFAULT_VARIANCE, PtableError, PtableParameters
from disclosure.rules import DEFAULT_MIN_CELL, DEFAULT_ROUND_TO


def default_aggregate_only_roles() -> list[str]:
    return [Role.PARTNER.value]


class DisclosurePolicy(models.Model):
    """The disclosure policy of one site (source), applied to every number of that site before it leaves the
    service layer and shown next to it (``disclosure.rules``): counts from 1 to ``min_cell_size`` - 1 are hidden;
    every other count is perturbed by the site's ptable (``perturbation_max_adjustment`` D and
    ``perturbation_variance`` V, with the threshold ``min_cell_size``; ``disclosure.ptable``) unless a grant makes
    a project's counts exact; the roles listed in ``aggregate_only_roles`` also get counts rounded to the nearest
    ``round_to``.

    A source without a row has the defaults of these fields (``disclosure.selectors.policy_for``): a new site
    discloses nothing more than the defaults until an admin says otherwise.
    """

    source = models.OneToOneField("warehouse.Source", on_delete=models.CASCADE, related_name="disclosure_policy")
    min_cell_size = models.PositiveIntegerField(
        default=DEFAULT_MIN_CELL,
        validators=[MinValueValidator(1)],
        help_text="Counts from 1 to this minus one are hidden.",
    )
    round_to = models.PositiveIntegerField(
        default=DEFAULT_ROUND_TO,
        validators=[MinValueValidator(1)],
        help_text="Aggregate-only roles see counts rounded to this.",
    )
    aggregate_only_roles = models.JSONField(
        default=default_aggregate_only_roles,
        blank=True,
        help_text="Roles that see rounded aggregate counts only (e.g. partner).",
    )
    perturbation_max_adjustment = models.PositiveSmallIntegerField(
        default=DEFAULT_MAX_ADJUSTMENT,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text="The ptable's maximum adjustment D: no released count moves further than this from the truth.",
    )
    perturbation_variance = models.CharField(
        max_length=20,
        default=str(DEFAULT_VARIANCE),
        help_text="The ptable's variance V (a number such as 2 or 3/2, a multiple of 1/128).",
    )

    class Meta:
        verbose_name_plural = "disclosure policies"

    def __str__(self) -> str:
        return f"disclosure policy of {self.source}"

    def ptable_parameters(self) -> PtableParameters:
        """The parameters of the site's ptable; raises ``PtableError`` when they make no valid table."""
        try:
            variance = Fraction(str(self.perturbation_variance).strip())
        except (ValueError, ZeroDivisionError):
            text = self.perturbation_variance
            raise PtableError(f"the variance must be a number such as 2 or 3/2, not {text!r}") from None
        parameters = PtableParameters(
            max_adjustment=int(self.perturbation_max_adjustment or DEFAULT_MAX_ADJUSTMENT),
            variance=variance,
            threshold=max(1, int(self.min_cell_size or DEFAULT_MIN_CELL)),
        )
        parameters.validate()
        return parameters

    def clean(self) -> None:
        super().clean()
        try:
            self.ptable_parameters()
        except PtableError as exc:
            raise ValidationError({"perturbation_variance": str(exc)}) from None


class ExactCountGrant(models.Model):
    """A site steward's decision that one project's counts at that site are released exact — still under the
    site's threshold — instead of perturbed (issue 15: perturbed is the default for every role).

    In force (``disclosure.selectors.grants_in_force``) while it is not revoked, its last day ``ends_at`` has not
    passed, and its project runs (``accounts.permissions.running_projects_q``): ending the project or reaching the
    date ends it at once, with nothing to run. Whom it reaches is decided when a count is read, never stored: the
    project's approved members of that day, partners never (``disclosure.selectors.exact_grants_for``). Made and
    revoked only through ``disclosure.services``, which validate and audit; the Django admin shows it read-only.
    """

    project = models.ForeignKey("accounts.Project", on_delete=models.PROTECT, related_name="+")
    source = models.ForeignKey("warehouse.Source", on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(help_text="Why the project needs exact counts, with its IRB protocol.")
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    granted_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateField(help_text="The last day the grant is in force (the project's end ends it earlier).")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revocation_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-granted_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(revoked_at__isnull=True, revoked_by__isnull=True)
                | models.Q(revoked_at__isnull=False, revoked_by__isnull=False),
                name="exact_count_grant_revoked_by_whom",
            )
        ]

    def __str__(self) -> str:
        return f"exact counts #{self.pk}: project {self.project_id} at {self.source_id}"
