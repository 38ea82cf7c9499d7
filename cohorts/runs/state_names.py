"""A count's states in words of the reader's language, for pages: ``state`` stays the stable code the scripts,
the API and the CSV read (``jobs.choices.JobState`` per site; ``selectors.run_request_result`` for the request),
and pages show ``state_label`` beside it."""

from __future__ import annotations

from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

NAMES: dict[str, Promise] = {
    # A site's job (jobs.choices.JobState).
    "queued": _("queued"),
    "running": _("running"),
    "succeeded": _("succeeded"),
    "failed": _("failed"),
    "cancelled": _("cancelled"),
    # A request over its sites (selectors.run_request_state and run_request_result).
    "finished": _("finished"),
    "partial": _("some sites failed"),
}


def state_label(state: str) -> str:
    name = NAMES.get(state)
    return state if name is None else str(name)


def result_with_state_labels(result: dict[str, Any]) -> dict[str, Any]:
    """A run result with ``state_label`` beside the request's and every site's ``state``, in the active language."""
    out = dict(result)
    if isinstance(out.get("state"), str):
        out["state_label"] = state_label(out["state"])
    if isinstance(out.get("sites"), list):
        out["sites"] = [
            {**site, "state_label": state_label(site["state"])} if isinstance(site.get("state"), str) else site
            for site in out["sites"]
        ]
    return out
