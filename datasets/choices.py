"""Choices of the datasets app."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class RequestState(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SUBMITTED = "submitted", _("Submitted")
    UNDER_REVIEW = "under_review", _("Under review")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    EXTRACTING = "extracting", _("Extracting")
    FAILED = "failed", _("Extraction failed")
    READY = "ready", _("Ready")
    DOWNLOADED = "downloaded", _("Downloaded")
    EXPIRED = "expired", _("Expired")
    REVOKED = "revoked", _("Revoked")
    WITHDRAWN = "withdrawn", _("Withdrawn")


#: The only moves of a request. Services check every transition against this table.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    RequestState.DRAFT: (RequestState.SUBMITTED, RequestState.WITHDRAWN),
    RequestState.SUBMITTED: (
        RequestState.UNDER_REVIEW,
        RequestState.REJECTED,
        RequestState.REVOKED,
        RequestState.WITHDRAWN,
    ),
    RequestState.UNDER_REVIEW: (
        RequestState.APPROVED,
        RequestState.REJECTED,
        RequestState.REVOKED,
        RequestState.WITHDRAWN,
    ),
    RequestState.APPROVED: (RequestState.EXTRACTING, RequestState.REVOKED),
    RequestState.EXTRACTING: (RequestState.READY, RequestState.FAILED, RequestState.REVOKED),
    RequestState.READY: (RequestState.DOWNLOADED, RequestState.EXPIRED, RequestState.REVOKED),
    RequestState.DOWNLOADED: (RequestState.EXPIRED, RequestState.REVOKED),
    RequestState.REJECTED: (),
    RequestState.FAILED: (),
    RequestState.EXPIRED: (),
    RequestState.REVOKED: (),
    RequestState.WITHDRAWN: (),
}

#: States from which the requester may still withdraw: before the sites approved the whole request.
WITHDRAWABLE_STATES = tuple(state for state, targets in TRANSITIONS.items() if RequestState.WITHDRAWN in targets)

#: Closed states: no move leaves them (rejected, failed, expired, revoked, withdrawn).
CLOSED_STATES = tuple(state for state, targets in TRANSITIONS.items() if not targets)

#: States in which the sites' projections and reviews are still wanted (the stewards' queues list these).
REVIEW_OPEN_STATES = (RequestState.SUBMITTED, RequestState.UNDER_REVIEW)

#: States in which files may exist on disk (and must be deleted on revocation or expiry).
DELIVERABLE_STATES = (RequestState.READY, RequestState.DOWNLOADED)

#: States in which no projection or extraction of the request starts any more at any site: every state reachable
#: from these is one of them too. Only then are the request's cohort rows at the sites no longer needed; before,
#: an approval would start an extraction that writes and reads them (``worker.retention``).
SITE_WORK_OVER_STATES = (
    RequestState.REJECTED,
    RequestState.FAILED,
    RequestState.READY,
    RequestState.DOWNLOADED,
    RequestState.EXPIRED,
    RequestState.REVOKED,
    RequestState.WITHDRAWN,
)


class LegalBasis(models.TextChoices):
    IRB = "irb", _("IRB approval")
    DUA = "dua", _("Data-use agreement")
    CONSENT = "consent", _("Informed consent")
    PIPA_PSEUDONYM = "pipa_pseudonymised", _("PIPA art. 28-2: pseudonymised data for research")


class OutputFormat(models.TextChoices):
    CSV = "csv", _("CSV")
    PARQUET = "parquet", _("Parquet")


class DateMode(models.TextChoices):
    SHIFT = "shift", _("Shift each person's dates by a random offset")
    YEAR_MONTH = "year_month", _("Reduce dates to year and month")


class SiteDecision(models.TextChoices):
    PENDING = "pending", _("Pending")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
