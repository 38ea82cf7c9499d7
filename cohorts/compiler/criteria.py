"""One SQL builder per CDM domain: a criterion → a query of its events.

Every builder returns rows ``(person_id, event_id, start_date, end_date, visit_occurrence_id, sort_date, extras…)``
with Circe's semantics: the concept-set join and the ``First`` ordinal are computed on the domain table itself,
the other filters afterwards (so "first occurrence" means the first of the concept set, then filtered). Circe's
quirks that change results are kept on purpose (marked "as Circe") so that Soyang counts what ATLAS counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from cohorts.compiler.context import CODESETS, Context, lit
from cohorts.expression import (
    ConceptSetSelection,
    Criterion,
    DateRange,
    ExpressionError,
    NumericRange,
    Period,
    TextFilter,
)
from cohorts.expression.domains import COUNT_COLUMNS, DOMAINS, Domain

_OPS = {"lt": "<", "lte": "<=", "eq": "=", "!eq": "<>", "gt": ">", "gte": ">="}
_ALWAYS_THERE = {"START_DATE", "END_DATE", "VISIT_ID"}


# ---- value filters ---------------------------------------------------------------------------------------------
def numeric_clause(ctx: Context, expr: str, rng: NumericRange, *, decimal: bool = False) -> str:
    """``expr`` compared with a range. Integer ranges truncate like Circe (Java ``intValue``); decimal ranges
    are rounded to 4 places as Circe prints them, and bound."""

    def value(number: float | int) -> str:
        if decimal:
            return ctx.bind(float(f"{float(number):.4f}"))
        return lit(int(number))

    if rng.op.endswith("bt"):
        assert rng.extent is not None
        clause = f"({expr} >= {value(rng.value)} and {expr} <= {value(rng.extent)})"
        return f"not {clause}" if rng.op.startswith("!") else clause
    return f"{expr} {_OPS[rng.op]} {value(rng.value)}"


def date_clause(ctx: Context, expr: str, rng: DateRange) -> str:
    if rng.op.endswith("bt"):
        assert rng.extent is not None
        clause = f"({expr} >= {ctx.bind(rng.value)} and {expr} <= {ctx.bind(rng.extent)})"
        return f"not {clause}" if rng.op.startswith("!") else clause
    return f"{expr} {_OPS[rng.op]} {ctx.bind(rng.value)}"


def text_clause(ctx: Context, expr: str, flt: TextFilter) -> str:
    """A LIKE pattern, bound; wildcards inside the text behave as in Circe (they are not escaped there either)."""
    op = flt.op
    prefix = "%" if op.endswith("endsWith") or op.endswith("contains") else ""
    suffix = "%" if op.endswith("startsWith") or op.endswith("contains") else ""
    negation = "not " if op.startswith("!") else ""
    return f"{expr} {negation}like {ctx.bind(prefix + flt.text + suffix)}"


def concepts_in(expr: str, concept_ids: Sequence[int], *, exclude: bool = False) -> str:
    ids = ",".join(lit(c) for c in concept_ids)
    return f"{expr} {'not ' if exclude else ''}in ({ids})"


def selection_clause(expr: str, sel: ConceptSetSelection) -> str:
    if sel.codeset_id is not None:
        negation = "not " if sel.is_exclusion else ""
        return f"{expr} {negation}in (select concept_id from {CODESETS} where codeset_id = {lit(sel.codeset_id)})"
    return f"{expr} is {'' if sel.is_exclusion else 'not '}null"


def codeset_join(alias: str, column: str, codeset_id: int) -> str:
    return f"JOIN {CODESETS} {alias} ON ({column} = {alias}.concept_id AND {alias}.codeset_id = {lit(codeset_id)})"


# ---- builders --------------------------------------------------------------------------------------------------
class DomainBuilder:
    """The shape shared by the domain builders. The facts of the domain (its table, event id, date and concept
    columns, whether it has ``First`` and visits) come from ``domain``, its row of the table of domains; each
    subclass adds the SQL of its own: the end date expression, the columns a count may use, the filters."""

    domain: ClassVar[Domain]
    alias: ClassVar[str]
    end_sql: ClassVar[str]  # in terms of ``{start}``, ``{end}`` (the domain's date columns) and ``{a}`` (its alias)
    count_columns: ClassVar[dict[str, str]] = {}

    def __init__(self, ctx: Context, criterion: Criterion, extras: Sequence[str]) -> None:
        self.ctx = ctx
        self.c = criterion
        self.extras = extras
        self.joins: list[str] = []
        self.wheres: list[str] = []

    # -- pieces
    def start_end(self) -> tuple[str, str]:
        """The event's start and end, after ``DateAdjustment``."""
        a, domain = self.alias, self.domain
        start = f"{a}.{domain.start_column}"
        end = self.end_sql.format(a=a, start=start, end=f"{a}.{domain.end_column}")
        adj = self.c.date_adjustment
        if adj is None:
            return start, end
        d = self.ctx.dialect
        begin = d.date_add(start if adj.start_with == "START_DATE" else end, adj.start_offset)
        finish = d.date_add(start if adj.end_with == "START_DATE" else end, adj.end_offset)
        return begin, finish

    def inner_where(self) -> str:
        """The concept-set filters on the domain table itself. Circe joins the codesets table (or uses IN for
        eras and specimens); as its (codeset_id, concept_id) rows are distinct, a semi-join keeps the same rows,
        and the dialect writes it so that the domain table's concept index is used (``Dialect.in_codeset``)."""
        conditions = []
        domain = self.domain
        codeset_id = self.c.get("CodesetId")
        if codeset_id is not None and domain.concept_column:
            conditions.append(self.ctx.in_codeset(f"{self.alias}.{domain.concept_column}", codeset_id))
        if domain.source_concept is not None and self.c.get(domain.source_concept) is not None:
            source = self.c.get(domain.source_concept)
            conditions.append(self.ctx.in_codeset(f"{self.alias}.{domain.source_concept_column}", source))
        return ("\nWHERE " + "\nAND ".join(conditions)) if conditions else ""

    def ordinal_order(self) -> str:
        a = self.alias
        return f"{a}.{self.domain.start_column}, {a}.{self.domain.id_column}"

    def person_join(self) -> None:
        join = f"JOIN {self.ctx.table('person')} P ON C.person_id = P.person_id"
        if join not in self.joins:
            self.joins.append(join)

    def filters(self) -> None:
        """Add ``self.joins`` / ``self.wheres`` for the criterion's attributes (subclasses)."""

    def outer_start_end(self) -> tuple[str, str]:
        return "C.start_date", "C.end_date"

    def extra_columns(self) -> str:
        out = []
        for column in self.extras:
            if column in _ALWAYS_THERE:
                continue
            source = self.count_columns.get(column)
            if source is None:
                raise ExpressionError(
                    [("", f"Occurrence.CountColumn {column} is not available for {self.c.domain} criteria")]
                )
            if source == "DURATION":
                source = self.duration()
            out.append(f", {source} AS {COUNT_COLUMNS[column]}")
        return "".join(out)

    def sql(self) -> str:
        if self.c.date_adjustment is not None:
            self.wheres.append("C.end_date >= C.start_date")
        self.filters()
        start, end = self.start_end()
        ordinal = ""
        if self.domain.has_first and self.c.get("First"):
            ordinal = (
                f", row_number() OVER (PARTITION BY {self.alias}.person_id ORDER BY {self.ordinal_order()}) AS ordinal"
            )
            self.wheres.append("C.ordinal = 1")
        inner = (
            f"SELECT {self.alias}.*, {start} AS start_date, {end} AS end_date{ordinal}\n"
            f"FROM {self.ctx.table(self.domain.table)} {self.alias}" + self.inner_where()
        )
        visit = "C.visit_occurrence_id" if self.domain.visit else "CAST(NULL AS BIGINT)"
        out_start, out_end = self.outer_start_end()
        where = ("\nWHERE " + "\nAND ".join(self.wheres)) if self.wheres else ""
        event_id = self.domain.id_column
        return (
            f"SELECT C.person_id, C.{event_id} AS event_id, {out_start} AS start_date, {out_end} AS end_date, "
            f"{visit} AS visit_occurrence_id, C.start_date AS sort_date{self.extra_columns()}\n"
            f"FROM (\n{inner}\n) C\n" + "\n".join(self.joins) + where
        )

    # -- attribute helpers shared by several domains
    def dates(self, attribute: str, expr: str) -> None:
        rng = self.c.get(attribute)
        if rng is not None:
            self.wheres.append(date_clause(self.ctx, expr, rng))

    def numbers(self, attribute: str, expr: str, *, decimal: bool = False) -> None:
        rng = self.c.get(attribute)
        if rng is not None:
            self.wheres.append(numeric_clause(self.ctx, expr, rng, decimal=decimal))

    def concept_filter(self, attribute: str, expr: str, *, exclude_attribute: str | None = None) -> None:
        concepts = self.c.get(attribute)
        if concepts:
            exclude = bool(self.c.get(exclude_attribute)) if exclude_attribute else False
            self.wheres.append(concepts_in(expr, concepts, exclude=exclude))
        sel = self.c.get(attribute + "CS")
        if sel is not None:
            self.wheres.append(selection_clause(expr, sel))

    def text(self, attribute: str, expr: str) -> None:
        flt = self.c.get(attribute)
        if flt is not None:
            self.wheres.append(text_clause(self.ctx, expr, flt))

    def age_gender(self, age_expr: str = "C.start_date") -> None:
        d = self.ctx.dialect
        if self.c.get("Age") is not None:
            self.person_join()
            self.numbers("Age", f"{d.year(age_expr)} - P.year_of_birth")
        if self.c.get("Gender") or self.c.get("GenderCS") is not None:
            self.person_join()
            self.concept_filter("Gender", "P.gender_concept_id")

    def era_person(self) -> None:
        d = self.ctx.dialect
        for attribute, column in (("AgeAtStart", "C.start_date"), ("AgeAtEnd", "C.end_date")):
            if self.c.get(attribute) is not None:
                self.person_join()
                self.numbers(attribute, f"{d.year(column)} - P.year_of_birth")
        if self.c.get("Gender") or self.c.get("GenderCS") is not None:
            self.person_join()
            self.concept_filter("Gender", "P.gender_concept_id")

    def provider_visit(self) -> None:
        if self.c.get("VisitType") or self.c.get("VisitTypeCS") is not None:
            self.joins.append(
                f"JOIN {self.ctx.table('visit_occurrence')} V ON C.visit_occurrence_id = V.visit_occurrence_id "
                "AND C.person_id = V.person_id"
            )
            self.concept_filter("VisitType", "V.visit_concept_id")
        if self.c.get("ProviderSpecialty") or self.c.get("ProviderSpecialtyCS") is not None:
            self.joins.append(f"LEFT JOIN {self.ctx.table('provider')} PR ON C.provider_id = PR.provider_id")
            self.concept_filter("ProviderSpecialty", "PR.specialty_concept_id")

    def duration(self) -> str:
        return self.ctx.dialect.days_between("C.start_date", "C.end_date")


