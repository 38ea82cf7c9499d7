"""Choices of the cohorts runs; a run's state is a job state (``jobs.choices.JobState``)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class RunKind(models.TextChoices):
    COUNT = "count", _("Count")
    # With a context: allauth's recovery-codes page has its own "Generate" button, which is not a cohort.
    GENERATE = "generate", pgettext_lazy("run kind", "Generate")
    ATTRITION = "attrition", _("Attrition")
    # The value stays "demographics" (stored runs and API clients use it); the pages call it what it shows.
    DEMOGRAPHICS = "demographics", _("Characterization")
