"""Choices of the cohorts runs; a run's state is a job state (``jobs.choices.JobState``)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class RunKind(models.TextChoices):
    COUNT = "count", _("Count")
    GENERATE = "generate", _("Generate")
    ATTRITION = "attrition", _("Attrition")
    # The value stays "demographics" (stored runs and API clients use it); the pages call it what it shows.
    DEMOGRAPHICS = "demographics", _("Characterization")