class ConditionOccurrenceBuilder(DomainBuilder):
    domain, alias = DOMAINS["ConditionOccurrence"], "co"
    end_sql = "COALESCE({end}, ({start} + 1))"
    count_columns = {"DOMAIN_CONCEPT": "C.condition_concept_id", "DURATION": "DURATION"}

    def filters(self) -> None:
        self.dates("OccurrenceStartDate", "C.start_date")
        self.dates("OccurrenceEndDate", "C.end_date")
        self.concept_filter("ConditionType", "C.condition_type_concept_id", exclude_attribute="ConditionTypeExclude")
        self.text("StopReason", "C.stop_reason")
        self.age_gender()
        self.provider_visit()
        self.concept_filter("ConditionStatus", "C.condition_status_concept_id")


class ConditionEraBuilder(DomainBuilder):
    domain, alias = DOMAINS["ConditionEra"], "ce"
    end_sql = "{end}"
    count_columns = {
        "DOMAIN_CONCEPT": "C.condition_concept_id",
        "ERA_OCCURRENCES": "C.condition_occurrence_count",
        "DURATION": "DURATION",
    }

    def filters(self) -> None:
        self.dates("EraStartDate", "C.start_date")
        self.dates("EraEndDate", "C.end_date")
        self.numbers("OccurrenceCount", "C.condition_occurrence_count")
        self.numbers("EraLength", self.duration())
        self.era_person()


