"""Template helpers of the datasets app, for pages of other apps (e.g. the "Request dataset" button)."""

from __future__ import annotations

from django import template

from accounts.models import User
from cohorts.definitions.models import CohortDefinition
from datasets import rules

register = template.Library()


@register.filter
def can_request_dataset(definition: CohortDefinition, user: User) -> bool:
    """Whether ``user`` may request a dataset for ``definition`` (``rules.can_request_dataset``, as the service)."""
    return bool(rules.can_request_dataset(user, definition))
