"""Reads of the datasets app, always filtered by permission.

Who sees a dataset request: its requester (object permission ``view_datasetrequest``, granted at creation), the
data stewards of the organisations owning one of its sites, and admins. Anybody else gets 404, exactly as for a
request that does not exist.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404

from accounts.models import User
from accounts.permissions import filter_by_permission, is_steward, projects_for_user
from cohorts.definitions.models import CohortDefinition
from datasets.choices import REVIEW_OPEN_STATES, SITE_WORK_OVER_STATES, SiteDecision
from datasets.models import DatasetPolicy, DatasetRequest, Extract, SiteReview
from warehouse.models import Source

VIEW = "view_datasetrequest"
REQUEST_DATASET = "request_dataset_cohortdefinition"


def policy_for(source: Source) -> DatasetPolicy:
    """The site's dataset policy; the defaults (unsaved) when the site has none."""
    return DatasetPolicy.objects.filter(source=source).first() or DatasetPolicy(source=source)


def requests_for_user(user: User) -> QuerySet[DatasetRequest]:
    """The requests the user may see, newest first."""
    visible = filter_by_permission(queryset=DatasetRequest.objects.all(), user=user, codename=VIEW)
    condition = Q(pk__in=visible.values("pk"))
    if is_steward(user):
        condition |= Q(sites__organisation_id=user.organisation_id)
    return (
        DatasetRequest.objects.filter(condition)
        .distinct()
        .select_related("version__definition", "project", "requester")
        .order_by("-created_at", "-id")
    )


def request_get_for_user(user: User, pk: int) -> DatasetRequest:
    request = requests_for_user(user).filter(pk=pk).first()
    if request is None:
        raise Http404("No such dataset request.")
    return request


def review_get_for_user(user: User, pk: int) -> SiteReview:
    """A site review of a request the user may see; 404 otherwise."""
    review = SiteReview.objects.select_related("request", "source").filter(pk=pk).first()
    if review is None or not requests_for_user(user).filter(pk=review.request_id).exists():
        raise Http404("No such review.")
    return review


def reviews_awaiting(user: User) -> QuerySet[SiteReview]:
    """The steward's queue: undecided reviews of their sites, of requests under review or being projected (a
    withdrawn, rejected or revoked request leaves the queue, its undecided reviews with it)."""
    if not is_steward(user):
        return SiteReview.objects.none()
    return (
        SiteReview.objects.filter(
            source__organisation_id=user.organisation_id,
            decision=SiteDecision.PENDING,
            request__state__in=REVIEW_OPEN_STATES,
        )
        .select_related("request__version__definition", "request__requester", "source", "projection")
        .order_by("request__created_at")
    )


def reviews_rows_due(*, source: Source, cutoff: datetime) -> QuerySet[SiteReview]:
    """The reviews at ``source`` whose cohort rows (id ``DATASET_COHORT_BASE + pk``) the site may delete: rows not
    yet pruned, of a request where no job starts any more (``SITE_WORK_OVER_STATES``, absorbing) since before
    ``cutoff``, and no projection or extraction of it at this site finished after ``cutoff`` or holds a lease
    running past it.

    A worker holds its job by a lease (``services.LEASE``) cleared when it finishes: a lease still live means a
    worker may still be writing or reading the rows (a revocation or another site's failure asks a running
    extract's worker to stop, and it goes on until it finishes). For the projection the retention counts from the
    request's last move (``updated_at``), its closing (a later move, a download or the expiry, only postpones the
    prune). A projection still running at a withdrawal, rejection or revocation is covered by its
    lease while it runs; once it has finished, its rows may go sooner after its end than the retention says, but
    nothing reads them any more: the request is closed.
    """
    busy_extract = Extract.objects.filter(request=OuterRef("request"), source=OuterRef("source")).filter(
        Q(lease_expires_at__gt=cutoff) | Q(finished_at__gt=cutoff)
    )
    return (
        SiteReview.objects.filter(
            source=source,
            rows_pruned_at__isnull=True,
            request__state__in=SITE_WORK_OVER_STATES,
            request__updated_at__lte=cutoff,
        )
        .filter(Q(projection__lease_expires_at__isnull=True) | Q(projection__lease_expires_at__lte=cutoff))
        .exclude(Exists(busy_extract))
        .order_by("pk")
    )


def extract_get_for_user(user: User, pk: int) -> Extract:
    extract = Extract.objects.select_related("request", "source").filter(pk=pk).first()
    if extract is None or not requests_for_user(user).filter(pk=extract.request_id).exists():
        raise Http404("No such dataset.")
    return extract


def definitions_requestable(user: User) -> QuerySet[CohortDefinition]:
    """Definitions the user may request a dataset for: the permission, in a running project of theirs."""
    allowed = filter_by_permission(queryset=CohortDefinition.objects.all(), user=user, codename=REQUEST_DATASET)
    return allowed.filter(project__in=projects_for_user(user)).select_related("project").order_by("name")
