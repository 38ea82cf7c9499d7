"""What a dataset request may ask for: the OMOP tables and, per table, the allow-listed columns.

An allow-list, not a deny-list: a column missing here can never be requested, so a new CDM column is never
extracted by accident. Never on it: ``*_source_value`` columns and free text (``value_as_string``, ``sig``,
``stop_reason``…), which carry local codes and narrative that may identify a person; provider, care-site and
visit-detail ids (links to small groups of staff and places); datetimes (the date column is enough and is
de-identified). Only columns present in both OMOP CDM v5.3 and v5.4 are listed, so a request works at every site.

Each column has a kind that tells the extraction how to de-identify it:
``person`` (replaced by the request's pseudonym), ``own_id`` and ``visit_id`` (replaced by per-request surrogates),
``date`` (shifted or reduced to year-month), ``birth_year`` (grouped above the policy's maximum age, withheld when
k-anonymity needs it), ``demographic`` (a person's attribute that others may know: sex, race, ethnicity, and any
location column added later; withheld when k-anonymity needs it), ``value`` (kept: concept ids, numbers).

The quasi-identifiers of an extract are derived from these kinds (``quasi_identifiers``): every released person
column of kind ``birth_year`` or ``demographic``, plus the derived age group. A column added with one of these kinds
is checked for k-anonymity without any other change.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import pgettext_lazy

PERSON, OWN_ID, VISIT_ID, DATE, BIRTH_YEAR, VALUE = "person", "own_id", "visit_id", "date", "birth_year", "value"
DEMOGRAPHIC = "demographic"


@dataclass(frozen=True)
class Table:
    """One requestable OMOP table: its columns (name → kind) and the date that places an event in the window."""

    name: str
    label: str
    columns: dict[str, str]
    event_date: str | None  # None: not windowed (person)

    @property
    def selectable(self) -> list[str]:
        """Columns a requester may tick; ``person_id`` always comes (as a pseudonym)."""
        return [c for c, kind in self.columns.items() if kind != PERSON]

    def surrogate_prefix(self) -> str:
        return "".join(part[0] for part in self.name.split("_")).upper()


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "person",
            pgettext_lazy("OMOP table", "Persons"),
            {
                "person_id": PERSON,
                "gender_concept_id": DEMOGRAPHIC,
                "year_of_birth": BIRTH_YEAR,
                "race_concept_id": DEMOGRAPHIC,
                "ethnicity_concept_id": DEMOGRAPHIC,
            },
            None,
        ),
        Table(
            "visit_occurrence",
            pgettext_lazy("OMOP table", "Visits"),
            {
                "visit_occurrence_id": VISIT_ID,
                "person_id": PERSON,
                "visit_concept_id": VALUE,
                "visit_start_date": DATE,
                "visit_end_date": DATE,
                "visit_type_concept_id": VALUE,
            },
            "visit_start_date",
        ),
        Table(
            "condition_occurrence",
            pgettext_lazy("OMOP table", "Conditions"),
            {
                "condition_occurrence_id": OWN_ID,
                "person_id": PERSON,
                "condition_concept_id": VALUE,
                "condition_start_date": DATE,
                "condition_end_date": DATE,
                "condition_type_concept_id": VALUE,
                "condition_status_concept_id": VALUE,
                "visit_occurrence_id": VISIT_ID,
            },
            "condition_start_date",
        ),
        Table(
            "drug_exposure",
            pgettext_lazy("OMOP table", "Drugs"),
            {
                "drug_exposure_id": OWN_ID,
                "person_id": PERSON,
                "drug_concept_id": VALUE,
                "drug_exposure_start_date": DATE,
                "drug_exposure_end_date": DATE,
                "drug_type_concept_id": VALUE,
                "quantity": VALUE,
                "days_supply": VALUE,
                "route_concept_id": VALUE,
                "visit_occurrence_id": VISIT_ID,
            },
            "drug_exposure_start_date",
        ),
        Table(
            "procedure_occurrence",
            pgettext_lazy("OMOP table", "Procedures"),
            {
                "procedure_occurrence_id": OWN_ID,
                "person_id": PERSON,
                "procedure_concept_id": VALUE,
                "procedure_date": DATE,
                "procedure_type_concept_id": VALUE,
                "modifier_concept_id": VALUE,
                "quantity": VALUE,
                "visit_occurrence_id": VISIT_ID,
            },
            "procedure_date",
        ),
        Table(
            "measurement",
            pgettext_lazy("OMOP table", "Measurements"),
            {
                "measurement_id": OWN_ID,
                "person_id": PERSON,
                "measurement_concept_id": VALUE,
                "measurement_date": DATE,
                "measurement_type_concept_id": VALUE,
                "operator_concept_id": VALUE,
                "value_as_number": VALUE,
                "value_as_concept_id": VALUE,
                "unit_concept_id": VALUE,
                "range_low": VALUE,
                "range_high": VALUE,
                "visit_occurrence_id": VISIT_ID,
            },
            "measurement_date",
        ),
        Table(
            "observation",
            pgettext_lazy("OMOP table", "Observations"),
            {
                "observation_id": OWN_ID,
                "person_id": PERSON,
                "observation_concept_id": VALUE,
                "observation_date": DATE,
                "observation_type_concept_id": VALUE,
                "value_as_number": VALUE,
                "value_as_concept_id": VALUE,
                "qualifier_concept_id": VALUE,
                "unit_concept_id": VALUE,
                "visit_occurrence_id": VISIT_ID,
            },
            "observation_date",
        ),
        Table(
            "death",
            pgettext_lazy("OMOP table", "Death"),
            {
                "person_id": PERSON,
                "death_date": DATE,
                "death_type_concept_id": VALUE,
                "cause_concept_id": VALUE,
            },
            "death_date",
        ),
    )
}

#: Derived column added to the person table: the age group at the index date (the k-anonymity quasi-identifier).
AGE_GROUP = "age_group"


def quasi_identifiers(selection: dict[str, list[str]]) -> list[str]:
    """The person columns a selection releases that identify a person together with outside knowledge (birth year
    and demographics, in catalogue order), after the derived age group, which every extract releases."""
    person = TABLES["person"]
    released = selection.get("person", [])
    return [
        AGE_GROUP,
        *(c for c in person.selectable if c in released and person.columns[c] in (BIRTH_YEAR, DEMOGRAPHIC)),
    ]


def validate_selection(selection: dict[str, list[str]]) -> dict[str, list[str]]:
    """The selection in catalogue order, or ValueError naming what is not allowed. The person table is always
    part of a dataset (every other table refers to its pseudonyms)."""
    if not isinstance(selection, dict):
        raise ValueError("the selection must map table names to column lists")
    unknown = sorted(set(selection) - set(TABLES))
    if unknown:
        raise ValueError(f"these tables cannot be requested: {', '.join(unknown)}")
    cleaned: dict[str, list[str]] = {}
    for name, table in TABLES.items():
        if name not in selection:
            continue
        columns = selection[name]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise ValueError(f"the columns of {name} must be a list of names")
        refused = sorted(set(columns) - set(table.selectable))
        if refused:
            raise ValueError(f"these columns of {name} cannot be requested: {', '.join(refused)}")
        cleaned[name] = [c for c in table.selectable if c in columns]
    if "person" not in cleaned:
        cleaned = {"person": [], **cleaned}
    return cleaned


def narrow_selection(requested: dict[str, list[str]], narrowed: dict[str, list[str]]) -> dict[str, list[str]]:
    """A steward's narrowing: a subset of what was requested (tables and columns), or ValueError."""
    narrowed = validate_selection(narrowed)
    for name, columns in narrowed.items():
        if name not in requested:
            raise ValueError(f"the table {name} was not requested")
        extra = sorted(set(columns) - set(requested[name]))
        if extra:
            raise ValueError(f"these columns of {name} were not requested: {', '.join(extra)}")
    return narrowed
