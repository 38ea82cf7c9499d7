"""Choices of the cohorts app."""

from __future__ import annotations

from django.db import models


class RunKind(models.TextChoices):
    COUNT = "count", "Count"
    GENERATE = "generate", "Generate"
    ATTRITION = "attrition", "Attrition"
    DEMOGRAPHICS = "demographics", "Demographics"


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATES = (RunState.QUEUED, RunState.RUNNING)
FINAL_STATES = (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)
