"""Dataset requests, their review per site, the extracts the sites produce, and each site's dataset policy."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from datasets.choices import DateMode, LegalBasis, OutputFormat, RequestState, SiteDecision
from jobs.models import SiteJob


class DatasetPolicy(models.Model):
    """How one site releases row-level data. Missing row: the defaults below apply (``policy_for``).

    Lives in this app (one-to-one to the source) so that the warehouse app knows nothing of datasets.
    """

    source = models.OneToOneField("warehouse.Source", on_delete=models.CASCADE, related_name="dataset_policy")
    row_limit = models.PositiveIntegerField(default=1_000_000, help_text=_("Most rows a dataset may hold, all tables."))
    k_anonymity = models.PositiveIntegerField(default=5, validators=[MinValueValidator(2)])
    date_mode = models.CharField(max_length=20, choices=DateMode.choices, default=DateMode.SHIFT)
    date_shift_days = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1), MaxValueValidator(365)])
    max_age = models.PositiveIntegerField(default=89, validators=[MinValueValidator(1), MaxValueValidator(120)])
    link_valid_days = models.PositiveIntegerField(default=7, validators=[MinValueValidator(1)])
    max_downloads = models.PositiveIntegerField(default=3, validators=[MinValueValidator(1)])

    def __str__(self) -> str:
        return f"dataset policy of {self.source}"

    def as_dict(self) -> dict[str, object]:
        return {
            "row_limit": self.row_limit,
            "k_anonymity": self.k_anonymity,
            "date_mode": self.date_mode,
            "date_shift_days": self.date_shift_days,
            "max_age": self.max_age,
            "link_valid_days": self.link_valid_days,
            "max_downloads": self.max_downloads,
        }


class DatasetRequest(models.Model):
    """A request for a de-identified dataset of one cohort definition version on the sites of a project.

    ``selection`` maps table names to the requested columns (``datasets.catalogue``); ``days_before`` and
    ``days_after`` bound each event's date relative to the person's index date (first cohort entry). The state
    moves only through ``datasets.services`` along ``choices.TRANSITIONS``; every move is a ``RequestTransition``.
    """

    version = models.ForeignKey("cohorts.CohortDefinitionVersion", on_delete=models.PROTECT, related_name="+")
    project = models.ForeignKey("accounts.Project", on_delete=models.PROTECT, related_name="+")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="dataset_requests")
    sites = models.ManyToManyField("warehouse.Source", related_name="+")
    selection = models.JSONField(default=dict)
    days_before = models.PositiveIntegerField(default=365)
    days_after = models.PositiveIntegerField(default=365)
    purpose = models.TextField()
    legal_basis = models.CharField(max_length=30, choices=LegalBasis.choices)
    # Relative to SOYANG_DATASET_ROOT/documents: outside the static and media roots, served only through
    # the request's access check.
    document_path = models.CharField(max_length=300, blank=True)
    document_name = models.CharField(max_length=200, blank=True)
    document_type = models.CharField(max_length=50, blank=True)
    retention_days = models.PositiveIntegerField(default=7, validators=[MinValueValidator(1)])
    output_format = models.CharField(max_length=10, choices=OutputFormat.choices, default=OutputFormat.CSV)
    state = models.CharField(max_length=20, choices=RequestState.choices, default=RequestState.DRAFT, db_index=True)
    reason = models.TextField(blank=True, help_text=_("Why it was rejected, failed, revoked or withdrawn."))
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"dataset request {self.pk} ({self.get_state_display()})"


class RequestTransition(models.Model):
    """One move of a request's state: the timeline shown on its page (the audit log holds the same events)."""

    request = models.ForeignKey(DatasetRequest, on_delete=models.CASCADE, related_name="transitions")
    from_state = models.CharField(max_length=20, choices=RequestState.choices)
    to_state = models.CharField(max_length=20, choices=RequestState.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"request {self.request_id}: {self.from_state or '-'} -> {self.to_state}"


class SiteReview(models.Model):
    """A request at one site: the projection's numbers (cohort count and rows per table, computed by the site's
    worker: ``Projection``), and the decision of the site's data steward, who may narrow the columns and the window.

    The projection and the extraction write the request's cohort at the site under ``DATASET_COHORT_BASE + pk``;
    those rows are deleted once no job of the request runs there any more (``worker.retention``), which sets
    ``rows_pruned_at``."""

    request = models.ForeignKey(DatasetRequest, on_delete=models.CASCADE, related_name="reviews")
    source = models.ForeignKey("warehouse.Source", on_delete=models.PROTECT, related_name="+")
    cohort_persons = models.PositiveIntegerField(null=True, blank=True)
    projected_rows = models.JSONField(default=dict, blank=True)
    # The cell keys of those counts (0..255, computed at the site: ``extraction.project_rows``), with which everybody
    # but the site's stewards sees them perturbed (``rules.review_counts_as_seen_by``). None / {} for a projection
    # recorded before the sites computed keys: its counts are then shown to the stewards only.
    cohort_persons_key = models.PositiveSmallIntegerField(null=True, blank=True)
    projected_row_keys = models.JSONField(default=dict, blank=True)
    decision = models.CharField(max_length=20, choices=SiteDecision.choices, default=SiteDecision.PENDING)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(blank=True)
    # None: as requested. Otherwise a subset of the request's selection / a narrower window.
    narrowed_selection = models.JSONField(null=True, blank=True)
    narrowed_days_before = models.PositiveIntegerField(null=True, blank=True)
    narrowed_days_after = models.PositiveIntegerField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    rows_pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["source__key"]
        constraints = [models.UniqueConstraint(fields=["request", "source"], name="one_review_per_site")]

    def __str__(self) -> str:
        return f"review of request {self.request_id} at {self.source_id}"

    @property
    def projection_state(self) -> str:
        """The state of the site's projection job (``jobs.choices.JobState``)."""
        return self.projection.state

    @property
    def projection_error(self) -> str:
        return self.projection.error

    @property
    def projected_total(self) -> int:
        return sum(int(n) for n in (self.projected_rows or {}).values())

    def approved_selection(self) -> dict[str, list[str]]:
        return self.narrowed_selection if self.narrowed_selection is not None else self.request.selection

    def approved_window(self) -> tuple[int, int]:
        before = self.narrowed_days_before if self.narrowed_days_before is not None else self.request.days_before
        after = self.narrowed_days_after if self.narrowed_days_after is not None else self.request.days_after
        return before, after


class Projection(SiteJob):
    """The site job that projects a submitted request at one site (``jobs.lifecycle``): the worker generates the
    cohort and counts the rows each requested table would hold, and records them on the review. One per review,
    sharing its primary key, so that the task's ``review_id`` names both."""

    review = models.OneToOneField(SiteReview, on_delete=models.CASCADE, primary_key=True, related_name="projection")

    def __str__(self) -> str:
        return f"projection of review {self.pk}: {self.state}"


class Extract(SiteJob):
    """The de-identified dataset one site produced for a request: one zip under SOYANG_DATASET_ROOT; a site job
    (``jobs.lifecycle``). A revocation, expiry or another site's failure deletes its file (``files_deleted_at``) and
    cancels it while it is still to run.

    The secret that derived the pseudonyms and date offsets exists only in the worker's memory during the
    extraction: it is stored nowhere (not here, not in the file), so the mapping back to patients cannot be
    rebuilt from anything the portal holds.
    """

    request = models.ForeignKey(DatasetRequest, on_delete=models.CASCADE, related_name="extracts")
    source = models.ForeignKey("warehouse.Source", on_delete=models.PROTECT, related_name="+")
    file_path = models.CharField(max_length=300, blank=True)  # relative to SOYANG_DATASET_ROOT
    encrypted = models.BooleanField(default=False)
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)  # of the plain zip
    manifest = models.JSONField(default=dict, blank=True)
    download_count = models.PositiveIntegerField(default=0)
    max_downloads = models.PositiveIntegerField(default=3)
    expires_at = models.DateTimeField(null=True, blank=True)
    files_deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["source__key"]
        constraints = [models.UniqueConstraint(fields=["request", "source"], name="one_extract_per_site")]

    def __str__(self) -> str:
        return f"extract of request {self.request_id} at {self.source_id}"