class DrugExposureBuilder(DomainBuilder):
    domain, alias = DOMAINS["DrugExposure"], "de"
    end_sql = "COALESCE({end}, ({start} + CAST({a}.days_supply AS INTEGER)), ({start} + 1))"
    count_columns = {
        "DAYS_SUPPLY": "C.days_supply",
        "DOMAIN_CONCEPT": "C.drug_concept_id",
        "DURATION": "DURATION",
        "QUANTITY": "C.quantity",
        "REFILLS": "C.refills",
    }

    def filters(self) -> None:
        self.dates("OccurrenceStartDate", "C.start_date")
        self.dates("OccurrenceEndDate", "C.start_date")  # as Circe: the end-date filter reads the start date
        self.concept_filter("DrugType", "C.drug_type_concept_id", exclude_attribute="DrugTypeExclude")
        self.text("StopReason", "C.stop_reason")
        self.numbers("Refills", "C.refills")
        self.numbers("Quantity", "C.quantity", decimal=True)
        self.numbers("DaysSupply", "C.days_supply")
        self.concept_filter("RouteConcept", "C.route_concept_id")
        self.concept_filter("DoseUnit", "C.dose_unit_concept_id")
        self.text("LotNumber", "C.lot_number")
        self.age_gender()
        self.provider_visit()


