"""What a user asked to count (RunRequest) and the work of one site (CohortRun)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from cohorts.definitions.models import CohortDefinition, CohortDefinitionVersion
from cohorts.runs.choices import RunKind
from jobs.choices import ACTIVE_STATES
from jobs.models import SiteJob


class RunRequest(models.Model):
    """What a user asked for: one kind of result of one version on one or more sources. The work is done
    by one ``CohortRun`` per source, which identical requests share.

    A request without a version counts the builder's working draft of ``definition`` (its expression is on the
    runs): the builder counts what is on screen without saving a version each time. Such a request is its
    requester's scratch: only they see it, and a newer draft count of the same definition supersedes it.
    """

    definition = models.ForeignKey(CohortDefinition, on_delete=models.PROTECT, related_name="run_requests")
    version = models.ForeignKey(
        CohortDefinitionVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="requests"
    )
    kind = models.CharField(max_length=20, choices=RunKind.choices)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="run_requests")
    runs = models.ManyToManyField("CohortRun", related_name="requests")
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.version or f'{self.definition} (draft)'} by {self.requested_by}"

    @property
    def is_draft(self) -> bool:
        return self.version_id is None


class CohortRun(SiteJob):
    """The computation of one kind of result of one expression on one source, done by that site's worker.

    A site job (``jobs.models.SiteJob``): states move only forward, queued → running → succeeded | failed |
    cancelled. The worker claims the run with a lease it renews while the query runs; a redelivered message (its
    worker was killed) takes the run over only once the lease has lapsed, so a run has exactly one result.
    ``result`` holds aggregates only (never a patient row), before privacy rules: they are applied when the result
    leaves the service layer.
    Its cohort rows at the site (``<results>.cohort`` under ``cohort_definition_id = pk``) are deleted once it has
    been final for the retention period (``worker.retention``), which sets ``rows_pruned_at``.
    What it counts is ``version``'s expression, or, for a count of the builder's unsaved draft, the snapshot in
    ``expression`` (exactly one of the two is set): either way the cache key is the expression's hash, so a draft
    and a saved version with the same expression share one run.
    """

    version = models.ForeignKey(
        CohortDefinitionVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    expression = models.JSONField(null=True, blank=True)
    source = models.ForeignKey("warehouse.Source", on_delete=models.PROTECT, related_name="runs")
    kind = models.CharField(max_length=20, choices=RunKind.choices)
    cache_key = models.CharField(max_length=64, db_index=True)
    source_fingerprint = models.CharField(max_length=64)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    progress_label = models.CharField(max_length=200, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    database_seconds = models.FloatField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    rows_pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-queued_at", "-id"]
        constraints = [
            # Two identical requests arriving together run once: at most one active run per cache key.
            models.UniqueConstraint(
                fields=["cache_key"], condition=models.Q(state__in=ACTIVE_STATES), name="one_active_run_per_cache_key"
            ),
            models.CheckConstraint(
                condition=models.Q(version__isnull=False, expression__isnull=True)
                | models.Q(version__isnull=True, expression__isnull=False),
                name="run_counts_a_version_or_a_draft",
            ),
        ]
        indexes = [
            # The hourly prune looks for a site's runs whose rows are still at the site: once pruned, a run
            # leaves this index, so the look-up stays as small as the last day's runs however many accumulate.
            models.Index(
                fields=["source", "finished_at"],
                condition=models.Q(rows_pruned_at__isnull=True),
                name="run_rows_not_pruned",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk} {self.kind} of {self.version or 'a draft'} on {self.source.key}: {self.state}"

    @property
    def counted_expression(self) -> dict:
        """The Circe expression this run counts: its version's, or the draft snapshot it was started with."""
        return self.version.expression if self.version is not None else self.expression


class CountStoreSync(SiteJob):
    """One sync of a PostgreSQL site's count store (``warehouse.count_store``), done by the site's worker.

    A site job like a run: claimed with a lease renewed while the copy runs, exactly one outcome. Asked for by a
    steward or admin (``requested_by``), by the beat's check when the store is missing or stale (``schedule``), or
    by a count that found the store stale (``stale``). At most one is active per site.
    """

    class Trigger(models.TextChoices):
        STEWARD = "steward", _("asked for by a steward or admin")
        SCHEDULE = "schedule", _("the periodic check found the store missing or stale")
        STALE = "stale", _("a count found the store stale")
        COMMAND = "command", _("the sync_count_store command")

    source = models.ForeignKey("warehouse.Source", on_delete=models.CASCADE, related_name="count_store_syncs")
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    queued_at = models.DateTimeField(auto_now_add=True)
    #: The outcome: the CDM fingerprint copied, the store's size, rows per table, the copy's duration.
    fingerprint = models.CharField(max_length=64, blank=True)
    bytes = models.BigIntegerField(null=True, blank=True)
    rows = models.JSONField(default=dict, blank=True)
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-queued_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source"], condition=models.Q(state__in=ACTIVE_STATES), name="one_active_store_sync_per_site"
            )
        ]

    def __str__(self) -> str:
        return f"count store sync {self.pk} of {self.source.key}: {self.state}"


class Comparison(models.Model):
    """A user's comparison of two to four definitions: how many persons are in each combination of their cohorts
    (A only, A and B, ...), per site and merged. What is compared is each definition's latest version when the
    comparison was asked for (``ComparisonCohort``, in the order chosen: the order is the bit of each cohort in
    the membership masks). The work is one ``ComparisonRun`` per site.

    A comparison is its requester's own analysis: only they see it, and only while they may still count every
    one of its definitions on a site (``cohorts.runs.comparison_selectors``).
    """

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="comparisons")
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"comparison {self.pk} by {self.requested_by}"

    def ordered_cohorts(self) -> list[ComparisonCohort]:
        """The compared versions in the order of their bits (cohort 1 is bit 0)."""
        return list(self.cohorts.select_related("version__definition").order_by("position"))


class ComparisonCohort(models.Model):
    """One compared version; ``position`` (0-3) is its bit in the membership masks of the comparison's results."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="cohorts")
    position = models.PositiveSmallIntegerField()
    version = models.ForeignKey(CohortDefinitionVersion, on_delete=models.PROTECT, related_name="comparisons")

    class Meta:
        ordering = ["comparison", "position"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "position"], name="one_cohort_per_comparison_position"),
            models.UniqueConstraint(fields=["comparison", "version"], name="a_version_once_per_comparison"),
            models.CheckConstraint(condition=models.Q(position__lte=3), name="comparison_of_at_most_four_cohorts"),
        ]

    def __str__(self) -> str:
        return f"{self.comparison} #{self.position + 1}: {self.version}"


class ComparisonRun(SiteJob):
    """The overlap of a comparison's cohorts at one site, computed by that site's worker in one counting
    transaction (``cohorts.runs.overlap``). A site job like ``CohortRun`` (claim, lease, renew, cancel, one
    outcome). ``result`` holds aggregates only, before privacy rules: each cohort's persons and cell key, and
    for every combination of the cohorts (each non-zero membership mask, all of them, empty ones included) its
    persons and cell key. Never a person id.
    """

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="runs")
    source = models.ForeignKey("warehouse.Source", on_delete=models.PROTECT, related_name="comparison_runs")
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    progress_label = models.CharField(max_length=200, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    database_seconds = models.FloatField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["comparison", "source__key"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "source"], name="one_comparison_run_per_site"),
        ]

    def __str__(self) -> str:
        return f"comparison run {self.pk} of {self.comparison_id} on {self.source.key}: {self.state}"
