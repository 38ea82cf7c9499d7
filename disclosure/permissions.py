"""Who may decide on a site's disclosure: the predicates the pages, the API and the services all ask."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser

from accounts.models import User
from accounts.permissions import is_admin, is_steward
from warehouse.models import Source


def is_site_steward(user: User | AnonymousUser, source: Source) -> bool:
    """An approved data steward of the organisation that owns the site."""
    return is_steward(user) and source.organisation_id is not None and source.organisation_id == user.organisation_id


def can_manage_exact_grants(user: User | AnonymousUser, source: Source) -> bool:
    """Granting and revoking exact counts at a site is its stewards' decision alone: they answer for the site's
    data. Admins manage sites and policies but do not take this decision for a hospital (they read the grants)."""
    return is_site_steward(user, source)


def can_read_exact_grants(user: User | AnonymousUser) -> bool:
    """The grants list: stewards (their organisation's sites) and admins (every site)."""
    return is_admin(user) or is_steward(user)
