"""The lifecycle fields every job a site runs shares; the concrete jobs live in the apps that own the work."""

from __future__ import annotations

from django.db import models

from jobs.choices import FINAL_STATES, JobState


class SiteJob(models.Model):
    """One piece of work done by a site's worker, as the portal records it (abstract).

    The worker claims the row with a lease it renews while it works (``jobs.lifecycle``); a worker that dies stops
    renewing, its message is delivered again, and the next worker takes the job over once the lease has lapsed.
    Only the holder of the current lease (``lease_token``) records the outcome, so a job has exactly one.
    """

    state = models.CharField(max_length=20, choices=JobState.choices, default=JobState.QUEUED, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    lease_token = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        abstract = True

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES
