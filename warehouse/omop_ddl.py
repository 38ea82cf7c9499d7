"""The OMOP Common Data Model v5.3 and v5.4 as data: tables, columns, types, required flags, and the indexes
cohort queries need; DDL generated per engine (PostgreSQL, DuckDB).

Written from the public OHDSI CDM specification (field-level tables of v5.3 and v5.4). Column order follows the
specification, which is also the order of the OHDSI CSV exports. Notation of the table specs below: one column
per line, ``name type`` with a trailing ``!`` when the column is required (NOT NULL). Types:

====== ============================== =========================
token  PostgreSQL                      DuckDB
====== ============================== =========================
int    INTEGER                         INTEGER
bigint BIGINT                          BIGINT
num    NUMERIC                         DOUBLE (DuckDB's bare DECIMAL keeps 3 decimals only)
date   DATE                            DATE
ts     TIMESTAMP                       TIMESTAMP
text   TEXT                            VARCHAR
vN     VARCHAR(N)                      VARCHAR (DuckDB ignores lengths)
====== ============================== =========================

Decisions: no primary or foreign keys (real exports break them; the portal only reads), era start/end dates are
DATE in both versions (v5.3.1's own DDL; some later v5.3 renderings use TIMESTAMP, which only makes date
arithmetic harder for the cohort compiler).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from warehouse.engines import quote_ident

CDM_VERSIONS = ("5.3", "5.4")

#: Tables a load cannot do without: every cohort needs persons, their observation time and the concepts.
REQUIRED_TABLES = ("person", "observation_period", "concept")


@dataclass(frozen=True)
class Column:
    """One CDM column: its name, type token (see the module docstring) and whether it is NOT NULL."""

    name: str
    type: str
    required: bool

    @property
    def is_text(self) -> bool:
        """True for character columns (VARCHAR(n) and TEXT)."""
        return self.type == "text" or self.type.startswith("v")


# ---------------------------------------------------------------------------------------------------------------
# Tables common to v5.3 and v5.4
# ---------------------------------------------------------------------------------------------------------------

_COMMON = {
    "person": """
        person_id int!
        gender_concept_id int!
        year_of_birth int!
        month_of_birth int
        day_of_birth int
        birth_datetime ts
        race_concept_id int!
        ethnicity_concept_id int!
        location_id int
        provider_id int
        care_site_id int
        person_source_value v50
        gender_source_value v50
        gender_source_concept_id int
        race_source_value v50
        race_source_concept_id int
        ethnicity_source_value v50
        ethnicity_source_concept_id int
    """,
    "observation_period": """
        observation_period_id int!
        person_id int!
        observation_period_start_date date!
        observation_period_end_date date!
        period_type_concept_id int!
    """,
    "drug_exposure": """
        drug_exposure_id int!
        person_id int!
        drug_concept_id int!
        drug_exposure_start_date date!
        drug_exposure_start_datetime ts
        drug_exposure_end_date date!
        drug_exposure_end_datetime ts
        verbatim_end_date date
        drug_type_concept_id int!
        stop_reason v20
        refills int
        quantity num
        days_supply int
        sig text
        route_concept_id int
        lot_number v50
        provider_id int
        visit_occurrence_id int
        visit_detail_id int
        drug_source_value v50
        drug_source_concept_id int
        route_source_value v50
        dose_unit_source_value v50
    """,
    "death": """
        person_id int!
        death_date date!
        death_datetime ts
        death_type_concept_id int
        cause_concept_id int
        cause_source_value v50
        cause_source_concept_id int
    """,
    "note_nlp": """
        note_nlp_id int!
        note_id int!
        section_concept_id int
        snippet v250
        offset v50
        lexical_variant v250!
        note_nlp_concept_id int
        note_nlp_source_concept_id int
        nlp_system v250
        nlp_date date!
        nlp_datetime ts
        term_exists v1
        term_temporal v50
        term_modifiers v2000
    """,
    "specimen": """
        specimen_id int!
        person_id int!
        specimen_concept_id int!
        specimen_type_concept_id int!
        specimen_date date!
        specimen_datetime ts
        quantity num
        unit_concept_id int
        anatomic_site_concept_id int
        disease_status_concept_id int
        specimen_source_id v50
        specimen_source_value v50
        unit_source_value v50
        anatomic_site_source_value v50
        disease_status_source_value v50
    """,
    "fact_relationship": """
        domain_concept_id_1 int!
        fact_id_1 int!
        domain_concept_id_2 int!
        fact_id_2 int!
        relationship_concept_id int!
    """,
    "care_site": """
        care_site_id int!
        care_site_name v255
        place_of_service_concept_id int
        location_id int
        care_site_source_value v50
        place_of_service_source_value v50
    """,
    "provider": """
        provider_id int!
        provider_name v255
        npi v20
        dea v20
        specialty_concept_id int
        care_site_id int
        year_of_birth int
        gender_concept_id int
        provider_source_value v50
        specialty_source_value v50
        specialty_source_concept_id int
        gender_source_value v50
        gender_source_concept_id int
    """,
    "payer_plan_period": """
        payer_plan_period_id int!
        person_id int!
        payer_plan_period_start_date date!
        payer_plan_period_end_date date!
        payer_concept_id int
        payer_source_value v50
        payer_source_concept_id int
        plan_concept_id int
        plan_source_value v50
        plan_source_concept_id int
        sponsor_concept_id int
        sponsor_source_value v50
        sponsor_source_concept_id int
        family_source_value v50
        stop_reason_concept_id int
        stop_reason_source_value v50
        stop_reason_source_concept_id int
    """,
    "cost": """
        cost_id int!
        cost_event_id int!
        cost_domain_id v20!
        cost_type_concept_id int!
        currency_concept_id int
        total_charge num
        total_cost num
        total_paid num
        paid_by_payer num
        paid_by_patient num
        paid_patient_copay num
        paid_patient_coinsurance num
        paid_patient_deductible num
        paid_by_primary num
        paid_ingredient_cost num
        paid_dispensing_fee num
        payer_plan_period_id int
        amount_allowed num
        revenue_code_concept_id int
        revenue_code_source_value v50
        drg_concept_id int
        drg_source_value v3
    """,
    "drug_era": """
        drug_era_id int!
        person_id int!
        drug_concept_id int!
        drug_era_start_date date!
        drug_era_end_date date!
        drug_exposure_count int
        gap_days int
    """,
    "dose_era": """
        dose_era_id int!
        person_id int!
        drug_concept_id int!
        unit_concept_id int!
        dose_value num!
        dose_era_start_date date!
        dose_era_end_date date!
    """,
    "condition_era": """
        condition_era_id int!
        person_id int!
        condition_concept_id int!
        condition_era_start_date date!
        condition_era_end_date date!
        condition_occurrence_count int
    """,
    "concept": """
        concept_id int!
        concept_name v255!
        domain_id v20!
        vocabulary_id v20!
        concept_class_id v20!
        standard_concept v1
        concept_code v50!
        valid_start_date date!
        valid_end_date date!
        invalid_reason v1
    """,
    "domain": """
        domain_id v20!
        domain_name v255!
        domain_concept_id int!
    """,
    "concept_class": """
        concept_class_id v20!
        concept_class_name v255!
        concept_class_concept_id int!
    """,
    "concept_relationship": """
        concept_id_1 int!
        concept_id_2 int!
        relationship_id v20!
        valid_start_date date!
        valid_end_date date!
        invalid_reason v1
    """,
    "relationship": """
        relationship_id v20!
        relationship_name v255!
        is_hierarchical v1!
        defines_ancestry v1!
        reverse_relationship_id v20!
        relationship_concept_id int!
    """,
    "concept_synonym": """
        concept_id int!
        concept_synonym_name v1000!
        language_concept_id int!
    """,
    "concept_ancestor": """
        ancestor_concept_id int!
        descendant_concept_id int!
        min_levels_of_separation int!
        max_levels_of_separation int!
    """,
    "source_to_concept_map": """
        source_code v50!
        source_concept_id int!
        source_vocabulary_id v20!
        source_code_description v255
        target_concept_id int!
        target_vocabulary_id v20!
        valid_start_date date!
        valid_end_date date!
        invalid_reason v1
    """,
    "drug_strength": """
        drug_concept_id int!
        ingredient_concept_id int!
        amount_value num
        amount_unit_concept_id int
        numerator_value num
        numerator_unit_concept_id int
        denominator_value num
        denominator_unit_concept_id int
        box_size int
        valid_start_date date!
        valid_end_date date!
        invalid_reason v1
    """,
    "cohort_definition": """
        cohort_definition_id int!
        cohort_definition_name v255!
        cohort_definition_description text
        definition_type_concept_id int!
        cohort_definition_syntax text
        subject_concept_id int!
        cohort_initiation_date date
    """,
}

# ---------------------------------------------------------------------------------------------------------------
# v5.3 only (or differing from v5.4)
# ---------------------------------------------------------------------------------------------------------------

_V53 = {
    "visit_occurrence": """
        visit_occurrence_id int!
        person_id int!
        visit_concept_id int!
        visit_start_date date!
        visit_start_datetime ts
        visit_end_date date!
        visit_end_datetime ts
        visit_type_concept_id int!
        provider_id int
        care_site_id int
        visit_source_value v50
        visit_source_concept_id int
        admitting_source_concept_id int
        admitting_source_value v50
        discharge_to_concept_id int
        discharge_to_source_value v50
        preceding_visit_occurrence_id int
    """,
    "visit_detail": """
        visit_detail_id int!
        person_id int!
        visit_detail_concept_id int!
        visit_detail_start_date date!
        visit_detail_start_datetime ts
        visit_detail_end_date date!
        visit_detail_end_datetime ts
        visit_detail_type_concept_id int!
        provider_id int
        care_site_id int
        visit_detail_source_value v50
        visit_detail_source_concept_id int
        admitting_source_value v50
        admitting_source_concept_id int
        discharge_to_source_value v50
        discharge_to_concept_id int
        preceding_visit_detail_id int
        visit_detail_parent_id int
        visit_occurrence_id int!
    """,
    "condition_occurrence": """
        condition_occurrence_id int!
        person_id int!
        condition_concept_id int!
        condition_start_date date!
        condition_start_datetime ts
        condition_end_date date
        condition_end_datetime ts
        condition_type_concept_id int!
        stop_reason v20
        provider_id int
        visit_occurrence_id int
        visit_detail_id int
        condition_source_value v50
        condition_source_concept_id int
        condition_status_source_value v50
        condition_status_concept_id int
    """,
    "procedure_occurrence": """
        procedure_occurrence_id int!
        person_id int!
        procedure_concept_id int!
        procedure_date date!
        procedure_datetime ts
        procedure_type_concept_id int!
        modifier_concept_id int
        quantity int
        provider_id int
        visit_occurrence_id int
        visit_detail_id int
        procedure_source_value v50
        procedure_source_concept_id int
        modifier_source_value v50
    """,
    "device_exposure": """
        device_exposure_id int!
        person_id int!
        device_concept_id int!
        device_exposure_start_date date!
        device_exposure_start_datetime ts
        device_exposure_end_date date
        device_exposure_end_datetime ts
        device_type_concept_id int!
        unique_device_id v50
        quantity int
        provider_id int
        visit_occurrence_id int
        visit_detail_id int
        device_source_value v50
        device_source_concept_id int
    """,
    "measurement": """
        measurement_id int!
        person_id int!
        measurement_concept_id int!
        measurement_date date!
        measurement_datetime ts
        measurement_time v10
        measurement_type_concept_id int!
        operator_concept_id int
        value_as_number num
        value_as_concept_id int
        unit_concept_id int
        range_low num
        range_high num
        provider_id int
        visit_occurrence_id int
        visit_detail_id int
        measurement_source_value v50
        measurement_source_concept_id int
        unit_source_value v50
        value_source_value v50
    """,
    "observation": """
        observation_id int!
        person_id int!
        observation_concept_id int!
        observation_date date!
        observation_datetime ts
        observation_type_concept_id int!
        value_as_number num
        value_as_string v60
        value_as_concept_id int
        qualifier_concept_id int
        unit_concept_id int
        provider_id int
        visit_occurrence_id int
        visit_detail_id int
        observation_source_value v50
        observation_source_concept_id int
        unit_source_value v50
        qualifier_source_value v50
    """,
    "note": """
        note_id int!
        person_id int!
        note_date date!
        note_datetime ts
        note_type_concept_id int!
        note_class_concept_id int!
        note_title v250
        note_text text!
        encoding_concept_id int!
        language_concept_id int!
        provider_id int
        visit_occurrence_id int
        visit_detail_id int
        note_source_value v50
    """,
    "location": """
        location_id int!
        address_1 v50
        address_2 v50
        city v50
        state v2
        zip v9
        county v20
        location_source_value v50
    """,
    "metadata": """
        metadata_concept_id int!
        metadata_type_concept_id int!
        name v250!
        value_as_string v250
        value_as_concept_id int
        metadata_date date
        metadata_datetime ts
    """,
    "cdm_source": """
        cdm_source_name v255!
        cdm_source_abbreviation v25
        cdm_holder v255
        source_description text
        source_documentation_reference v255
        cdm_etl_reference v255
        source_release_date date
        cdm_release_date date
        cdm_version v10
        vocabulary_version v20
    """,
    "vocabulary": """
        vocabulary_id v20!
        vocabulary_name v255!
        vocabulary_reference v255!
        vocabulary_version v255
        vocabulary_concept_id int!
    """,
    "attribute_definition": """
        attribute_definition_id int!
        attribute_name v255!
        attribute_description text
        attribute_type_concept_id int!
        attribute_syntax text
    """,
}

# ---------------------------------------------------------------------------------------------------------------
# v5.4 only (or differing from v5.3)
# ---------------------------------------------------------------------------------------------------------------

_V54 = {
    "visit_occurrence": """
        visit_occurrence_id int!
        person_id int!
        visit_concept_id int!
        visit_start_date date!
        visit_start_datetime ts
        visit_end_date date!
        visit_end_datetime ts
        visit_type_concept_id int!
        provider_id int
        care_site_id int
        visit_source_value v50
        visit_source_concept_id int
        admitted_from_concept_id int
        admitted_from_source_value v50
        discharged_to_concept_id int
        discharged_to_source_value v50
        preceding_visit_occurrence_id int
    """,
    "visit_detail": """
        visit_detail_id int!
        person_id int!
        visit_detail_concept_id int!
        visit_detail_start_date date!
        visit_detail_start_datetime ts
        visit_detail_end_date date!
        visit_detail_end_datetime ts
        visit_detail_type_concept_id int!
        provider_id int
        care_site_id int
        visit_detail_source_value v50
        visit_detail_source_concept_id int
        admitted_from_concept_id int
        admitted_from_source_value v50
        discharged_to_source_value v50
        discharged_to_concept_id int
        preceding_visit_detail_id int
        parent_visit_detail_id int
        visit_occurrence_id int!
    """,
    "condition_occurrence": """
        condition_occurrence_id int!
        person_id int!
        condition_concept_id int!
        condition_start_date date!
        condition_start_datetime ts
        condition_end_date date
        condition_end_datetime ts
        condition_type_concept_id int!
        condition_status_concept_id int
        stop_reason v20
        provider_id int
        visit_occurrence_id int
        visit_detail_id int
        condition_source_value v50
        condition_source_concept_id int
        condition_status_source_value v50
    """,
    "procedure_occurrence": """
        procedure_occurrence_id int!
        person_id int!
        procedure_concept_id int!
        procedure_date date!
        procedure_datetime ts
        procedure_end_date date
        procedure_end_datetime ts
        procedure_type_concept_id int!
        modifier_concept_id int
        quantity int
        provider_id int
        visit_occurrence_id int
        visit_detail_id int
        procedure_source_value v50
        procedure_source_concept_id int
        modifier_source_value v50
    """,
    "device_exposure": """
        device_exposure_id int!
        person_id int!
        device_concept_id int!
        device_exposure_start_date date!
        device_exposure_start_datetime ts
        device_exposure_end_date date
        device_exposure_end_datetime ts
        device_type_concept_id int!
        unique_device_id v255
        production_id v255
        quantity int
        provider_id int
        visit_occurrence_id int
        visit_detail_id int
        device_source_value v50
        device_source_concept_id int
        unit_concept_id int
        unit_source_value v50
        unit_source_concept_id int
    """,
    "measurement": """
        measurement_id int!
        person_id int!
        measurement_concept_id int!
        measurement_date date!
        measurement_datetime ts
        measurement_time v10
        measurement_type_concept_id int!
        operator_concept_id int
        value_as_number num
        value_as_concept_id int
        unit_concept_id int
        range_low num
        range_high num
        provider_id int
        visit_occurrence_id int
        visit_detail_id int
        measurement_source_value v50
        measurement_source_concept_id int
        unit_source_value v50
        unit_source_concept_id int
        value_source_value v50
        measurement_event_id bigint
        meas_event_field_concept_id int
    """,
    "observation": """
        observation_id int!
        person_id int!
        observation_concept_id int!
        observation_date date!
        observation_datetime ts
        observation_type_concept_id int!
        value_as_number num
        value_as_string v60
        value_as_concept_id int
        qualifier_concept_id int
        unit_concept_id int
        provider_id int
        visit_occurrence_id int
        visit_detail_id int
        observation_source_value v50
        observation_source_concept_id int
        unit_source_value v50
        qualifier_source_value v50
        value_source_value v50
        observation_event_id bigint
        obs_event_field_concept_id int
    """,
    "note": """
        note_id int!
        person_id int!
        note_date date!
        note_datetime ts
        note_type_concept_id int!
        note_class_concept_id int!
        note_title v250
        note_text text!
        encoding_concept_id int!
        language_concept_id int!
        provider_id int
        visit_occurrence_id int
        visit_detail_id int
        note_source_value v50
        note_event_id bigint
        note_event_field_concept_id int
    """,
    "location": """
        location_id int!
        address_1 v50
        address_2 v50
        city v50
        state v2
        zip v9
        county v20
        location_source_value v50
        country_concept_id int
        country_source_value v80
        latitude num
        longitude num
    """,
    "episode": """
        episode_id bigint!
        person_id bigint!
        episode_concept_id int!
        episode_start_date date!
        episode_start_datetime ts
        episode_end_date date
        episode_end_datetime ts
        episode_parent_id bigint
        episode_number int
        episode_object_concept_id int!
        episode_type_concept_id int!
        episode_source_value v50
        episode_source_concept_id int
    """,
    "episode_event": """
        episode_id bigint!
        event_id bigint!
        episode_event_field_concept_id int!
    """,
    "metadata": """
        metadata_id int!
        metadata_concept_id int!
        metadata_type_concept_id int!
        name v250!
        value_as_string v250
        value_as_concept_id int
        value_as_number num
        metadata_date date
        metadata_datetime ts
    """,
    "cdm_source": """
        cdm_source_name v255!
        cdm_source_abbreviation v25!
        cdm_holder v255!
        source_description text
        source_documentation_reference v255
        cdm_etl_reference v255
        source_release_date date!
        cdm_release_date date!
        cdm_version v10
        cdm_version_concept_id int!
        vocabulary_version v20!
    """,
    "vocabulary": """
        vocabulary_id v20!
        vocabulary_name v255!
        vocabulary_reference v255
        vocabulary_version v255
        vocabulary_concept_id int!
    """,
    "cohort": """
        cohort_definition_id int!
        subject_id int!
        cohort_start_date date!
        cohort_end_date date!
    """,
}

_TYPE_RE = re.compile(r"^(int|bigint|num|date|ts|text|v\d+)$")


def _parse(spec: str) -> tuple[Column, ...]:
    columns = []
    for line in spec.strip().splitlines():
        name, type_ = line.split()
        required = type_.endswith("!")
        type_ = type_.rstrip("!")
        if not _TYPE_RE.match(type_):  # a typo in the table specs above must fail at import, not at load time
            raise ValueError(f"unknown CDM column type {type_!r} for {name}")
        columns.append(Column(name, type_, required))
    return tuple(columns)


_TABLES: dict[str, dict[str, tuple[Column, ...]]] = {
    version: {name: _parse(spec) for name, spec in {**_COMMON, **extra}.items()}
    for version, extra in (("5.3", _V53), ("5.4", _V54))
}


def check_version(cdm_version: str) -> str:
    """``cdm_version`` normalised to "5.3" or "5.4" ("v5.3.1" → "5.3"); ValueError for anything else."""
    match = re.fullmatch(r"v?(5\.[34])(\.\d+)?", str(cdm_version).strip())
    if not match:
        raise ValueError(f"unknown CDM version {cdm_version!r}: Soyang supports {' and '.join(CDM_VERSIONS)}")
    return match.group(1)


def cdm_tables(cdm_version: str) -> dict[str, tuple[Column, ...]]:
    """Every table of the CDM version, table name → columns in specification order."""
    return _TABLES[check_version(cdm_version)]


def sql_type(kind: str, type_: str) -> str:
    """The engine's SQL type for a column type token."""
    if type_.startswith("v"):
        # Spark: STRING, not VARCHAR(n), whose length Spark would check on every write of a real ETL's text.
        return {"postgresql": f"VARCHAR({type_[1:]})", "spark": "STRING"}.get(kind, "VARCHAR")
    mapping = {
        "int": "INTEGER",
        "bigint": "BIGINT",
        "num": "NUMERIC" if kind == "postgresql" else "DOUBLE",
        "date": "DATE",
        "ts": "TIMESTAMP",
        "text": {"postgresql": "TEXT", "spark": "STRING"}.get(kind, "VARCHAR"),
    }
    return mapping[type_]


def create_table_sql(kind: str, schema: str, table: str, cdm_version: str, *, name: str | None = None) -> str:
    """``CREATE TABLE schema.table (...)`` for one CDM table (Spark: a Parquet table of the catalog); ``name``:
    the table's name when it is not the CDM's (a staging copy)."""
    columns = cdm_tables(cdm_version)[table]
    body = ",\n    ".join(
        f"{quote_ident(c.name)} {sql_type(kind, c.type)}{' NOT NULL' if c.required and kind != 'spark' else ''}"
        for c in columns
    )
    using = "\nUSING parquet" if kind == "spark" else ""
    return f"CREATE TABLE {quote_ident(schema)}.{quote_ident(name or table)} (\n    {body}\n){using}"


def create_tables_sql(kind: str, schema: str, cdm_version: str) -> list[str]:
    """``CREATE TABLE`` statements for every table of the version."""
    return [create_table_sql(kind, schema, table, cdm_version) for table in cdm_tables(cdm_version)]


# Event tables: (table, person column, concept column, start date column). Cohort criteria select events by
# concept (codeset join) and date, then join to the person's observation period.
EVENT_TABLES = (
    ("condition_occurrence", "person_id", "condition_concept_id", "condition_start_date"),
    ("drug_exposure", "person_id", "drug_concept_id", "drug_exposure_start_date"),
    ("procedure_occurrence", "person_id", "procedure_concept_id", "procedure_date"),
    ("device_exposure", "person_id", "device_concept_id", "device_exposure_start_date"),
    ("measurement", "person_id", "measurement_concept_id", "measurement_date"),
    ("observation", "person_id", "observation_concept_id", "observation_date"),
    ("visit_occurrence", "person_id", "visit_concept_id", "visit_start_date"),
    ("visit_detail", "person_id", "visit_detail_concept_id", "visit_detail_start_date"),
    ("specimen", "person_id", "specimen_concept_id", "specimen_date"),
    ("death", "person_id", "cause_concept_id", "death_date"),
    ("note", "person_id", "note_type_concept_id", "note_date"),
    ("condition_era", "person_id", "condition_concept_id", "condition_era_start_date"),
    ("drug_era", "person_id", "drug_concept_id", "drug_era_start_date"),
    ("dose_era", "person_id", "drug_concept_id", "dose_era_start_date"),
    ("payer_plan_period", "person_id", "payer_concept_id", "payer_plan_period_start_date"),
    ("episode", "person_id", "episode_concept_id", "episode_start_date"),
)

# Vocabulary lookups: concept by id and code, the hierarchy both ways (descendants of a codeset and ancestors
# of a concept), mappings.
VOCABULARY_INDEXES = (
    ("concept", ("concept_id",)),
    ("concept", ("concept_code", "vocabulary_id")),
    ("concept", ("domain_id", "standard_concept")),
    ("concept_ancestor", ("ancestor_concept_id", "descendant_concept_id")),
    ("concept_ancestor", ("descendant_concept_id", "ancestor_concept_id")),
    ("concept_relationship", ("concept_id_1", "relationship_id")),
    ("concept_relationship", ("concept_id_2", "relationship_id")),
    ("concept_synonym", ("concept_id",)),
    ("source_to_concept_map", ("source_code", "source_vocabulary_id")),
    ("drug_strength", ("drug_concept_id",)),
)


#: Columns a cohort criterion reads besides the index key (its id, end date, visit; drug end dates also use the
#: days supply): carried in the concept index (``INCLUDE``) so a criterion is answered by an index-only scan.
#: Columns missing from a CDM version are left out.
EVENT_INDEX_INCLUDE: dict[str, tuple[str, ...]] = {
    "condition_occurrence": ("condition_occurrence_id", "condition_end_date", "visit_occurrence_id"),
    "drug_exposure": ("drug_exposure_id", "drug_exposure_end_date", "days_supply", "visit_occurrence_id"),
    "procedure_occurrence": ("procedure_occurrence_id", "procedure_end_date", "visit_occurrence_id"),
    "device_exposure": ("device_exposure_id", "device_exposure_end_date", "visit_occurrence_id"),
    "measurement": ("measurement_id", "visit_occurrence_id"),
    "observation": ("observation_id", "visit_occurrence_id"),
    "visit_occurrence": ("visit_occurrence_id", "visit_end_date"),
    "visit_detail": ("visit_detail_id", "visit_detail_end_date", "visit_occurrence_id"),
    "condition_era": ("condition_era_id", "condition_era_end_date", "condition_occurrence_count"),
    "drug_era": ("drug_era_id", "drug_era_end_date"),
    "dose_era": ("dose_era_id", "dose_era_end_date"),
}

