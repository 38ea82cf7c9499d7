"""E-mails about dataset requests, sent after the deciding transaction commits (never for a rolled-back one)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string


def notify(*, to: Iterable[str], context: dict[str, Any]) -> None:
    """One plain-text e-mail per recipient about a request's new state (``templates/datasets/email/``)."""
    recipients = sorted({address for address in to if address})
    if not recipients:
        return
    subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + " ".join(
        render_to_string("datasets/email/state_subject.txt", context).split()
    )
    body = render_to_string("datasets/email/state_body.txt", context)

    def send() -> None:
        for address in recipients:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address])

    transaction.on_commit(send)