class DrugEraBuilder(DomainBuilder):
    domain, alias = DOMAINS["DrugEra"], "de"
    end_sql = "{end}"
    count_columns = {
        "DOMAIN_CONCEPT": "C.drug_concept_id",
        "ERA_OCCURRENCES": "C.drug_exposure_count",
        "GAP_DAYS": "C.gap_days",
        "DURATION": "DURATION",
    }

    def filters(self) -> None:
        self.dates("EraStartDate", "C.start_date")
        self.dates("EraEndDate", "C.end_date")
        self.numbers("OccurrenceCount", "C.drug_exposure_count")
        self.numbers("EraLength", self.duration())
        self.numbers("GapDays", "C.gap_days")
        self.era_person()


class DoseEraBuilder(DomainBuilder):
    domain, alias = DOMAINS["DoseEra"], "de"
    end_sql = "{end}"
    count_columns = {
        "DOMAIN_CONCEPT": "C.drug_concept_id",
        "DURATION": "DURATION",
        "UNIT": "C.unit_concept_id",
        "VALUE_AS_NUMBER": "C.dose_value",
    }

    def filters(self) -> None:
        self.dates("EraStartDate", "C.start_date")
        self.dates("EraEndDate", "C.end_date")
        self.concept_filter("Unit", "C.unit_concept_id")
        self.numbers("DoseValue", "C.dose_value", decimal=True)
        self.numbers("EraLength", self.duration())
        self.era_person()


