"""The disclosure policy of each site: what of its counts may leave the portal, and for whom."""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models

from accounts.choices import Role
from disclosure.rules import DEFAULT_MIN_CELL, DEFAULT_ROUND_TO


def default_aggregate_only_roles() -> list[str]:
    return [Role.PARTNER.value]


class DisclosurePolicy(models.Model):
    """The disclosure policy of one site (source), applied to every number of that site before it leaves the
    service layer and shown next to it (``disclosure.rules``): counts from 1 to ``min_cell_size`` - 1 are hidden;
    the roles listed in ``aggregate_only_roles`` also get counts rounded to the nearest ``round_to``.

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

    class Meta:
        verbose_name_plural = "disclosure policies"

    def __str__(self) -> str:
        return f"disclosure policy of {self.source}"