#: Source-concept indexes: criteria on source concepts (ICD codes, common in phenotypes) and every custom-era
#: exit strategy (drug_source_concept_id) read these columns, a whole-table scan without an index.
SOURCE_CONCEPT_INDEXES = (
    ("condition_occurrence", "condition_source_concept_id", "person_id", "condition_start_date"),
    ("drug_exposure", "drug_source_concept_id", "person_id", "drug_exposure_start_date"),
    ("procedure_occurrence", "procedure_source_concept_id", "person_id", "procedure_date"),
    ("measurement", "measurement_source_concept_id", "person_id", "measurement_date"),
    ("observation", "observation_source_concept_id", "person_id", "observation_date"),
)


@dataclass(frozen=True)
class IndexSpec:
    """One index of a loaded CDM: its name, table, key columns and included (non-key) columns."""

    name: str
    table: str
    columns: tuple[str, ...]
    include: tuple[str, ...] = ()


def index_specs(kind: str, cdm_version: str) -> list[IndexSpec]:
    """The indexes cohort queries need on engine ``kind``.

    PostgreSQL gets, on every event table, (person, start date) and (concept, person, start date) with the
    columns criteria read included (index-only scans once the loader has vacuumed the table), the
    observation period by person (covering its dates), the drug source concepts, and the vocabulary lookups.
    DuckDB gets only the vocabulary lookups: its ART indexes serve point lookups, not the scans and hash joins of
    cohort queries (zone maps do that), and on large event tables they cost memory and load time for nothing.
    """
    if kind == "spark":
        return []  # Spark tables have no indexes: files are pruned by their Parquet statistics
    tables = cdm_tables(cdm_version)
    # (table, name suffix, columns, included columns); names stay short and unique within the schema.
    wanted: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = [
        (table, f"{columns[0].removesuffix('_concept_id').removesuffix('_id')}_{i}", columns, ())
        for i, (table, columns) in enumerate(VOCABULARY_INDEXES)
    ]
    if kind == "postgresql":
        wanted.append(
            (
                "observation_period",
                "person",
                ("person_id", "observation_period_start_date", "observation_period_end_date"),
                ("observation_period_id", "period_type_concept_id"),
            )
        )
        for table, person, concept, start in EVENT_TABLES:
            wanted.append((table, "person", (person, start), ()))
            wanted.append((table, "concept", (concept, person, start), EVENT_INDEX_INCLUDE.get(table, ())))
        for table, source, person, start in SOURCE_CONCEPT_INDEXES:
            wanted.append((table, "source_concept", (source, person, start), EVENT_INDEX_INCLUDE.get(table, ())))
    specs = []
    for table, suffix, columns, include in wanted:
        if table not in tables:
            continue
        present = {c.name for c in tables[table]}
        if not set(columns) <= present:
            continue
        included = tuple(c for c in include if c in present and c not in columns)
        specs.append(IndexSpec(f"ix_{table}_{suffix}", table, columns, included))
    return specs


