"""Typed, immutable nodes of an OHDSI ATLAS/Circe cohort expression.

The nodes carry what the compiler needs, already validated (integers are ``int``, dates are ``date``, enums are
upper-cased strings of a known set). The JSON the user gave is kept beside the tree (``CohortExpression.raw``)
so that serializing is lossless: fields the compiler does not read (names, captions, vocabulary metadata,
fields of future ATLAS versions) are never dropped or re-ordered.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any


@dataclass(frozen=True)
class ConceptSetItem:
    """One concept of a concept set with its flags."""

    concept_id: int
    is_excluded: bool = False
    include_descendants: bool = False
    include_mapped: bool = False


@dataclass(frozen=True)
class ConceptSet:
    """A named list of concepts (``ConceptSets[i]``); criteria refer to it by ``id`` (``CodesetId``)."""

    id: int
    name: str
    items: tuple[ConceptSetItem, ...]


@dataclass(frozen=True)
class NumericRange:
    """``{"Op": "gt", "Value": 18, "Extent": 65}``; ``op`` is one of lt lte eq !eq gt gte bt !bt."""

    op: str
    value: float | int
    extent: float | int | None = None


@dataclass(frozen=True)
class DateRange:
    """A date comparison; ``op`` as in ``NumericRange``."""

    op: str
    value: date
    extent: date | None = None


@dataclass(frozen=True)
class TextFilter:
    """A LIKE filter; ``op`` is one of startsWith contains endsWith, optionally negated with ``!``."""

    op: str
    text: str


@dataclass(frozen=True)
class ConceptSetSelection:
    """``{"CodesetId": 3, "IsExclusion": false}`` — a column in (or not in) a concept set."""

    codeset_id: int | None
    is_exclusion: bool = False


@dataclass(frozen=True)
class Period:
    """A user-defined period (``UserDefinedPeriod``) or a censor window: either bound may be missing."""

    start_date: date | None = None
    end_date: date | None = None


@dataclass(frozen=True)
class DateAdjustment:
    """Shift of an event's start/end date (``DateAdjustment``)."""

    start_with: str = "START_DATE"
    start_offset: int = 0
    end_with: str = "END_DATE"
    end_offset: int = 0


AttributeValue = bool | int | NumericRange | DateRange | TextFilter | ConceptSetSelection | Period | tuple[int, ...]


@dataclass(frozen=True)
class Criterion:
    """One domain criterion, e.g. ``{"ConditionOccurrence": {...}}``.

    ``attributes`` holds the domain's filters by their JSON names (``"First"``, ``"Age"``, ``"ConditionType"`` …),
    typed: concept lists become tuples of concept ids, ranges become ``NumericRange``/``DateRange`` and so on.
    """

    domain: str
    attributes: tuple[tuple[str, AttributeValue], ...] = ()
    correlated: CriteriaGroup | None = None
    date_adjustment: DateAdjustment | None = None
    criteria_list: tuple[Criterion, ...] = ()  # CustomEra only

    def get(self, name: str) -> Any:
        """The typed value of attribute ``name``, or None when it is absent (or JSON null)."""
        for key, value in self.attributes:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class Endpoint:
    """One end of a window: ``Days`` before (Coeff -1) or after (Coeff 1) the index; no Days = unbounded."""

    days: int | None
    coeff: int


@dataclass(frozen=True)
class Window:
    """``StartWindow`` / ``EndWindow`` of a correlated criterion."""

    start: Endpoint
    end: Endpoint
    use_index_end: bool = False
    use_event_end: bool | None = None


@dataclass(frozen=True)
class Occurrence:
    """How many matching events: type 0 exactly, 1 at most, 2 at least ``count``."""

    EXACTLY = 0
    AT_MOST = 1
    AT_LEAST = 2

    type: int
    count: int
    is_distinct: bool = False
    count_column: str | None = None


@dataclass(frozen=True)
class CorrelatedCriteria:
    """A criterion counted in a window around the index event (``CriteriaList[i]`` of a group)."""

    criteria: Criterion
    start_window: Window
    occurrence: Occurrence
    end_window: Window | None = None
    restrict_visit: bool = False
    ignore_observation_period: bool = False


@dataclass(frozen=True)
class DemographicCriteria:
    """Person-level filters evaluated at the index event."""

    age: NumericRange | None = None
    gender: tuple[int, ...] = ()
    gender_cs: ConceptSetSelection | None = None
    race: tuple[int, ...] = ()
    race_cs: ConceptSetSelection | None = None
    ethnicity: tuple[int, ...] = ()
    ethnicity_cs: ConceptSetSelection | None = None
    occurrence_start_date: DateRange | None = None
    occurrence_end_date: DateRange | None = None


@dataclass(frozen=True)
class CriteriaGroup:
    """A boolean group: ``Type`` ALL, ANY, AT_LEAST ``Count`` or AT_MOST ``Count`` of its members must match.

    Members are correlated criteria, demographic criteria and nested groups.
    """

    type: str
    count: int | None = None
    criteria_list: tuple[CorrelatedCriteria, ...] = ()
    demographic_criteria_list: tuple[DemographicCriteria, ...] = ()
    groups: tuple[CriteriaGroup, ...] = ()

    def is_empty(self) -> bool:
        """A group without members matches every event (Circe)."""
        return not (self.criteria_list or self.demographic_criteria_list or self.groups)


@dataclass(frozen=True)
class InclusionRule:
    """A named criteria group that every cohort event must meet."""

    name: str
    expression: CriteriaGroup
    description: str | None = None


@dataclass(frozen=True)
class DateOffsetStrategy:
    """Exit ``offset`` days after the event's start or end date (clipped to the observation period end)."""

    date_field: str  # "StartDate" | "EndDate"
    offset: int


@dataclass(frozen=True)
class CustomEraStrategy:
    """Exit at the end of the continuous drug exposure era of ``drug_codeset_id`` that contains the event."""

    drug_codeset_id: int
    gap_days: int = 0
    offset: int = 0
    days_supply_override: int | None = None


@dataclass(frozen=True)
class PrimaryCriteria:
    """The entry events."""

    criteria_list: tuple[Criterion, ...]
    prior_days: int = 0
    post_days: int = 0
    limit: str = "FIRST"  # FIRST | LAST | ALL


@dataclass(frozen=True)
class CohortExpression:
    """A whole cohort definition. ``raw`` is the JSON as given, returned by ``to_json``."""

    concept_sets: tuple[ConceptSet, ...]
    primary_criteria: PrimaryCriteria
    additional_criteria: CriteriaGroup | None = None
    has_additional_criteria: bool = False
    qualified_limit: str = "FIRST"
    expression_limit: str = "FIRST"
    inclusion_rules: tuple[InclusionRule, ...] = ()
    end_strategy: DateOffsetStrategy | CustomEraStrategy | None = None
    censoring_criteria: tuple[Criterion, ...] = ()
    era_pad: int = 0
    censor_window: Period | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The expression as ATLAS JSON: exactly the document that was parsed (a deep copy)."""
        return copy.deepcopy(self.raw)

    def to_json_text(self) -> str:
        """``to_json`` as text, keys in their original order."""
        return json.dumps(self.raw, ensure_ascii=False)

    def concept_set(self, codeset_id: int) -> ConceptSet | None:
        """The concept set with ``id`` ``codeset_id``."""
        for concept_set in self.concept_sets:
            if concept_set.id == codeset_id:
                return concept_set
        return None