class ProcedureOccurrenceBuilder(DomainBuilder):
    domain, alias = DOMAINS["ProcedureOccurrence"], "po"
    end_sql = "({start} + 1)"
    count_columns = {
        "DOMAIN_CONCEPT": "C.procedure_concept_id",
        "DURATION": "CAST(1 AS INTEGER)",
        "QUANTITY": "C.quantity",
    }

    def filters(self) -> None:
        self.dates("OccurrenceStartDate", "C.start_date")
        self.concept_filter("ProcedureType", "C.procedure_type_concept_id", exclude_attribute="ProcedureTypeExclude")
        self.concept_filter("Modifier", "C.modifier_concept_id")
        self.numbers("Quantity", "C.quantity")
        self.age_gender()
        self.provider_visit()


class MeasurementBuilder(DomainBuilder):
    domain, alias = DOMAINS["Measurement"], "m"
    end_sql = "({start} + 1)"
    count_columns = {
        "DOMAIN_CONCEPT": "C.measurement_concept_id",
        "DURATION": "CAST(1 AS INTEGER)",
        "VALUE_AS_NUMBER": "C.value_as_number",
        "RANGE_HIGH": "C.range_high",
        "RANGE_LOW": "C.range_low",
    }

    def filters(self) -> None:
        d = self.ctx.dialect
        self.dates("OccurrenceStartDate", "C.start_date")
        self.concept_filter(
            "MeasurementType", "C.measurement_type_concept_id", exclude_attribute="MeasurementTypeExclude"
        )
        self.concept_filter("Operator", "C.operator_concept_id")
        self.numbers("ValueAsNumber", "C.value_as_number", decimal=True)
        self.concept_filter("ValueAsConcept", "C.value_as_concept_id")
        self.concept_filter("Unit", "C.unit_concept_id")
        self.numbers("RangeLow", "C.range_low", decimal=True)
        self.numbers("RangeHigh", "C.range_high", decimal=True)
        self.numbers("RangeLowRatio", d.ratio("C.value_as_number", "C.range_low"), decimal=True)
        self.numbers("RangeHighRatio", d.ratio("C.value_as_number", "C.range_high"), decimal=True)
        if self.c.get("Abnormal"):
            self.wheres.append(
                "(C.value_as_number < C.range_low or C.value_as_number > C.range_high "
                "or C.value_as_concept_id in (4155142, 4155143))"
            )
        self.age_gender()
        self.provider_visit()


class ObservationBuilder(DomainBuilder):
    domain, alias = DOMAINS["Observation"], "o"
    end_sql = "({start} + 1)"
    count_columns = {
        "DOMAIN_CONCEPT": "C.observation_concept_id",
        "VALUE_AS_NUMBER": "C.value_as_number",
        "DURATION": "CAST(1 AS INTEGER)",
    }

    def filters(self) -> None:
        self.dates("OccurrenceStartDate", "C.start_date")
        self.concept_filter(
            "ObservationType", "C.observation_type_concept_id", exclude_attribute="ObservationTypeExclude"
        )
        self.numbers("ValueAsNumber", "C.value_as_number", decimal=True)
        self.text("ValueAsString", "C.value_as_string")
        self.concept_filter("ValueAsConcept", "C.value_as_concept_id")
        self.concept_filter("Qualifier", "C.qualifier_concept_id")
        self.concept_filter("Unit", "C.unit_concept_id")
        self.age_gender()
        self.provider_visit()


class DeviceExposureBuilder(DomainBuilder):
    domain, alias = DOMAINS["DeviceExposure"], "de"
    end_sql = "COALESCE({end}, ({start} + 1))"
    count_columns = {"DOMAIN_CONCEPT": "C.device_concept_id", "QUANTITY": "C.quantity", "DURATION": "DURATION"}

    def filters(self) -> None:
        self.dates("OccurrenceStartDate", "C.start_date")
        self.dates("OccurrenceEndDate", "C.end_date")
        self.concept_filter("DeviceType", "C.device_type_concept_id", exclude_attribute="DeviceTypeExclude")
        self.text("UniqueDeviceId", "C.unique_device_id")
        self.numbers("Quantity", "C.quantity")
        self.age_gender()
        self.provider_visit()