def index_sql(kind: str, schema: str, cdm_version: str) -> list[str]:
    """``CREATE INDEX`` statements for cohort queries (see ``index_specs``)."""
    return [
        f"CREATE INDEX {quote_ident(spec.name)} ON {quote_ident(schema)}.{quote_ident(spec.table)} "
        f"({', '.join(quote_ident(c) for c in spec.columns)})"
        + (f" INCLUDE ({', '.join(quote_ident(c) for c in spec.include)})" if spec.include else "")
        for spec in index_specs(kind, cdm_version)
    ]


def index_names(kind: str, cdm_version: str) -> set[str]:
    """Names of the indexes a load creates (tells whether a loaded schema has the current ones)."""
    return {spec.name for spec in index_specs(kind, cdm_version)}


def cluster_sql(kind: str, schema: str, columns: dict[str, list[str]]) -> list[str]:
    """Statements that store each event table of ``schema`` in (concept, person, start date) order (DuckDB).

    DuckDB keeps min/max per row group (zone maps) and skips the groups a filter excludes, the concept ids of a
    criterion's codeset included (pushed down from the join as a dynamic filter). In load order a concept's rows
    are spread over every row group; sorted, they sit in a few, so a criterion reads those instead of the whole
    table (condition_occurrence at 1,000,000 synthetic persons: 90 ms to 5 ms per concept-set scan). This is
    DuckDB's counterpart of PostgreSQL's concept indexes. ``columns``: table → its column names, as loaded.
    """
    if kind != "duckdb":
        return []
    statements = []
    for table, person, concept, start in EVENT_TABLES:
        present = columns.get(table, [])
        if not {person, concept, start} <= set(present):
            continue
        name = f"{quote_ident(schema)}.{quote_ident(table)}"
        order = ", ".join(quote_ident(c) for c in (concept, person, start))
        statements.append(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {name} ORDER BY {order}")
    return statements


# ---------------------------------------------------------------------------------------------------------------
# What counting reads: the tables a site's CDM must have before Soyang can count on it
# ---------------------------------------------------------------------------------------------------------------

#: CDM tables (CDM schema) that the cohort compiler, the demographics and the record keys read: the domains'
#: event tables, the person and their observation periods, and what visit criteria join (provider, care site,
#: location). ``cohorts.tests.test_cdm_contract`` proves that every table and column of the domains table is here.
COUNTED_CDM_TABLES = (
    "person",
    "observation_period",
    "condition_occurrence",
    "drug_exposure",
    "procedure_occurrence",
    "device_exposure",
    "measurement",
    "observation",
    "visit_occurrence",
    "visit_detail",
    "specimen",
    "death",
    "condition_era",
    "drug_era",
    "dose_era",
    "payer_plan_period",
    "provider",
    "care_site",
    "location",
)

#: Vocabulary tables (vocabulary schema) the compiler and the demographics read: concept sets are resolved
#: through the hierarchy and the "Maps to" relationships, concept names label the demographics.
COUNTED_VOCABULARY_TABLES = ("concept", "concept_ancestor", "concept_relationship")

#: Columns outside CDM 5.3 and 5.4 that one Circe construct reads (a care site's location region: Circe's
#: ``PlaceOfServiceLocation`` and ``LocationRegion``, written for CDM v6). Their absence is reported, never
#: refused: a definition using that construct then fails with the database's message, any other counts.
CDM_EXTENSION_COLUMNS: dict[str, tuple[str, ...]] = {
    "location_history": ("location_history_id", "location_id", "entity_id", "domain_id", "start_date", "end_date"),
    "location": ("region_concept_id",),
}


def counted_columns(cdm_version: str) -> dict[str, tuple[str, ...]]:
    """Every table counting reads in CDM ``cdm_version`` → all its columns of the specification.

    The whole table as specified rather than a hand-kept subset: a CDM made with the OHDSI DDL has every
    column, so demanding them all refuses nothing real, and a subset would drift from the compiler.
    """
    tables = cdm_tables(cdm_version)
    return {table: tuple(c.name for c in tables[table]) for table in (*COUNTED_CDM_TABLES, *COUNTED_VOCABULARY_TABLES)}
