"""Who may do what to a dataset request: the rules, once, as plain predicates.

The pages ask them to show only the buttons that would work, the API's viewset asks them for each action
(``object_rules``), and the services enforce them with ``require``: a rule and its message are written here and
nowhere else. Each answers with a ``Verdict``: true when allowed; when not, it carries the one translated sentence
that says why, which is the 403's message on a page and in the API alike.

These are rules about the person. Whether the request's state allows the act is the transitions' business
(``choices.TRANSITIONS``): a request in the wrong state answers 409, checked by the services after these rules, so
that a person who may not act at all hears that first. Seeing a request at all is ``selectors.requests_for_user``
(404 for everybody else). Common to all: nobody decides their own request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _

from accounts.models import User
from accounts.permissions import is_admin, projects_for_user, user_can
from cohorts.definitions.models import CohortDefinition
from datasets.extraction import requester_manifest
from datasets.models import DatasetRequest, Extract, SiteReview
from datasets.selectors import REQUEST_DATASET
from disclosure.permissions import is_site_steward
from disclosure.rules import shown
from disclosure.selectors import rule_for


@dataclass(frozen=True)
class Verdict:
    """A rule's answer: true when allowed; a refusal is false and says why (``str`` gives the sentence)."""

    refusal: str = ""

    def __bool__(self) -> bool:
        return not self.refusal

    def __str__(self) -> str:
        return self.refusal


ALLOWED = Verdict()


def require(verdict: Verdict) -> None:
    """Raise PermissionDenied with the refusal when the verdict refuses (the services' way to ask a rule)."""
    if not verdict:
        raise PermissionDenied(verdict.refusal)


def can_request_dataset(user: User, definition: CohortDefinition) -> Verdict:
    """The request permission on the definition, inside a running project the user works in (one definition;
    ``selectors.definitions_requestable`` is the same rule for a list)."""
    if definition.project_id is None or not user_can(user, REQUEST_DATASET, definition):
        return Verdict(_("You may not request a dataset for this definition."))
    if not projects_for_user(user).filter(pk=definition.project_id).exists():
        return Verdict(_("Datasets are requested inside a running project you work in."))
    return ALLOWED


def can_submit(user: User, request: DatasetRequest) -> Verdict:
    """The requester submits their draft; nobody else, not even an admin."""
    if request.requester_id != user.pk:
        return Verdict(_("Only the requester submits a request."))
    return ALLOWED


def can_withdraw(user: User, request: DatasetRequest) -> Verdict:
    """The requester takes back their own request; nobody else, not even an admin (stewards and admins revoke)."""
    if request.requester_id != user.pk:
        return Verdict(_("Only the requester withdraws a request."))
    return ALLOWED


def can_see_review_counts(user: User, review: SiteReview) -> Verdict:
    """Counts of patients (the projection) are for the site's stewards, who decide on them, and for admins; the
    requester sees the review's state only. How each sees them: ``review_counts_as_seen_by``."""
    if not (is_admin(user) or is_site_steward(user, review.source)):
        return Verdict(_("The patient counts of a site's review are for its data stewards and the admins."))
    return ALLOWED


def review_counts_as_seen_by(user: User, review: SiteReview) -> dict[str, Any] | None:
    """The projection of ``review`` (the cohort's persons, the rows of each table) as ``user`` may see it, with the
    rule that applied in words; None for whom it is not (``can_see_review_counts``).

    Exact for the site's stewards only: the numbers are their own site's, they decide on the request, and they
    must see what the row limit is checked against. Admins oversee the portal, not the site's data: they see each
    count perturbed with its own cell key (the persons, and each table's rows, as cells of their own) under the
    site's rule for their role, like every other count the site releases. A projection recorded before the sites
    computed cell keys is therefore not released to them ("not released").
    """
    if not can_see_review_counts(user, review):
        return None
    if is_site_steward(user, review.source):
        return {
            "cohort_persons": review.cohort_persons,
            "projected_rows": dict(review.projected_rows or {}),
            "rule": _("exact, for the site's data stewards"),
        }
    rule = rule_for(source=review.source, role=user.role)
    keys = review.projected_row_keys or {}
    persons = review.cohort_persons
    return {
        "cohort_persons": None if persons is None else shown(persons, rule, review.cohort_persons_key),
        "projected_rows": {table: shown(int(n), rule, keys.get(table)) for table, n in review.projected_rows.items()},
        "rule": rule.describe(),
    }


def can_see_extract_counts(user: User, extract: Extract) -> Verdict:
    """The exact figures of an extract (cohort size, persons suppressed for k-anonymity) are for the site's
    stewards only: the numbers are their site's. Everybody else who sees the extract, admins included, sees the
    cohort size as the requester does (perturbed under the site's rule for the requester's role)."""
    if not is_site_steward(user, extract.source):
        return Verdict(_("The exact counts of a site's dataset are for its data stewards."))
    return ALLOWED


def manifest_as_seen_by(user: User, extract: Extract) -> dict[str, Any]:
    """An extract's manifest as ``user`` may see it: whole (with the exact figures) for the site's stewards
    (``can_see_extract_counts``), otherwise as it is in the file the requester downloads."""
    if can_see_extract_counts(user, extract):
        return dict(extract.manifest)
    return requester_manifest(extract.manifest)


def can_decide_review(user: User, review: SiteReview) -> Verdict:
    """A data steward of the review's site decides for it, never on their own request; an admin who is not the
    site's steward does not decide either."""
    if review.request.requester_id == user.pk:
        return Verdict(_("Nobody approves or rejects their own request."))
    if not is_site_steward(user, review.source):
        return Verdict(_("Only a data steward of this site decides for it."))
    return ALLOWED


def can_revoke(user: User, request: DatasetRequest) -> Verdict:
    """Admins and the data stewards of one of the request's sites revoke it (its files are deleted at once)."""
    if not (is_admin(user) or any(is_site_steward(user, source) for source in request.sites.all())):
        return Verdict(_("Only a steward of one of the sites or an admin revokes a request."))
    return ALLOWED


def can_download(user: User, extract: Extract) -> Verdict:
    """The requester downloads a site's dataset of their request; nobody else, not even a steward or an admin."""
    if extract.request.requester_id != user.pk:
        return Verdict(_("Only the requester downloads the dataset."))
    return ALLOWED