class SpecimenBuilder(DomainBuilder):
    domain, alias = DOMAINS["Specimen"], "s"
    end_sql = "({start} + 1)"
    count_columns = {"DOMAIN_CONCEPT": "C.specimen_concept_id", "DURATION": "CAST(1 AS INTEGER)"}

    def filters(self) -> None:
        # As Circe: a DateAdjustment does not add the end >= start check here, and the dates read specimen_date.
        self.wheres.clear()
        self.dates("OccurrenceStartDate", "C.specimen_date")
        self.concept_filter("SpecimenType", "C.specimen_type_concept_id", exclude_attribute="SpecimenTypeExclude")
        self.numbers("Quantity", "C.quantity", decimal=True)
        self.concept_filter("Unit", "C.unit_concept_id")
        self.concept_filter("AnatomicSite", "C.anatomic_site_concept_id")
        self.concept_filter("DiseaseStatus", "C.disease_status_concept_id")
        self.text("SourceId", "C.specimen_source_id")
        self.age_gender("C.specimen_date")


class DeathBuilder(DomainBuilder):
    domain, alias = DOMAINS["Death"], "d"
    end_sql = "({start} + 1)"
    count_columns = {"DOMAIN_CONCEPT": "coalesce(C.cause_concept_id, 0)", "DURATION": "CAST(1 AS INTEGER)"}

    def start_end(self) -> tuple[str, str]:
        """As Circe: a DateAdjustment moves the death date and the day after it by its offsets, whatever its
        StartWith / EndWith say (circe-be's DeathSqlBuilder hands the adjustment these two columns, fixed)."""
        adj = self.c.date_adjustment
        if adj is None:
            return super().start_end()
        d = self.ctx.dialect
        start = f"{self.alias}.{self.domain.start_column}"
        return d.date_add(start, adj.start_offset), d.date_add(self.end_sql.format(start=start), adj.end_offset)

    def filters(self) -> None:
        self.dates("OccurrenceStartDate", "C.start_date")
        self.concept_filter("DeathType", "C.death_type_concept_id", exclude_attribute="DeathTypeExclude")
        self.age_gender()


class VisitOccurrenceBuilder(DomainBuilder):
    domain, alias = DOMAINS["VisitOccurrence"], "vo"
    end_sql = "{end}"
    count_columns = {"DOMAIN_CONCEPT": "C.visit_concept_id", "DURATION": "DURATION"}

    def filters(self) -> None:
        d = self.ctx.dialect
        self.dates("OccurrenceStartDate", "C.start_date")
        self.dates("OccurrenceEndDate", "C.end_date")
        self.concept_filter("VisitType", "C.visit_type_concept_id", exclude_attribute="VisitTypeExclude")
        self.numbers("VisitLength", self.duration())
        if self.c.get("Age") is not None:
            self.person_join()
            self.numbers("Age", f"{d.year('C.start_date')} - P.year_of_birth")
        if self.c.get("Gender") or self.c.get("GenderCS") is not None:
            self.person_join()
            self.concept_filter("Gender", "P.gender_concept_id")
        if self.c.get("PlaceOfService") or self.c.get("PlaceOfServiceCS") is not None or self.location():
            self.joins.append(f"JOIN {self.ctx.table('care_site')} CS ON C.care_site_id = CS.care_site_id")
        if self.c.get("ProviderSpecialty") or self.c.get("ProviderSpecialtyCS") is not None:
            self.joins.append(f"LEFT JOIN {self.ctx.table('provider')} PR ON C.provider_id = PR.provider_id")
            self.concept_filter("ProviderSpecialty", "PR.specialty_concept_id")
        if self.location():
            self.region_joins("C.visit_start_date", "C.visit_end_date")
        self.concept_filter("PlaceOfService", "CS.place_of_service_concept_id")

    def location(self) -> bool:
        return self.c.get("PlaceOfServiceLocation") is not None

    def region_joins(self, start: str, end: str) -> None:
        """Care site → location history → location region in the concept set (as Circe)."""
        self.joins.append(
            f"JOIN {self.ctx.table('location_history')} LH ON LH.entity_id = C.care_site_id "
            f"AND LH.domain_id = 'CARE_SITE' AND {start} >= LH.start_date "
            f"AND {end} <= COALESCE(LH.end_date, DATE '2099-12-31')"
        )
        self.joins.append(f"JOIN {self.ctx.table('location')} LOC ON LOC.location_id = LH.location_id")
        self.joins.append(codeset_join("loc_cs", "LOC.region_concept_id", self.c.get("PlaceOfServiceLocation")))


