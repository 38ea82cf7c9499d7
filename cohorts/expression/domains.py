"""The one table of Circe criterion domains: each domain's CDM table and columns, and its attributes.

Everything in Soyang that needs to know a domain reads it here, never a copy: the parser (which attributes a
criterion of the domain has, and of which kind), the compiler's domain builders (the table, its event id, date and
concept columns), the describer (words for people; where the start date, the age and the value are) and the block
builder of the browser, whose page is served these facts (``cohorts.definitions.builder.builder_domains``).

It follows circe-be's criteria classes; a key that is not listed as an attribute of a domain is not a Circe
attribute of it and is kept but ignored, as Circe does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Kinds of attribute values.
CODESET = "codeset"  # an integer that must name a concept set of the expression
BOOL = "bool"
DATES = "dates"  # DateRange
NUMBERS = "numbers"  # NumericRange
CONCEPTS = "concepts"  # list of concepts -> tuple of concept ids
SELECTION = "selection"  # ConceptSetSelection
TEXT = "text"  # TextFilter
PERIOD = "period"  # UserDefinedPeriod


@dataclass(frozen=True)
class Domain:
    """One criterion domain (``{"ConditionOccurrence": {...}}``).

    ``words`` say the domain to people (an English gettext message id; the describer translates it).
    ``start_dates`` is the attribute holding the range of the event's start date (what "starting …" means there).
    The columns are those of the CDM ``table``; ``end_column`` is None where an event has a single date.
    ``offered``: the block builder offers the domain in its menu (it still shows a criterion of any domain).
    """

    name: str
    words: str
    table: str
    id_column: str
    start_column: str
    end_column: str | None
    concept_column: str | None  # the column ``CodesetId`` filters
    start_dates: str
    attributes: Mapping[str, str]
    source_concept: str | None = None  # the attribute naming a concept set of source concepts …
    source_concept_column: str | None = None  # … and the column it filters
    visit: bool = True  # events carry a visit_occurrence_id
    offered: bool = True
    #: The vocabulary domains (``concept.domain_id``) of the concepts its ``CodesetId`` is meant to name: a concept
    #: set of others finds nothing in ``table`` (the builder warns, ``cohorts.definitions.warnings``). Empty: any.
    concept_domains: tuple[str, ...] = ()

    @property
    def has_first(self) -> bool:
        """``First``: only the person's first event of the concept set (every domain but death and location)."""
        return "First" in self.attributes

    @property
    def has_codeset(self) -> bool:
        """Criteria of the domain name a concept set (periods do not: they have no concept)."""
        return "CodesetId" in self.attributes

    @property
    def has_value(self) -> bool:
        """A numeric value to compare (``ValueAsNumber``: measurements and observations)."""
        return "ValueAsNumber" in self.attributes

    @property
    def age_attribute(self) -> str:
        """Where the person's age is: at the start of an era or period (``AgeAtStart``), else at the event."""
        return "AgeAtStart" if "AgeAtStart" in self.attributes else "Age"


_AGE_GENDER = {"Age": NUMBERS, "Gender": CONCEPTS, "GenderCS": SELECTION}
_PROVIDER_VISIT = {
    "ProviderSpecialty": CONCEPTS,
    "ProviderSpecialtyCS": SELECTION,
    "VisitType": CONCEPTS,
    "VisitTypeCS": SELECTION,
}
_ERA_PERSON = {"AgeAtStart": NUMBERS, "AgeAtEnd": NUMBERS, "Gender": CONCEPTS, "GenderCS": SELECTION}

