"""The state of a site job, or of a request over several, in the reader's language (pages render it first; their
scripts then keep it current with the same words)."""

from __future__ import annotations

from django import template
from django.utils.translation import gettext as _

from jobs.choices import JobState

register = template.Library()


@register.filter
def state_label(state: str) -> str:
    """``queued``, ``running``, ``succeeded``… (a job's state) or ``finished`` (every site's job is final)."""
    if state == "finished":
        return _("finished")
    if state in JobState.values:
        return str(JobState(state).label).lower()
    return state