class VisitDetailBuilder(VisitOccurrenceBuilder):
    domain, alias = DOMAINS["VisitDetail"], "vd"
    count_columns = {
        "DOMAIN_CONCEPT": "C.visit_detail_concept_id",
        "DURATION": "DURATION",
        "VISIT_DETAIL_ID": "C.visit_detail_id",
    }

    def filters(self) -> None:
        d = self.ctx.dialect
        self.dates("VisitDetailStartDate", "C.start_date")
        self.dates("VisitDetailEndDate", "C.end_date")
        self.concept_filter("VisitDetailType", "C.visit_detail_type_concept_id")
        self.numbers("VisitDetailLength", self.duration())
        if self.c.get("Age") is not None:
            self.person_join()
            self.numbers("Age", f"{d.year('C.end_date')} - P.year_of_birth")  # as Circe: age at the end date
        if self.c.get("GenderCS") is not None:
            self.person_join()
            self.concept_filter("Gender", "P.gender_concept_id")
        if self.c.get("PlaceOfServiceCS") is not None or self.location():
            self.joins.append(f"JOIN {self.ctx.table('care_site')} CS ON C.care_site_id = CS.care_site_id")
        if self.c.get("ProviderSpecialtyCS") is not None:
            self.joins.append(f"LEFT JOIN {self.ctx.table('provider')} PR ON C.provider_id = PR.provider_id")
            self.concept_filter("ProviderSpecialty", "PR.specialty_concept_id")
        if self.location():
            self.region_joins("C.visit_detail_start_date", "C.visit_detail_end_date")
        self.concept_filter("PlaceOfService", "CS.place_of_service_concept_id")


class ObservationPeriodBuilder(DomainBuilder):
    domain, alias = DOMAINS["ObservationPeriod"], "op"
    end_sql = "{end}"
    count_columns = {"DOMAIN_CONCEPT": "C.period_type_concept_id"}

    def ordinal_order(self) -> str:
        return f"{self.alias}.{self.domain.start_column}"

    def outer_start_end(self) -> tuple[str, str]:
        period: Period | None = self.c.get("UserDefinedPeriod")
        start = self.ctx.bind(period.start_date) if period and period.start_date else "C.start_date"
        end = self.ctx.bind(period.end_date) if period and period.end_date else "C.end_date"
        return start, end

    def filters(self) -> None:
        period_filters(self)
        self.concept_filter("PeriodType", "C.period_type_concept_id")
        self.numbers("PeriodLength", self.duration())
        d = self.ctx.dialect
        for attribute, column in (("AgeAtStart", "C.start_date"), ("AgeAtEnd", "C.end_date")):
            if self.c.get(attribute) is not None:
                self.person_join()
                self.numbers(attribute, f"{d.year(column)} - P.year_of_birth")


