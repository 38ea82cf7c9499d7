"""The compiler: values from a definition travel as bound parameters, bad input is refused, every domain runs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cohorts.compiler import compile_cohort
from cohorts.expression import ExpressionError, parse_expression
from cohorts.runs.generation import generate_cohort
from cohorts.tests.conftest import CDM_FIXTURES, oracle_definition, oracle_manifest
from cohorts.tests.expressions import minimal, rule, window_criterion

CRAFTED = "'; DROP TABLE person; --"
SCHEMAS = {"cdm_schema": "cdm", "vocabulary_schema": "vocab", "results_schema": "results"}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def compiled_sql(expression: Any, dialect: str = "postgresql") -> list[tuple[str, dict[str, Any]]]:
    compiled = compile_cohort(expression, dialect=dialect, cohort_id=1, **SCHEMAS)
    return compiled.statements + compiled.cleanup


def crafted_expression() -> dict[str, Any]:
    expression = minimal(
        InclusionRules=[
            rule(
                {
                    "Type": "ALL",
                    "CriteriaList": [
                        {
                            **window_criterion(),
                            "Criteria": {
                                "Observation": {"ValueAsString": {"Op": "contains", "Text": CRAFTED}},
                            },
                        }
                    ],
                },
                name=CRAFTED,
            )
        ]
    )
    expression["ConceptSets"][0]["name"] = CRAFTED
    expression["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"]["StopReason"] = {
        "Op": "startsWith",
        "Text": CRAFTED,
    }
    return expression


@pytest.mark.parametrize("dialect", ["postgresql", "duckdb"])
def test_a_crafted_string_is_a_bound_parameter_never_sql_text(dialect: str) -> None:
    statements = compiled_sql(crafted_expression(), dialect)
    assert not any("DROP TABLE person" in sql for sql, _ in statements)
    values = [value for _, params in statements for value in params.values()]
    assert f"{CRAFTED}%" in values and f"%{CRAFTED}%" in values


@pytest.mark.parametrize("name", [entry["name"] for entry in oracle_manifest()])
@pytest.mark.parametrize("dialect", ["postgresql", "duckdb"])
def test_every_placeholder_has_its_value_and_no_other_percent_sign(name: str, dialect: str) -> None:
    for sql, params in compiled_sql(oracle_definition(name), dialect):
        assert set(PLACEHOLDER.findall(sql)) == set(params)
        assert "%" not in PLACEHOLDER.sub("", sql)


def test_a_few_statements_per_cohort() -> None:
    compiled = compile_cohort(oracle_definition("pl_3385"), dialect="postgresql", cohort_id=1, **SCHEMAS)
    assert len(compiled.statements) <= 20
    assert compiled.rule_names[2] == ">= 18 years old"


def test_an_unknown_domain_is_refused() -> None:
    expression = minimal()
    expression["PrimaryCriteria"]["CriteriaList"] = [{"Genome": {"CodesetId": 0}}]
    with pytest.raises(ExpressionError, match="unknown domain 'Genome'"):
        compile_cohort(expression, dialect="duckdb", cohort_id=1, **SCHEMAS)


@pytest.mark.parametrize(
    "overrides",
    [
        {"dialect": "oracle"},
        {"cdm_schema": 'cdm"; DROP TABLE person; --'},
        {"results_schema": "results schema"},
        {"cohort_id": -1},
    ],
)
def test_bad_settings_are_refused(overrides: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"dialect": "postgresql", "cohort_id": 1, **SCHEMAS, **overrides}
    with pytest.raises(ValueError, match=r"."):
        compile_cohort(minimal(), **arguments)


def test_count_column_not_available_for_a_domain_is_refused() -> None:
    criterion = window_criterion(occurrence={"Type": 2, "Count": 1, "IsDistinct": True, "CountColumn": "GAP_DAYS"})
    expression = minimal(InclusionRules=[rule({"Type": "ALL", "CriteriaList": [criterion]})])
    with pytest.raises(ExpressionError, match="GAP_DAYS is not available for DrugExposure"):
        compile_cohort(expression, dialect="duckdb", cohort_id=1, **SCHEMAS)


# ---- every domain, with many of its attributes, runs on both engines ----------------------------------------------
NUM = {"Op": "gte", "Value": 0}
DATES = {"Op": "bt", "Value": "1900-01-01", "Extent": "2100-12-31"}
CS = {"CodesetId": 0, "IsExclusion": True}
DOMAIN_CRITERIA: dict[str, dict[str, Any]] = {
    "ConditionOccurrence": {
        "CodesetId": 0, "First": True, "OccurrenceStartDate": DATES, "OccurrenceEndDate": DATES,
        "ConditionType": [{"CONCEPT_ID": 1}], "ConditionTypeExclude": True, "ConditionTypeCS": CS,
        "StopReason": {"Op": "!contains", "Text": "x"}, "ConditionSourceConcept": 0, "Age": NUM,
        "Gender": [{"CONCEPT_ID": 8507}, {"CONCEPT_ID": 8532}], "ProviderSpecialtyCS": CS, "VisitTypeCS": CS,
        "ConditionStatusCS": CS,
    },
    "ConditionEra": {
        "CodesetId": 0, "First": True, "EraStartDate": DATES, "EraEndDate": DATES, "OccurrenceCount": NUM,
        "EraLength": NUM, "AgeAtStart": NUM, "AgeAtEnd": NUM, "GenderCS": CS,
    },
    "DrugExposure": {
        "CodesetId": 0, "First": True, "OccurrenceStartDate": DATES, "OccurrenceEndDate": DATES,
        "DrugType": [{"CONCEPT_ID": 1}], "DrugTypeExclude": True, "StopReason": {"Op": "!endsWith", "Text": "x"},
        "Refills": NUM, "Quantity": {"Op": "!bt", "Value": -2.5, "Extent": -1}, "DaysSupply": NUM,
        "RouteConceptCS": CS, "LotNumber": {"Op": "!startsWith", "Text": "x"},
        "DrugSourceConcept": 0, "Age": NUM, "ProviderSpecialty": [{"CONCEPT_ID": 1}],
        "VisitType": [{"CONCEPT_ID": 9201}],
        "DateAdjustment": {"StartWith": "START_DATE", "StartOffset": 1, "EndWith": "END_DATE", "EndOffset": 2},
    },
    "DrugEra": {
        "CodesetId": 0, "First": True, "EraStartDate": DATES, "EraEndDate": DATES, "OccurrenceCount": NUM,
        "GapDays": NUM, "EraLength": NUM, "AgeAtStart": NUM, "AgeAtEnd": NUM, "Gender": [{"CONCEPT_ID": 8507}],
    },
    "DoseEra": {
        "CodesetId": 0, "First": True, "EraStartDate": DATES, "UnitCS": CS, "DoseValue": NUM, "EraLength": NUM,
        "AgeAtStart": NUM,
    },
    "ProcedureOccurrence": {
        "CodesetId": 0, "First": True, "OccurrenceStartDate": DATES, "ProcedureTypeCS": CS, "ModifierCS": CS,
        "Quantity": NUM, "ProcedureSourceConcept": 0, "Age": NUM, "GenderCS": CS,
    },
    "Measurement": {
        "CodesetId": 0, "First": True, "OccurrenceStartDate": DATES, "MeasurementType": [{"CONCEPT_ID": 1}],
        "MeasurementTypeExclude": True, "OperatorCS": CS, "ValueAsNumber": {"Op": "gt", "Value": -1000.12345},
        "ValueAsConceptCS": CS, "UnitCS": CS, "RangeLow": NUM, "RangeHigh": NUM,
        "RangeLowRatio": NUM, "RangeHighRatio": NUM, "Abnormal": True, "MeasurementSourceConcept": 0, "Age": NUM,
    },
    "Observation": {
        "CodesetId": 0, "First": True, "OccurrenceStartDate": DATES, "ObservationTypeCS": CS,
        "ValueAsNumber": NUM, "ValueAsString": {"Op": "contains", "Text": "a"}, "ValueAsConcept": [{"CONCEPT_ID": 1}],
        "QualifierCS": CS, "UnitCS": CS, "ObservationSourceConcept": 0, "Age": NUM,
    },
    "VisitOccurrence": {
        "CodesetId": 0, "First": True, "OccurrenceStartDate": DATES, "OccurrenceEndDate": DATES,
        "VisitTypeCS": CS, "VisitLength": NUM, "VisitSourceConcept": 0, "Age": NUM, "GenderCS": CS,
        "ProviderSpecialtyCS": CS, "PlaceOfServiceCS": CS,
    },
    "VisitDetail": {
        "CodesetId": 0, "First": True, "VisitDetailStartDate": DATES, "VisitDetailEndDate": DATES,
        "VisitDetailTypeCS": CS, "VisitDetailLength": NUM, "Age": NUM, "GenderCS": CS, "ProviderSpecialtyCS": CS,
    },
    "DeviceExposure": {
        "CodesetId": 0, "First": True, "OccurrenceStartDate": DATES, "DeviceTypeCS": CS,
        "UniqueDeviceId": {"Op": "contains", "Text": "a"}, "Quantity": NUM, "DeviceSourceConcept": 0, "Age": NUM,
    },
    "Specimen": {
        "CodesetId": 0, "First": True, "OccurrenceStartDate": DATES, "SpecimenTypeCS": CS, "Quantity": NUM,
        "UnitCS": CS, "AnatomicSiteCS": CS, "DiseaseStatusCS": CS, "SourceId": {"Op": "contains", "Text": "a"},
        "Age": NUM,
    },
    "Death": {"CodesetId": 0, "OccurrenceStartDate": DATES, "DeathTypeCS": CS, "DeathSourceConcept": 0, "Age": NUM},
    "ObservationPeriod": {
        "First": True, "PeriodStartDate": DATES, "PeriodEndDate": DATES,
        "UserDefinedPeriod": {"StartDate": "2000-01-01"}, "PeriodTypeCS": CS, "PeriodLength": NUM,
        "AgeAtStart": NUM, "AgeAtEnd": NUM,
    },
    "PayerPlanPeriod": {
        "First": True, "PeriodStartDate": DATES, "UserDefinedPeriod": {"EndDate": "2010-01-01"},
        "PeriodLength": NUM, "AgeAtStart": NUM, "GenderCS": CS, "PayerConcept": 0, "PlanSourceConcept": 0,
    },
}  # fmt: skip


@pytest.mark.parametrize("domain", sorted(DOMAIN_CRITERIA))
@pytest.mark.parametrize("kind", ["postgresql", "duckdb"])
def test_every_domain_builder_runs(request: pytest.FixtureRequest, domain: str, kind: str) -> None:
    cdm: Any = request.getfixturevalue(CDM_FIXTURES[("synthea27nj", kind)])
    nested = {
        "Type": "AT_MOST",
        "Count": 5,
        "CriteriaList": [
            {
                **window_criterion(occurrence={"Type": 1, "Count": 3, "IsDistinct": True}),
                "Criteria": {domain: DOMAIN_CRITERIA[domain]},
                "EndWindow": {"Start": {"Coeff": -1}, "End": {"Days": 10, "Coeff": 1}, "UseEventEnd": False},
                "RestrictVisit": domain not in ("Death", "ObservationPeriod", "PayerPlanPeriod"),
            }
        ],
        "DemographicCriteriaList": [{"Age": NUM, "GenderCS": CS, "OccurrenceStartDate": DATES}],
    }
    expression = minimal(
        PrimaryCriteria={
            "CriteriaList": [{domain: {**DOMAIN_CRITERIA[domain], "CorrelatedCriteria": nested}}],
            "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
            "PrimaryCriteriaLimit": {"Type": "All"},
        },
        InclusionRules=[rule(nested)],
        CensoringCriteria=[{domain: DOMAIN_CRITERIA[domain]}],
        EndStrategy={"CustomEra": {"DrugCodesetId": 0, "GapDays": 30, "Offset": 2, "DaysSupplyOverride": 10}},
        CollapseSettings={"CollapseType": "ERA", "EraPad": 3},
        CensorWindow={"StartDate": "1990-01-01", "EndDate": "2030-01-01"},
    )
    result = generate_cohort(
        cdm.engine,
        parse_expression(expression),
        cdm_schema=cdm.cdm_schema,
        vocabulary_schema=cdm.vocabulary_schema,
        results_schema=cdm.results_schema,
        cohort_id=920_000,
    )
    assert result.rows >= result.persons >= 0
    assert [name for name, _ in result.attrition] == ["rule"]
