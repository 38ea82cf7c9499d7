"""Hypothesis strategies for random but valid OHDSI ATLAS cohort expressions.

The expressions are built for the two test warehouses: every concept they name exists in the data set (so the
cohorts are rarely empty), and they stay small (a handful of criteria, groups nested two deep at most) so that
both Soyang and Circe generate one in well under a second on GiBleed. They exercise the constructs of ATLAS:
concept sets with descendants / mapped / excluded items; primary criteria from several domains with their
attributes; observation window and the three limits; additional criteria; inclusion rules made of ALL / ANY /
AT_LEAST / AT_MOST groups, nested, with windows (index end, event end), occurrence counts (exactly / at most /
at least, distinct), visit restriction, observation-period escape and demographic criteria; end strategies
(date offset, custom drug era), censoring criteria, era collapse padding and the censor window.

The JSON is what ATLAS writes (PascalCase keys), so that both Soyang's parser and circe-be read the same text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

#: Windows' day offsets; None is ATLAS's "all days" (unbounded, clipped to the observation period by Circe).
_WINDOW_DAYS: tuple[int | None, ...] = (None, 365, 180, 90, 30, 7, 1, 0)

_NUMERIC_OPS = ("lt", "lte", "eq", "gt", "gte", "bt", "!bt")
_DATE_OPS = ("lt", "lte", "gt", "gte", "bt", "!bt")


@dataclass(frozen=True)
class Vocabulary:
    """The concepts and value ranges of one test data set that generated definitions may use.

    ``concepts`` maps a criterion domain to concept ids present in the data (ancestors with several descendants
    in the data among them, so that descendants and exclusions matter). ``measurement_values`` gives, for the
    measurements that carry numbers, the range of their values.
    """

    name: str
    concepts: dict[str, tuple[int, ...]]
    genders: tuple[int, ...] = (8507, 8532)
    first_year: int = 1960
    last_year: int = 2019
    measurement_values: dict[int, tuple[float, float]] = field(default_factory=dict)
    #: Type concepts present in the data, per criterion kind (ConditionType, DrugType, VisitType).
    type_concepts: dict[str, tuple[int, ...]] = field(default_factory=dict)
    races: tuple[int, ...] = (8527, 8516, 8515)
    units: tuple[int, ...] = ()
    #: Criterion kinds that may be an entry event, with their weights (rare kinds appear less often).
    primary_kinds: tuple[str, ...] = ()
    #: Criterion kinds that may appear in inclusion rules, additional criteria and censoring.
    correlated_kinds: tuple[str, ...] = ()


GIBLEED = Vocabulary(
    name="gibleed",
    concepts={
        # Viral sinusitis, acute viral pharyngitis, acute bronchitis, otitis media, osteoarthritis, strep throat,
        # sprain of ankle, concussion, sinusitis (ancestor of 4), traumatic brain injury (ancestor), peptic ulcer,
        # GI haemorrhage (has a mapped ICD10CM source concept), chronic sinusitis, E. coli UTI, asthma, and a
        # high-level ancestor (16 descendants in the data) that is not itself in CONCEPT.
        "Condition": (
            40481087,
            4112343,
            260139,
            372328,
            80180,
            28060,
            81151,
            378001,
            4283893,
            4132546,
            4027663,
            192671,
            257012,
            4116491,
            317009,
            4227253,
        ),
        # Drug products and ingredients (acetaminophen, aspirin, amoxicillin, celecoxib, ibuprofen, diclofenac,
        # naproxen, penicillin V, ethinyl estradiol), a vaccine, and an ATC-like class ancestor.
        "Drug": (
            1127433,
            19059056,
            1713671,
            40213160,
            1127078,
            19078461,
            1125315,
            1112807,
            1713332,
            1118084,
            1177480,
            1124300,
            1115008,
            1729720,
            1549786,
            21603444,
        ),
        "DrugIngredient": (1125315, 1112807, 1713332, 1118084, 1177480, 1124300, 1115008, 1729720),
        "Procedure": (4125906, 4170947, 4151422, 4078793, 4163872, 4195803, 4198190, 4040400, 4180938),
        "Measurement": (3006322, 4024958, 4052083, 3011505, 3049273, 40652433),
        "Observation": (4323208, 4304110, 439406, 4324181, 441840),
        "Visit": (9201,),
    },
    first_year=1960,
    last_year=2019,
    type_concepts={"ConditionOccurrence": (32020,), "DrugExposure": (38000177, 581452), "VisitOccurrence": (44818517,)},
    primary_kinds=(
        "ConditionOccurrence",
        "ConditionOccurrence",
        "DrugExposure",
        "DrugExposure",
        "ProcedureOccurrence",
        "Measurement",
        "Observation",
        "VisitOccurrence",
        "ObservationPeriod",
        "DrugEra",
        "ConditionEra",
    ),
    correlated_kinds=(
        "ConditionOccurrence",
        "DrugExposure",
        "ProcedureOccurrence",
        "Measurement",
        "Observation",
        "VisitOccurrence",
        "DrugEra",
        "ConditionEra",
    ),
)

SYNTHEA = Vocabulary(
    name="synthea27nj",
    concepts={
        "Condition": (40481087, 4251306, 4172829, 4309238, 4112343, 45768458, 260139, 372328, 439777),
        "Drug": (1127433, 1713671, 19019979, 19078461, 19073188, 1115171, 19079924),
        "DrugIngredient": (1125315, 1713332, 1177480),
        "Procedure": (4326177, 46272472, 46272459, 762506, 35621997, 4298386, 4240345),
        "Measurement": (3012888, 3004249, 3025315, 3036277, 43055141, 3027018, 3000963),
        "Observation": (43054909, 40759172, 46235507, 42868746),
        "Visit": (9202, 9203, 9201),
    },
    first_year=1990,
    last_year=2022,
    type_concepts={"ConditionOccurrence": (38000175,), "DrugExposure": (32869,), "VisitOccurrence": (44818517,)},
    units=(8840, 8876, 8753, 8541),
    measurement_values={
        3012888: (69.0, 114.0),  # diastolic blood pressure
        3004249: (100.0, 199.0),  # systolic blood pressure
        3025315: (1.8, 103.5),  # body weight
        3036277: (45.1, 190.2),  # body height
        43055141: (0.0, 8.0),  # pain severity
        3027018: (58.2, 103.3),  # heart rate
        3000963: (7.0, 17.5),  # haemoglobin
    },
    primary_kinds=(
        "ConditionOccurrence",
        "DrugExposure",
        "ProcedureOccurrence",
        "Measurement",
        "Measurement",
        "Observation",
        "VisitOccurrence",
        "ObservationPeriod",
        "Death",
    ),
    correlated_kinds=(
        "ConditionOccurrence",
        "DrugExposure",
        "ProcedureOccurrence",
        "Measurement",
        "Observation",
        "VisitOccurrence",
        "Death",
    ),
)

VOCABULARIES: dict[str, Vocabulary] = {"gibleed": GIBLEED, "synthea27nj": SYNTHEA, "synthea": SYNTHEA}

#: The concept-set domain each criterion kind draws its codeset from (None: the criterion takes no codeset).
_CRITERION_DOMAIN: dict[str, str | None] = {
    "ConditionOccurrence": "Condition",
    "ConditionEra": "Condition",
    "DrugExposure": "Drug",
    "DrugEra": "DrugIngredient",
    "ProcedureOccurrence": "Procedure",
    "Measurement": "Measurement",
    "Observation": "Observation",
    "VisitOccurrence": "Visit",
    "Death": "Condition",
    "ObservationPeriod": None,
}


# --- value ranges -----------------------------------------------------------------------------------------------


@st.composite
def numeric_ranges(draw: st.DrawFn, low: float, high: float, *, integer: bool = True) -> dict[str, Any]:
    """A Circe ``NumericRange`` (Value, Op, and Extent for between / not between) inside [low, high]."""
    if integer:
        values = st.integers(int(low), int(high))
    else:
        values = st.integers(int(low * 10), int(high * 10)).map(lambda v: v / 10)
    op = draw(st.sampled_from(_NUMERIC_OPS))
    value = draw(values)
    result: dict[str, Any] = {"Value": value, "Op": op}
    if op in ("bt", "!bt"):
        extent = draw(values)
        result["Value"], result["Extent"] = min(value, extent), max(value, extent)
    return result


@st.composite
def date_ranges(draw: st.DrawFn, vocabulary: Vocabulary) -> dict[str, Any]:
    """A Circe ``DateRange`` on the years the data set covers (ISO dates, as ATLAS writes them)."""
    dates = st.builds(
        lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}",
        st.integers(vocabulary.first_year, vocabulary.last_year),
        st.integers(1, 12),
        st.integers(1, 28),
    )
    op = draw(st.sampled_from(_DATE_OPS))
    value = draw(dates)
    result: dict[str, Any] = {"Value": value, "Op": op}
    if op in ("bt", "!bt"):
        extent = draw(dates)
        result["Value"], result["Extent"] = min(value, extent), max(value, extent)
    return result


def ages() -> st.SearchStrategy[dict[str, Any]]:
    """An age range in years."""
    return numeric_ranges(0, 90)


def genders(vocabulary: Vocabulary) -> st.SearchStrategy[list[dict[str, Any]]]:
    """A non-empty list of gender concepts as ATLAS stores them."""
    return st.lists(st.sampled_from(vocabulary.genders), min_size=1, max_size=2, unique=True).map(
        lambda ids: [{"CONCEPT_ID": cid, "CONCEPT_NAME": "MALE" if cid == 8507 else "FEMALE"} for cid in ids]
    )


# --- concept sets -----------------------------------------------------------------------------------------------


@st.composite
def concept_set_items(draw: st.DrawFn, vocabulary: Vocabulary, domain: str) -> list[dict[str, Any]]:
    """1-3 items of one domain; the first is always included, the others may be excluded."""
    ids = draw(st.lists(st.sampled_from(vocabulary.concepts[domain]), min_size=1, max_size=3, unique=True))
    items = []
    for position, concept_id in enumerate(ids):
        items.append(
            {
                "concept": {"CONCEPT_ID": concept_id},
                "isExcluded": position > 0 and draw(st.booleans()),
                "includeDescendants": draw(st.booleans()),
                "includeMapped": draw(st.integers(0, 4)) == 0,
            }
        )
    return items


@st.composite
def concept_sets(draw: st.DrawFn, vocabulary: Vocabulary) -> list[dict[str, Any]]:
    """1-4 concept sets; the first is of a domain an entry event can use, and one drug set is always present."""
    domains = [d for d in vocabulary.concepts if d != "Visit"]
    chosen = draw(st.lists(st.sampled_from(domains), min_size=1, max_size=4))
    if not any(d in ("Drug", "DrugIngredient") for d in chosen):
        # CustomEra end strategies need a drug concept set to exist.
        chosen.append("Drug")
    chosen.append("Visit")
    return [
        {
            "id": index,
            "name": f"{domain.lower()} set {index}",
            "expression": {"items": draw(concept_set_items(vocabulary, domain))},
        }
        for index, domain in enumerate(chosen)
    ]


def _codeset_domains(sets: list[dict[str, Any]]) -> list[str]:
    """The domain each generated concept set was drawn from (recovered from its name)."""
    return [s["name"].split(" set ")[0] for s in sets]


# --- criteria ---------------------------------------------------------------------------------------------------


@st.composite
def criteria(
    draw: st.DrawFn,
    vocabulary: Vocabulary,
    sets: list[dict[str, Any]],
    *,
    kinds: tuple[str, ...],
    nested: bool = True,
) -> dict[str, Any]:
    """One domain criterion (``{"ConditionOccurrence": {...}}``) with a few of its attributes."""
    kind = draw(st.sampled_from(kinds))
    domain = _CRITERION_DOMAIN[kind]
    body: dict[str, Any] = {}
    if domain is not None:
        domains = _codeset_domains(sets)
        matching = [i for i, d in enumerate(domains) if d.lower() == domain.lower()]
        if kind == "DrugEra":
            matching = matching or [i for i, d in enumerate(domains) if d.lower() == "drug"]
        if matching:
            body["CodesetId"] = draw(st.sampled_from(matching))
        # else: no set of the criterion's domain, so no codeset: any concept of the domain matches (as in ATLAS).
    # Each attribute appears about one time in five: several together rarely leave anybody in the cohort.
    attribute = st.integers(0, 4).map(lambda n: n == 0)
    if kind == "ObservationPeriod":
        if draw(attribute):
            body["AgeAtStart"] = draw(ages())
        if draw(attribute):
            body["PeriodLength"] = draw(numeric_ranges(0, 10000))
        if draw(attribute):
            body["PeriodStartDate"] = draw(date_ranges(vocabulary))
        if draw(attribute):
            body["First"] = True
        return {kind: body}
    if kind in ("DrugEra", "ConditionEra"):
        if draw(attribute):
            body["EraLength"] = draw(numeric_ranges(0, 365))
        if draw(attribute):
            body["OccurrenceCount"] = draw(numeric_ranges(1, 5))
        if draw(attribute):
            body["EraStartDate"] = draw(date_ranges(vocabulary))
        if draw(attribute):
            body["AgeAtStart"] = draw(ages())
        if draw(attribute):
            body["First"] = True
        return {kind: body}
    if kind != "Death" and draw(attribute):
        body["First"] = True
    if draw(attribute):
        body["Age"] = draw(ages())
    if draw(attribute):
        body["Gender"] = draw(genders(vocabulary))
    if draw(attribute):
        body["OccurrenceStartDate"] = draw(date_ranges(vocabulary))
    if kind == "Measurement" and vocabulary.measurement_values and draw(st.booleans()):
        codeset = body.get("CodesetId")
        concept_ids = (
            [item["concept"]["CONCEPT_ID"] for item in sets[codeset]["expression"]["items"]]
            if codeset is not None
            else []
        )
        ranges = [vocabulary.measurement_values[c] for c in concept_ids if c in vocabulary.measurement_values]
        low, high = ranges[0] if ranges else (0.0, 200.0)
        body["ValueAsNumber"] = draw(numeric_ranges(low, high, integer=False))
    if kind == "VisitOccurrence" and draw(attribute):
        body["VisitLength"] = draw(numeric_ranges(0, 30))
    if kind == "DrugExposure" and draw(attribute) and vocabulary.name == "gibleed":
        body["DaysSupply"] = draw(numeric_ranges(0, 60))
    body.update(draw(extra_attributes(vocabulary, sets, kind)))
    if nested and draw(st.integers(0, 7)) == 0:
        # A criterion can carry its own correlated criteria (ATLAS "with ... having"), windows relative to it.
        body["CorrelatedCriteria"] = draw(criteria_groups(vocabulary, sets, depth=1, allow_empty=False, nested=False))
    return {kind: body}


@st.composite
def extra_attributes(draw: st.DrawFn, vocabulary: Vocabulary, sets: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """Less common attributes, each about one time in ten: types, end dates, date adjustment, units, source codes."""
    rare = st.integers(0, 9).map(lambda n: n == 0)
    extra: dict[str, Any] = {}
    type_key = {"ConditionOccurrence": "ConditionType", "DrugExposure": "DrugType", "VisitOccurrence": "VisitType"}
    if kind in type_key and kind in vocabulary.type_concepts and draw(rare):
        extra[type_key[kind]] = [{"CONCEPT_ID": c} for c in vocabulary.type_concepts[kind]]
        if draw(st.booleans()):
            extra[f"{type_key[kind]}Exclude"] = True
    if kind == "ConditionOccurrence" and draw(rare):
        matching = [i for i, d in enumerate(_codeset_domains(sets)) if d == "condition"]
        if matching:
            extra["ConditionSourceConcept"] = draw(st.sampled_from(matching))
    if kind not in ("ObservationPeriod", "DrugEra", "ConditionEra", "Death") and draw(rare):
        extra["OccurrenceEndDate"] = draw(date_ranges(vocabulary))
    if kind not in ("ObservationPeriod", "DrugEra", "ConditionEra") and draw(rare):
        extra["DateAdjustment"] = {
            "StartWith": draw(st.sampled_from(("START_DATE", "END_DATE"))),
            "StartOffset": draw(st.sampled_from((0, -7, 1, 30))),
            "EndWith": draw(st.sampled_from(("END_DATE", "START_DATE"))),
            "EndOffset": draw(st.sampled_from((0, 7, 30))),
        }
    if kind == "ObservationPeriod":
        if draw(rare):
            extra["PeriodEndDate"] = draw(date_ranges(vocabulary))
        if draw(rare):
            extra["AgeAtEnd"] = draw(ages())
        if draw(rare):
            year = draw(st.integers(vocabulary.first_year, vocabulary.last_year - 1))
            extra["UserDefinedPeriod"] = {"StartDate": f"{year}-01-01", "EndDate": f"{year + 1}-06-30"}
    if kind in ("DrugEra", "ConditionEra"):
        if draw(rare):
            extra["EraEndDate"] = draw(date_ranges(vocabulary))
        if draw(rare):
            extra["AgeAtEnd"] = draw(ages())
        if kind == "DrugEra" and draw(rare):
            extra["GapDays"] = draw(numeric_ranges(0, 30))
    if kind == "Measurement":
        if vocabulary.units and draw(rare):
            extra["Unit"] = [
                {"CONCEPT_ID": c}
                for c in draw(st.lists(st.sampled_from(vocabulary.units), min_size=1, max_size=2, unique=True))
            ]
        # Not "Abnormal": circe-be's SQL for it reads C.value_as_concept_id, which its measurement query does not
        # select unless ValueAsConcept is also set, so Circe fails on it (both ports) and there is no reference.
    return extra


# --- windows, occurrences, groups -------------------------------------------------------------------------------


@st.composite
def windows(draw: st.DrawFn) -> dict[str, Any]:
    """A Circe window: start and end endpoints (ordered, so it is rarely vacuous) and the index/event end flags."""
    first, second = draw(st.sampled_from(_WINDOW_DAYS)), draw(st.sampled_from(_WINDOW_DAYS))
    first_coeff, second_coeff = -1, draw(st.sampled_from((-1, 1, 1)))
    # Keep start <= end: a "before" start and either an earlier "before" or an "after" end.
    if second_coeff == -1 and first is not None and (second is None or second > first):
        first, second = second, first
    window: dict[str, Any] = {
        "Start": {"Days": first, "Coeff": first_coeff},
        "End": {"Days": second, "Coeff": second_coeff},
    }
    if draw(st.integers(0, 4)) == 0:
        window["UseIndexEnd"] = True
    if draw(st.integers(0, 4)) == 0:
        window["UseEventEnd"] = True
    return window


@st.composite
def occurrences(draw: st.DrawFn) -> dict[str, Any]:
    """Occurrence: exactly (0) / at most (1) / at least (2) a count, maybe of distinct concepts or dates."""
    kind = draw(st.sampled_from((2, 2, 0, 1)))
    # Weighted towards the common ATLAS forms (at least 1, exactly 0) so that cohorts are rarely empty.
    count = draw(st.sampled_from({2: (1, 1, 1, 2), 0: (0, 0, 1), 1: (0, 1, 2)}[kind]))
    occurrence: dict[str, Any] = {"Type": kind, "Count": count}
    if draw(st.integers(0, 3)) == 0:
        occurrence["IsDistinct"] = True
        if draw(st.booleans()):
            occurrence["CountColumn"] = draw(
                st.sampled_from(
                    ("DOMAIN_CONCEPT", "DOMAIN_CONCEPT", "START_DATE", "START_DATE", "END_DATE", "VISIT_ID")
                )
            )
    return occurrence


@st.composite
def correlated_criteria(
    draw: st.DrawFn, vocabulary: Vocabulary, sets: list[dict[str, Any]], *, nested: bool = True
) -> dict[str, Any]:
    """A windowed criterion of a group: criterion, start window (maybe end window), occurrence, flags."""
    criterion = draw(criteria(vocabulary, sets, kinds=vocabulary.correlated_kinds, nested=nested))
    occurrence = draw(occurrences())
    kind, body = next(iter(criterion.items()))
    if occurrence.get("CountColumn") == "VISIT_ID" and kind in (
        "ConditionEra",
        "DrugEra",
        "ObservationPeriod",
        "Death",
    ):
        occurrence["CountColumn"] = "START_DATE"  # Circe refuses a visit count on criteria without visits
    if "CorrelatedCriteria" in body:
        # circe-be cannot count distinct values of a criterion that has its own correlated criteria: its SQL then
        # reads a column (A.domain_concept_id, ...) that the wrapped criterion query no longer selects.
        occurrence.pop("IsDistinct", None)
        occurrence.pop("CountColumn", None)
    result: dict[str, Any] = {"Criteria": criterion, "StartWindow": draw(windows()), "Occurrence": occurrence}
    if draw(st.integers(0, 5)) == 0:
        result["EndWindow"] = draw(windows())
    if draw(st.integers(0, 5)) == 0:
        result["RestrictVisit"] = True
    if draw(st.integers(0, 5)) == 0:
        result["IgnoreObservationPeriod"] = True
    return result


@st.composite
def demographic_criteria(draw: st.DrawFn, vocabulary: Vocabulary) -> dict[str, Any]:
    """A demographic criterion: age at the event, gender, event date (at least one of them)."""
    result: dict[str, Any] = {}
    while not result:
        if draw(st.booleans()):
            result["Age"] = draw(ages())
        if draw(st.booleans()):
            result["Gender"] = draw(genders(vocabulary))
        if draw(st.integers(0, 2)) == 0:
            result["OccurrenceStartDate"] = draw(date_ranges(vocabulary))
        if draw(st.integers(0, 9)) == 0:
            result["OccurrenceEndDate"] = draw(date_ranges(vocabulary))
        if draw(st.integers(0, 9)) == 0:
            result["Race"] = [{"CONCEPT_ID": draw(st.sampled_from(vocabulary.races))}]
    return result


@st.composite
def criteria_groups(
    draw: st.DrawFn,
    vocabulary: Vocabulary,
    sets: list[dict[str, Any]],
    *,
    depth: int = 2,
    allow_empty: bool = True,
    nested: bool = True,
) -> dict[str, Any]:
    """ALL / ANY / AT_LEAST / AT_MOST group of 0-2 criteria, 0-1 demographic criteria and nested groups.

    ``nested`` False keeps the criteria of this group from carrying correlated criteria of their own.
    """
    group_type = draw(st.sampled_from(("ALL", "ALL", "ANY", "AT_LEAST", "AT_MOST")))
    criteria_list = draw(st.lists(correlated_criteria(vocabulary, sets, nested=nested), min_size=0, max_size=2))
    demographics = draw(st.lists(demographic_criteria(vocabulary), min_size=0, max_size=1))
    subgroups = []
    if depth > 1 and draw(st.integers(0, 3)) == 0:
        subgroups = draw(
            st.lists(
                criteria_groups(vocabulary, sets, depth=depth - 1, allow_empty=False, nested=nested),
                min_size=1,
                max_size=2,
            )
        )
    if not allow_empty and not (criteria_list or demographics or subgroups):
        criteria_list = [draw(correlated_criteria(vocabulary, sets, nested=nested))]
    group: dict[str, Any] = {
        "Type": group_type,
        "CriteriaList": criteria_list,
        "DemographicCriteriaList": demographics,
        "Groups": subgroups,
    }
    if group_type.startswith("AT_"):
        members = len(criteria_list) + len(demographics) + len(subgroups)
        group["Count"] = draw(st.integers(0 if group_type == "AT_MOST" else 1, max(1, members)))
    return group


# --- the whole expression ---------------------------------------------------------------------------------------


@st.composite
def end_strategies(draw: st.DrawFn, sets: list[dict[str, Any]]) -> dict[str, Any] | None:
    """No end strategy (end of observation), a date offset, or a custom drug era on a drug concept set."""
    choice = draw(st.sampled_from(("none", "offset", "offset", "era")))
    if choice == "none":
        return None
    if choice == "offset":
        return {
            "DateOffset": {
                "DateField": draw(st.sampled_from(("StartDate", "EndDate"))),
                "Offset": draw(st.sampled_from((0, 1, 7, 30, 180, 365))),
            }
        }
    drug_sets = [i for i, d in enumerate(_codeset_domains(sets)) if d in ("drug", "drugingredient")]
    era: dict[str, Any] = {
        "DrugCodesetId": draw(st.sampled_from(drug_sets)),
        "GapDays": draw(st.sampled_from((0, 7, 30, 60))),
        "Offset": draw(st.sampled_from((0, 0, 7, 30))),
    }
    return {"CustomEra": era}


@st.composite
def censor_windows(draw: st.DrawFn, vocabulary: Vocabulary) -> dict[str, Any]:
    """A censor window with a start date, an end date or both."""
    window: dict[str, Any] = {}
    while not window:
        if draw(st.booleans()):
            window["StartDate"] = f"{draw(st.integers(vocabulary.first_year, vocabulary.last_year - 5)):04d}-01-01"
        if draw(st.booleans()):
            window["EndDate"] = f"{draw(st.integers(vocabulary.first_year + 10, vocabulary.last_year)):04d}-12-31"
    return window


@st.composite
def cohort_expressions(draw: st.DrawFn, dataset: str = "gibleed") -> dict[str, Any]:
    """A random, valid ATLAS cohort expression for ``dataset`` ("gibleed" or "synthea27nj")."""
    vocabulary = VOCABULARIES[dataset]
    sets = draw(concept_sets(vocabulary))
    limits = st.sampled_from(("First", "All", "Last"))
    expression: dict[str, Any] = {
        "cdmVersionRange": ">=5.0.0",
        "ConceptSets": sets,
        "PrimaryCriteria": {
            "CriteriaList": draw(
                st.lists(criteria(vocabulary, sets, kinds=vocabulary.primary_kinds), min_size=1, max_size=2)
            ),
            "ObservationWindow": {
                "PriorDays": draw(st.sampled_from((0, 0, 30, 365))),
                "PostDays": draw(st.sampled_from((0, 0, 30, 180))),
            },
            "PrimaryCriteriaLimit": {"Type": draw(limits)},
        },
        "QualifiedLimit": {"Type": draw(limits)},
        "ExpressionLimit": {"Type": draw(limits)},
        "InclusionRules": [
            {"name": f"rule {index + 1}", "expression": group}
            for index, group in enumerate(draw(st.lists(criteria_groups(vocabulary, sets), min_size=0, max_size=2)))
        ],
        "CensoringCriteria": draw(
            st.lists(
                criteria(vocabulary, sets, kinds=vocabulary.correlated_kinds, nested=False), min_size=0, max_size=1
            )
        ),
        "CollapseSettings": {"CollapseType": "ERA", "EraPad": draw(st.sampled_from((0, 0, 1, 30)))},
    }
    if draw(st.integers(0, 2)) == 0:
        expression["AdditionalCriteria"] = draw(criteria_groups(vocabulary, sets, depth=1))
    end_strategy = draw(end_strategies(sets))
    if end_strategy is not None:
        expression["EndStrategy"] = end_strategy
    if draw(st.integers(0, 4)) == 0:
        expression["CensorWindow"] = draw(censor_windows(vocabulary))
    return expression
