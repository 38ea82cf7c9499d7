"""Template helpers of the datasets app, for pages of other apps (e.g. the "Request dataset" button)."""

from __future__ import annotations

from typing import Any

from django import template

from datasets.selectors import definitions_requestable

register = template.Library()


@register.filter
def can_request_dataset(definition: Any, user: Any) -> bool:
    """Whether ``user`` may request a dataset for ``definition`` (same rule as the request page)."""
    return definitions_requestable(user).filter(pk=definition.pk).exists()
