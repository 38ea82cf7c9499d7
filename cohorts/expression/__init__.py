"""The cohort expression model: OHDSI ATLAS/Circe JSON parsed into typed, validated, immutable nodes.

Plain Python (no Django), shared by the services (validation on save), the compiler and the tests.
"""

from __future__ import annotations

from cohorts.expression.errors import ExpressionError
from cohorts.expression.nodes import (
    CohortExpression,
    ConceptSet,
    ConceptSetItem,
    ConceptSetSelection,
    CorrelatedCriteria,
    CriteriaGroup,
    Criterion,
    CustomEraStrategy,
    DateAdjustment,
    DateOffsetStrategy,
    DateRange,
    DemographicCriteria,
    Endpoint,
    InclusionRule,
    NumericRange,
    Occurrence,
    Period,
    PrimaryCriteria,
    TextFilter,
    Window,
)
from cohorts.expression.parser import MAX_CRITERIA, MAX_DEPTH, Draft, parse_draft, parse_expression

__all__ = [
    "MAX_CRITERIA",
    "MAX_DEPTH",
    "CohortExpression",
    "ConceptSet",
    "ConceptSetItem",
    "ConceptSetSelection",
    "CorrelatedCriteria",
    "CriteriaGroup",
    "Criterion",
    "CustomEraStrategy",
    "DateAdjustment",
    "DateOffsetStrategy",
    "DateRange",
    "DemographicCriteria",
    "Draft",
    "Endpoint",
    "ExpressionError",
    "InclusionRule",
    "NumericRange",
    "Occurrence",
    "Period",
    "PrimaryCriteria",
    "TextFilter",
    "Window",
    "parse_draft",
    "parse_expression",
]
