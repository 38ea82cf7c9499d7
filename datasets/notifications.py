"""E-mails about dataset requests, sent after the deciding transaction commits (never for a rolled-back one)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from accounts.notifications import notify as _notify


def notify(*, to: Iterable[str], context: dict[str, Any]) -> None:
    """One plain-text e-mail per recipient about a request's new state (``templates/datasets/email/``)."""
    _notify(to=to, template="state", context=context, folder="datasets/email")
