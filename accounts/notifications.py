"""E-mails about decisions, sent after the deciding transaction commits (never for a rolled-back decision)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string


def notify(*, to: Iterable[str], template: str, context: dict[str, Any], folder: str = "accounts/email") -> None:
    """Queue one plain-text e-mail per recipient for after the commit. ``template`` names
    ``templates/<folder>/<template>_subject.txt`` and ``_body.txt``. The templates get ``base_url``
    (``SOYANG_BASE_URL``): a link in an e-mail is read outside the portal, so it must be absolute."""
    recipients = sorted({address for address in to if address})
    if not recipients:
        return
    context = {**context, "base_url": settings.SOYANG_BASE_URL.rstrip("/")}
    subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + " ".join(
        render_to_string(f"{folder}/{template}_subject.txt", context).split()
    )
    body = render_to_string(f"{folder}/{template}_body.txt", context)

    def send() -> None:
        for address in recipients:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address])

    transaction.on_commit(send)
