"""Reads of the disclosure app: a site's policy, and the rule it gives a role."""

from __future__ import annotations

from accounts.choices import Role
from disclosure.models import DisclosurePolicy
from disclosure.rules import DEFAULT_MIN_CELL, DEFAULT_ROUND_TO, PrivacyRule
from warehouse.models import Source


def policy_for(source: Source) -> DisclosurePolicy:
    """The site's disclosure policy; a site nobody has configured gets the defaults (an unsaved policy).

    One query per source instance at most: Django keeps the related row (or its absence) on the instance, and
    ``select_related("disclosure_policy")`` saves even that one.
    """
    try:
        return source.disclosure_policy
    except DisclosurePolicy.DoesNotExist:
        return DisclosurePolicy(source=source)


def rule_for(*, source: Source, role: str) -> PrivacyRule:
    """The rule of a source for a role: the source's minimum cell size for everyone, and its rounding on top
    for the roles it marks aggregate-only (pharma partners by default)."""
    policy = policy_for(source)
    min_cell = int(policy.min_cell_size or DEFAULT_MIN_CELL)
    roles = policy.aggregate_only_roles
    aggregate_only = set(roles if roles is not None else [Role.PARTNER.value])
    round_to = int(policy.round_to or DEFAULT_ROUND_TO) if role in aggregate_only else 1
    return PrivacyRule(min_cell=max(1, min_cell), round_to=max(1, round_to))