#: Every domain, in the order the block builder offers them.
DOMAINS: dict[str, Domain] = {
    domain.name: domain
    for domain in (
        Domain(
            name="ConditionOccurrence",
            concept_domains=("Condition",),
            words="condition",
            table="condition_occurrence",
            id_column="condition_occurrence_id",
            start_column="condition_start_date",
            end_column="condition_end_date",
            concept_column="condition_concept_id",
            source_concept="ConditionSourceConcept",
            source_concept_column="condition_source_concept_id",
            start_dates="OccurrenceStartDate",
            attributes={
                "CodesetId": CODESET,
                "First": BOOL,
                "OccurrenceStartDate": DATES,
                "OccurrenceEndDate": DATES,
                "ConditionType": CONCEPTS,
                "ConditionTypeCS": SELECTION,
                "ConditionTypeExclude": BOOL,
                "StopReason": TEXT,
                "ConditionSourceConcept": CODESET,
                **_AGE_GENDER,
                **_PROVIDER_VISIT,
                "ConditionStatus": CONCEPTS,
                "ConditionStatusCS": SELECTION,
            },
        ),
        Domain(
            name="DrugExposure",
            concept_domains=("Drug",),
            words="drug exposure",
            table="drug_exposure",
            id_column="drug_exposure_id",
            start_column="drug_exposure_start_date",
            end_column="drug_exposure_end_date",
            concept_column="drug_concept_id",
            source_concept="DrugSourceConcept",
            source_concept_column="drug_source_concept_id",
            start_dates="OccurrenceStartDate",
            attributes={
                "CodesetId": CODESET,
                "First": BOOL,
                "OccurrenceStartDate": DATES,
                "OccurrenceEndDate": DATES,
                "DrugType": CONCEPTS,
                "DrugTypeCS": SELECTION,
                "DrugTypeExclude": BOOL,
                "StopReason": TEXT,
                "Refills": NUMBERS,
                "Quantity": NUMBERS,
                "DaysSupply": NUMBERS,
                "RouteConcept": CONCEPTS,
                "RouteConceptCS": SELECTION,
                # Circe parses EffectiveDrugDose but its SQL never uses it; Soyang does the same (same cohorts).
                "EffectiveDrugDose": NUMBERS,
                "DoseUnit": CONCEPTS,
                "DoseUnitCS": SELECTION,
                "LotNumber": TEXT,
                "DrugSourceConcept": CODESET,
                **_AGE_GENDER,
                **_PROVIDER_VISIT,
            },
        ),
        Domain(
            name="Measurement",
            concept_domains=("Measurement",),
            words="measurement",
            table="measurement",
            id_column="measurement_id",
            start_column="measurement_date",
            end_column=None,
            concept_column="measurement_concept_id",
            source_concept="MeasurementSourceConcept",
            source_concept_column="measurement_source_concept_id",
            start_dates="OccurrenceStartDate",
            attributes={
                "CodesetId": CODESET,
                "First": BOOL,
                "OccurrenceStartDate": DATES,
                "MeasurementType": CONCEPTS,
                "MeasurementTypeCS": SELECTION,
                "MeasurementTypeExclude": BOOL,
                "Operator": CONCEPTS,
                "OperatorCS": SELECTION,
                "ValueAsNumber": NUMBERS,
                "ValueAsConcept": CONCEPTS,
                "ValueAsConceptCS": SELECTION,
                "Unit": CONCEPTS,
                "UnitCS": SELECTION,
                "RangeLow": NUMBERS,
                "RangeHigh": NUMBERS,
                "RangeLowRatio": NUMBERS,
                "RangeHighRatio": NUMBERS,
                "Abnormal": BOOL,
                "MeasurementSourceConcept": CODESET,
                **_AGE_GENDER,
                **_PROVIDER_VISIT,
            },
        ),
        Domain(
            name="ProcedureOccurrence",
            concept_domains=("Procedure",),
            words="procedure",
            table="procedure_occurrence",
            id_column="procedure_occurrence_id",
            start_column="procedure_date",
            end_column=None,
            concept_column="procedure_concept_id",
            source_concept="ProcedureSourceConcept",
            source_concept_column="procedure_source_concept_id",
            start_dates="OccurrenceStartDate",
            attributes={
                "CodesetId": CODESET,
                "First": BOOL,
                "OccurrenceStartDate": DATES,
                "ProcedureType": CONCEPTS,
                "ProcedureTypeCS": SELECTION,
                "ProcedureTypeExclude": BOOL,
                "Modifier": CONCEPTS,
                "ModifierCS": SELECTION,
                "Quantity": NUMBERS,
                "ProcedureSourceConcept": CODESET,
                **_AGE_GENDER,
                **_PROVIDER_VISIT,
            },
        ),
        Domain(
            name="Observation",
            concept_domains=("Observation",),
            words="observation",
            table="observation",
            id_column="observation_id",
            start_column="observation_date",
            end_column=None,
            concept_column="observation_concept_id",
            source_concept="ObservationSourceConcept",
            source_concept_column="observation_source_concept_id",
            start_dates="OccurrenceStartDate",
            attributes={
                "CodesetId": CODESET,
                "First": BOOL,
                "OccurrenceStartDate": DATES,
                "ObservationType": CONCEPTS,
                "ObservationTypeCS": SELECTION,
                "ObservationTypeExclude": BOOL,
                "ValueAsNumber": NUMBERS,
                "ValueAsString": TEXT,
                "ValueAsConcept": CONCEPTS,
                "ValueAsConceptCS": SELECTION,
                "Qualifier": CONCEPTS,
                "QualifierCS": SELECTION,
                "Unit": CONCEPTS,
                "UnitCS": SELECTION,
                "ObservationSourceConcept": CODESET,
                **_AGE_GENDER,
                **_PROVIDER_VISIT,
            },
        ),
        Domain(
            name="VisitOccurrence",
            concept_domains=("Visit",),
            words="visit",
            table="visit_occurrence",
            id_column="visit_occurrence_id",
            start_column="visit_start_date",
            end_column="visit_end_date",
            concept_column="visit_concept_id",
            source_concept="VisitSourceConcept",
            source_concept_column="visit_source_concept_id",
            start_dates="OccurrenceStartDate",
            attributes={
                "CodesetId": CODESET,
                "First": BOOL,
                "OccurrenceStartDate": DATES,
                "OccurrenceEndDate": DATES,
                "VisitType": CONCEPTS,
                "VisitTypeCS": SELECTION,
                "VisitTypeExclude": BOOL,
                "VisitSourceConcept": CODESET,
                "VisitLength": NUMBERS,
                **_AGE_GENDER,
                "ProviderSpecialty": CONCEPTS,
                "ProviderSpecialtyCS": SELECTION,
                "PlaceOfService": CONCEPTS,
                "PlaceOfServiceCS": SELECTION,
                "PlaceOfServiceLocation": CODESET,
            },
        ),
        Domain(
            name="DeviceExposure",
            concept_domains=("Device",),
            words="device exposure",
            table="device_exposure",
            id_column="device_exposure_id",
            start_column="device_exposure_start_date",
            end_column="device_exposure_end_date",
            concept_column="device_concept_id",
            source_concept="DeviceSourceConcept",
            source_concept_column="device_source_concept_id",
            start_dates="OccurrenceStartDate",
            attributes={
                "CodesetId": CODESET,
                "First": BOOL,
                "OccurrenceStartDate": DATES,
                "OccurrenceEndDate": DATES,
                "DeviceType": CONCEPTS,
                "DeviceTypeCS": SELECTION,
                "DeviceTypeExclude": BOOL,
                "UniqueDeviceId": TEXT,
                "Quantity": NUMBERS,
                "DeviceSourceConcept": CODESET,
                **_AGE_GENDER,
                **_PROVIDER_VISIT,
            },
        ),
        Domain(
            name="Death",
            words="death",
            table="death",
            id_column="person_id",  # a person dies once: the death table has no id of its own
            start_column="death_date",
            end_column=None,
            concept_column="cause_concept_id",
            source_concept="DeathSourceConcept",
            source_concept_column="cause_source_concept_id",
            start_dates="OccurrenceStartDate",
            visit=False,
            attributes={
                "CodesetId": CODESET,
                "OccurrenceStartDate": DATES,
                "DeathType": CONCEPTS,
                "DeathTypeCS": SELECTION,
                "DeathTypeExclude": BOOL,
                "DeathSourceConcept": CODESET,
                **_AGE_GENDER,
            },
        ),
        Domain(
            name="ConditionEra",
            concept_domains=("Condition",),
            words="condition era",
            table="condition_era",
            id_column="condition_era_id",
            start_column="condition_era_start_date",
            end_column="condition_era_end_date",
            concept_column="condition_concept_id",
            start_dates="EraStartDate",
            visit=False,
            attributes={
                "CodesetId": CODESET,
                "First": BOOL,
                "EraStartDate": DATES,
                "EraEndDate": DATES,
                "OccurrenceCount": NUMBERS,
                "EraLength": NUMBERS,
                **_ERA_PERSON,
            },
        ),
        Domain(
            name="DrugEra",
            concept_domains=("Drug",),
            words="drug era",
            table="drug_era",
            id_column="drug_era_id",
            start_column="drug_era_start_date",
            end_column="drug_era_end_date",
            concept_column="drug_concept_id",
            start_dates="EraStartDate",
            visit=False,
            attributes={
                "CodesetId": CODESET,
                "First": BOOL,
                "EraStartDate": DATES,
                "EraEndDate": DATES,
                "OccurrenceCount": NUMBERS,
                "GapDays": NUMBERS,
                "EraLength": NUMBERS,
                **_ERA_PERSON,
            },
        ),
        Domain(
            name="DoseEra",
            concept_domains=("Drug",),
            words="dose era",
            table="dose_era",
            id_column="dose_era_id",
            start_column="dose_era_start_date",
            end_column="dose_era_end_date",
            concept_column="drug_concept_id",
            start_dates="EraStartDate",
            visit=False,
            attributes={
                "CodesetId": CODESET,
                "First": BOOL,
                "EraStartDate": DATES,
                "EraEndDate": DATES,
                "Unit": CONCEPTS,
                "UnitCS": SELECTION,
                "DoseValue": NUMBERS,
                "EraLength": NUMBERS,
                **_ERA_PERSON,
            },
        ),
        Domain(
            name="ObservationPeriod",
            words="observation period",
            table="observation_period",
            id_column="observation_period_id",
            start_column="observation_period_start_date",
            end_column="observation_period_end_date",
            concept_column=None,
            start_dates="PeriodStartDate",
            visit=False,
            attributes={
                "First": BOOL,
                "PeriodStartDate": DATES,
                "PeriodEndDate": DATES,
                "UserDefinedPeriod": PERIOD,
                "PeriodType": CONCEPTS,
                "PeriodTypeCS": SELECTION,
                "PeriodLength": NUMBERS,
                "AgeAtStart": NUMBERS,
                "AgeAtEnd": NUMBERS,
            },
        ),
        Domain(
            name="Specimen",
            concept_domains=("Specimen",),
            words="specimen",
            table="specimen",
            id_column="specimen_id",
            start_column="specimen_date",
            end_column=None,
            concept_column="specimen_concept_id",
            start_dates="OccurrenceStartDate",
            visit=False,
            attributes={
                "CodesetId": CODESET,
                "First": BOOL,
                "OccurrenceStartDate": DATES,
                "SpecimenType": CONCEPTS,
                "SpecimenTypeCS": SELECTION,
                "SpecimenTypeExclude": BOOL,
                "Quantity": NUMBERS,
                "Unit": CONCEPTS,
                "UnitCS": SELECTION,
                "AnatomicSite": CONCEPTS,
                "AnatomicSiteCS": SELECTION,
                "DiseaseStatus": CONCEPTS,
                "DiseaseStatusCS": SELECTION,
                "SourceId": TEXT,
                # Parsed by Circe, not used by its SQL (nor by Soyang's): hence no source concept column above.
                "SpecimenSourceConcept": CODESET,
                **_AGE_GENDER,
            },
        ),
        Domain(
            name="VisitDetail",
            concept_domains=("Visit",),
            words="visit detail",
            table="visit_detail",
            id_column="visit_detail_id",
            start_column="visit_detail_start_date",
            end_column="visit_detail_end_date",
            concept_column="visit_detail_concept_id",
            source_concept="VisitDetailSourceConcept",
            source_concept_column="visit_detail_source_concept_id",
            start_dates="VisitDetailStartDate",
            attributes={
                "CodesetId": CODESET,
                "First": BOOL,
                "VisitDetailStartDate": DATES,
                "VisitDetailEndDate": DATES,
                "VisitDetailTypeCS": SELECTION,
                "VisitDetailSourceConcept": CODESET,
                "VisitDetailLength": NUMBERS,
                "Age": NUMBERS,
                "GenderCS": SELECTION,
                "ProviderSpecialtyCS": SELECTION,
                "PlaceOfServiceCS": SELECTION,
                "PlaceOfServiceLocation": CODESET,
            },
        ),
        Domain(
            name="PayerPlanPeriod",
            words="payer plan period",
            table="payer_plan_period",
            id_column="payer_plan_period_id",
            start_column="payer_plan_period_start_date",
            end_column="payer_plan_period_end_date",
            concept_column=None,
            start_dates="PeriodStartDate",
            visit=False,
            attributes={
                "First": BOOL,
                "PeriodStartDate": DATES,
                "PeriodEndDate": DATES,
                "UserDefinedPeriod": PERIOD,
                "PeriodLength": NUMBERS,
                **_ERA_PERSON,
                "PayerConcept": CODESET,
                "PlanConcept": CODESET,
                "SponsorConcept": CODESET,
                "StopReasonConcept": CODESET,
                "PayerSourceConcept": CODESET,
                "PlanSourceConcept": CODESET,
                "SponsorSourceConcept": CODESET,
                "StopReasonSourceConcept": CODESET,
            },
        ),
        Domain(
            # A person's address history (location_history of the PERSON domain) in a region concept set.
            name="LocationRegion",
            words="location",
            table="location_history",
            id_column="location_history_id",
            start_column="start_date",
            end_column="end_date",
            concept_column="region_concept_id",  # of the location the history row points to
            start_dates="StartDate",
            visit=False,
            offered=False,
            attributes={"CodesetId": CODESET, "StartDate": DATES, "EndDate": DATES},
        ),
    )
}

