"""The models of the cohorts app, which Django loads from this module; each lives in its subpackage."""

from __future__ import annotations

from cohorts.concept_sets.models import ConceptSet
from cohorts.definitions.models import CohortDefinition, CohortDefinitionVersion
from cohorts.runs.models import CohortRun, Comparison, ComparisonCohort, ComparisonRun, RunRequest

__all__ = [
    "CohortDefinition",
    "CohortDefinitionVersion",
    "CohortRun",
    "Comparison",
    "ComparisonCohort",
    "ComparisonRun",
    "ConceptSet",
    "RunRequest",
]
