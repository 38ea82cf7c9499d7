"""Reads of the disclosure app: a site's policy, and the rule it gives a role."""

from __future__ import annotations

from accounts.choices import Role
from disclosure.models import DisclosurePolicy
from disclosure.ptable import cached_ptable
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


def rule_for(*, source: Source, role: str, grant: int | None = None) -> PrivacyRule:
    """The rule of a source for a role: the source's minimum cell size for everyone, every count perturbed by
    the source's ptable, and its rounding on top for the roles it marks aggregate-only (pharma partners by
    default).

    ``grant``: the id of an exact-count grant in force for the reader at this source (found by the caller,
    ``disclosure.grants``): the counts are then exact, still thresholded. Partners never get exact counts, grant
    or not.
    """
    policy = policy_for(source)
    min_cell = max(1, int(policy.min_cell_size or DEFAULT_MIN_CELL))
    roles = policy.aggregate_only_roles
    aggregate_only = set(roles if roles is not None else [Role.PARTNER.value])
    round_to = max(1, int(policy.round_to or DEFAULT_ROUND_TO) if role in aggregate_only else 1)
    if grant is not None and role != Role.PARTNER.value:
        return PrivacyRule(min_cell=min_cell, round_to=round_to, grant=grant)
    return PrivacyRule(min_cell=min_cell, round_to=round_to, ptable=cached_ptable(policy.ptable_parameters()))