#: Circe domains Soyang refuses (rather than guess their semantics).
UNSUPPORTED_DOMAINS = frozenset({"CustomEra", "Episode"})

#: Circe attributes whose SQL cannot run on an OMOP CDM (the column does not exist): refused with a reason.
UNSUPPORTED_ATTRIBUTES: dict[tuple[str, str], str] = {
    ("DrugExposure", "DoseUnit"): "the OMOP CDM drug_exposure table has no dose_unit_concept_id column",
    ("DrugExposure", "DoseUnitCS"): "the OMOP CDM drug_exposure table has no dose_unit_concept_id column",
}

#: The columns a distinct occurrence count may use (Occurrence.CountColumn), with the name Circe gives the column
#: in the events it counts.
COUNT_COLUMNS: dict[str, str] = {
    "DAYS_SUPPLY": "days_supply",
    "DOMAIN_CONCEPT": "domain_concept_id",
    "DOMAIN_SOURCE_CONCEPT": "domain_source_concept_id",
    "DURATION": "duration",
    "END_DATE": "end_date",
    "ERA_OCCURRENCES": "occurrence_count",
    "GAP_DAYS": "gap_days",
    "QUANTITY": "quantity",
    "RANGE_HIGH": "range_high",
    "RANGE_LOW": "range_low",
    "REFILLS": "refills",
    "START_DATE": "start_date",
    "UNIT": "unit_concept_id",
    "VALUE_AS_NUMBER": "value_as_number",
    "VISIT_ID": "visit_occurrence_id",
    "VISIT_DETAIL_ID": "visit_detail_id",
}