class PayerPlanPeriodBuilder(ObservationPeriodBuilder):
    domain, alias = DOMAINS["PayerPlanPeriod"], "ppp"
    count_columns = {"DOMAIN_CONCEPT": "C.payer_concept_id"}
    concept_columns = (
        ("PayerConcept", "payer_concept_id"),
        ("PlanConcept", "plan_concept_id"),
        ("SponsorConcept", "sponsor_concept_id"),
        ("StopReasonConcept", "stop_reason_concept_id"),
        ("PayerSourceConcept", "payer_source_concept_id"),
        ("PlanSourceConcept", "plan_source_concept_id"),
        ("SponsorSourceConcept", "sponsor_source_concept_id"),
        ("StopReasonSourceConcept", "stop_reason_source_concept_id"),
    )

    def filters(self) -> None:
        period_filters(self)
        self.numbers("PeriodLength", self.duration())
        self.era_person()
        for attribute, column in self.concept_columns:
            codeset_id = self.c.get(attribute)
            if codeset_id is not None:
                self.wheres.append(
                    f"C.{column} in (select concept_id from {CODESETS} where codeset_id = {lit(codeset_id)})"
                )


def period_filters(builder: DomainBuilder) -> None:
    """Observation and payer plan periods: First, a user-defined period inside the period, period dates."""
    c, ctx = builder.c, builder.ctx
    period: Period | None = c.get("UserDefinedPeriod")
    if period is not None:
        for bound in (period.start_date, period.end_date):
            if bound is not None:
                builder.wheres.append(f"C.start_date <= {ctx.bind(bound)} and C.end_date >= {ctx.bind(bound)}")
    builder.dates("PeriodStartDate", "C.start_date")
    builder.dates("PeriodEndDate", "C.end_date")


class LocationRegionBuilder(DomainBuilder):
    """Persons' location history in a region concept set. As Circe, StartDate/EndDate are not used."""

    domain = DOMAINS["LocationRegion"]

    def sql(self) -> str:
        history, event_id = self.domain.table, self.domain.id_column
        start, end, region = self.domain.start_column, self.domain.end_column, self.domain.concept_column
        codeset_id = self.c.get("CodesetId")
        join = codeset_join("cs", f"l.{region}", codeset_id) if codeset_id is not None else ""
        extras = ""
        if "DOMAIN_CONCEPT" in self.extras:
            extras = f", C.{region} AS domain_concept_id"
        return (
            f"SELECT C.entity_id AS person_id, C.{event_id} AS event_id, C.{start} AS start_date, "
            f"COALESCE(C.{end}, DATE '2099-12-31') AS end_date, CAST(NULL AS BIGINT) AS visit_occurrence_id, "
            f"C.{start} AS sort_date{extras}\n"
            f"FROM (\nSELECT lh.entity_id, lh.{event_id}, lh.{start}, lh.{end}, l.{region}\n"
            f"FROM {self.ctx.table('location')} l\n"
            f"JOIN {self.ctx.table(history)} lh ON l.location_id = lh.location_id\n"
            f"{join}\nWHERE lh.domain_id = 'PERSON'\n) C"
        )


#: The builder of each domain of the table of domains.
BUILDERS: dict[str, type[DomainBuilder]] = {
    builder.domain.name: builder
    for builder in (
        ConditionOccurrenceBuilder,
        ConditionEraBuilder,
        DrugExposureBuilder,
        DrugEraBuilder,
        DoseEraBuilder,
        ProcedureOccurrenceBuilder,
        MeasurementBuilder,
        ObservationBuilder,
        VisitOccurrenceBuilder,
        VisitDetailBuilder,
        DeviceExposureBuilder,
        SpecimenBuilder,
        DeathBuilder,
        ObservationPeriodBuilder,
        PayerPlanPeriodBuilder,
        LocationRegionBuilder,
    )
}


def domain_sql(ctx: Context, criterion: Criterion, extras: Sequence[str] = ()) -> str:
    """The events of one criterion (without its nested correlated criteria)."""
    builder = BUILDERS.get(criterion.domain)
    if builder is None:
        raise ExpressionError([("", f"unsupported domain {criterion.domain!r}")])
    return builder(ctx, criterion, extras).sql()
