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

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from hypothesis import strategies as st

from cohorts.expression.domains import DOMAINS

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
    #: Draw every criterion's attributes from ``SYNTHETIC_ATTRIBUTES`` (1-3 per criterion, values the data holds)
    #: instead of the few common ones: for the synthetic warehouse, whose data fills every attribute's column.
    every_attribute: bool = False


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

#: Every criterion kind Soyang compiles whose table the synthetic warehouse fills (PayerPlanPeriod and
#: LocationRegion have no data there).
_SYNTHETIC_KINDS = (
    "ConditionOccurrence",
    "DrugExposure",
    "ProcedureOccurrence",
    "Measurement",
    "Observation",
    "VisitOccurrence",
    "VisitDetail",
    "DeviceExposure",
    "Specimen",
    "Death",
    "ConditionEra",
    "DrugEra",
    "DoseEra",
    "ObservationPeriod",
)

SYNTHETIC = Vocabulary(
    name="synthetic",
    concepts={
        # Hypertension, hyperlipidaemia, pharyngitis, type 2 diabetes (and its ancestor diabetes mellitus),
        # osteoarthritis, CKD stage 3 (and the CKD ancestor), UTI, ischaemic heart disease, GI haemorrhage (coded
        # with a mapped ICD10CM source concept), pneumonia, COPD.
        "Condition": (320128, 432867, 4112343, 201826, 201820, 80180, 443597, 46271022, 81902, 317576, 192671, 255848),
        # Clinical drugs (amlodipine, lisinopril 10 MG, metformin, atorvastatin, acetaminophen) and ingredients.
        "Drug": (1332419, 19080128, 1503297, 1545959, 19020053, 1308216, 1125315),
        "DrugIngredient": (1332418, 1308216, 1125315, 1503297, 1539403),
        "Procedure": (4024289, 4163872, 4230911, 4198190, 4203771),
        # Blood pressure, eGFR, creatinine, HbA1c, haemoglobin, and the two urine test strips (no number).
        "Measurement": (3004249, 3012888, 46236952, 3016723, 3004410, 3000963, 3000348, 3009261),
        "Observation": (43054909, 46234680, 4060985),
        "Visit": (9202, 9201, 9203),
        "VisitDetail": (9201, 9203, 32037),
        "Device": (4126216, 45767945, 4217646),
        "Specimen": (4001225, 4047495, 4046834),
    },
    first_year=2010,
    last_year=2024,
    type_concepts={"ConditionOccurrence": (32817, 32020), "DrugExposure": (32817, 32869), "VisitOccurrence": (32817,)},
    races=(8515,),
    units=(8876, 8840, 720870, 8554),
    measurement_values={
        3004249: (69.0, 179.0),  # systolic blood pressure
        3012888: (39.0, 110.0),  # diastolic blood pressure
        46236952: (23.0, 90.0),  # eGFR (reported as "> 90" above 90)
        3016723: (0.3, 2.3),  # creatinine
        3004410: (4.4, 8.6),  # HbA1c
        3000963: (7.4, 18.2),  # haemoglobin
    },
    # Kinds with many attributes (measurements above all) come up more often, so that each attribute gets about
    # as many examples as the others.
    primary_kinds=(*_SYNTHETIC_KINDS, "Measurement", "Measurement", "Observation", "DrugExposure"),
    correlated_kinds=(*_SYNTHETIC_KINDS, "Measurement", "Measurement", "Observation", "ObservationPeriod"),
    every_attribute=True,
)

VOCABULARIES: dict[str, Vocabulary] = {
    "gibleed": GIBLEED,
    "synthea27nj": SYNTHEA,
    "synthea": SYNTHEA,
    "synthetic": SYNTHETIC,
}

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
    "VisitDetail": "VisitDetail",
    "DeviceExposure": "Device",
    "Specimen": "Specimen",
    "DoseEra": "DrugIngredient",
}

#: Concept sets of attribute values that ``…CS`` selections name (``ProviderSpecialtyCS`` …): always part of a
#: synthetic expression, never the codeset of a criterion (no criterion kind has these domains).
_ATTRIBUTE_SETS: dict[str, tuple[int, ...]] = {
    "specialty": (38004446, 38004456),
    "place": (8717, 8940),
    "gender": (8532,),
    "visittype": (9202, 9203),
    "type": (32817,),
}


# --- choices ----------------------------------------------------------------------------------------------------


class Picker:
    """The choices of a strategy: hypothesis's own draws, or a ``random.Random`` seeded by one hypothesis draw.

    Hypothesis's draws shrink well, but derandomized they favour the first options and short lists, and most
    examples are mutations of earlier ones that keep most of their draws: over CI's fixed examples a construct at
    the end of a list may never come up. The synthetic data set's strategy draws a single 64-bit seed per
    expression (hypothesis varies it from one example to the next) and makes every choice with the ``Random`` it
    seeds: every option then comes up about as often as the others, in the same examples on every run. Without a
    ``Random`` each method makes exactly the draw the strategies always made, so the GiBleed and Synthea27Nj
    examples stay what they were.
    """

    def __init__(self, draw: st.DrawFn, rnd: random.Random | None = None) -> None:
        self.draw, self.rnd = draw, rnd

    def choice(self, options: Sequence[Any]) -> Any:
        return self.rnd.choice(options) if self.rnd is not None else self.draw(st.sampled_from(options))

    def integer(self, low: int, high: int) -> int:
        return self.rnd.randint(low, high) if self.rnd is not None else self.draw(st.integers(low, high))

    def one_in(self, n: int) -> bool:
        return self.integer(0, n - 1) == 0

    def coin(self) -> bool:
        return self.rnd.random() < 0.5 if self.rnd is not None else self.draw(st.booleans())

    def many(self, strategy: st.SearchStrategy[Any], low: int, high: int) -> list[Any]:
        """``low``-``high`` values of ``strategy``."""
        if self.rnd is not None:
            return [self.draw(strategy) for _ in range(self.rnd.randint(low, high))]
        return self.draw(st.lists(strategy, min_size=low, max_size=high))


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
def concept_sets(draw: st.DrawFn, vocabulary: Vocabulary, rnd: random.Random | None = None) -> list[dict[str, Any]]:
    """1-4 concept sets; the first is of a domain an entry event can use, and one drug set is always present.
    With ``rnd`` (synthetic data), 2-6 sets of any domain, some of which source-concept attributes name."""
    domains = [d for d in vocabulary.concepts if d != "Visit"]
    if rnd is not None:
        # A set of every domain, in a random order: each criterion then has a codeset of its own domain, and
        # each source-concept attribute a set to name.
        chosen = rnd.sample([*domains, "Visit"], len(domains) + 1)
    else:
        chosen = draw(st.lists(st.sampled_from(domains), min_size=1, max_size=4))
    if not any(d in ("Drug", "DrugIngredient") for d in chosen):
        # CustomEra end strategies need a drug concept set to exist.
        chosen.append("Drug")
    chosen.append("Visit")
    sets = [
        {
            "id": index,
            "name": f"{domain.lower()} set {index}",
            "expression": {
                "items": draw(concept_set_items(vocabulary, domain)) if rnd is None else _items(rnd, vocabulary, domain)
            },
        }
        for index, domain in enumerate(chosen)
    ]
    if vocabulary.every_attribute:
        for domain, concept_ids in _ATTRIBUTE_SETS.items():
            items = [
                {"concept": {"CONCEPT_ID": c}, "isExcluded": False, "includeDescendants": False, "includeMapped": False}
                for c in concept_ids
            ]
            sets.append({"id": len(sets), "name": f"{domain} set {len(sets)}", "expression": {"items": items}})
    return sets


def _items(rnd: random.Random, vocabulary: Vocabulary, domain: str) -> list[dict[str, Any]]:
    """``concept_set_items`` made with ``rnd``."""
    ids = rnd.sample(vocabulary.concepts[domain], rnd.randint(1, min(3, len(vocabulary.concepts[domain]))))
    return [
        {
            "concept": {"CONCEPT_ID": concept_id},
            "isExcluded": position > 0 and rnd.random() < 0.5,
            "includeDescendants": rnd.random() < 0.5,
            "includeMapped": rnd.random() < 0.2,
        }
        for position, concept_id in enumerate(ids)
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
    rnd: random.Random | None = None,
) -> dict[str, Any]:
    """One domain criterion (``{"ConditionOccurrence": {...}}``) with a few of its attributes."""
    pick = Picker(draw, rnd)
    kind = pick.choice(kinds)
    domain = _CRITERION_DOMAIN[kind]
    body: dict[str, Any] = {}
    if domain is not None:
        domains = _codeset_domains(sets)
        matching = [i for i, d in enumerate(domains) if d.lower() == domain.lower()]
        if kind == "DrugEra":
            matching = matching or [i for i, d in enumerate(domains) if d.lower() == "drug"]
        if matching:
            body["CodesetId"] = pick.choice(matching)
        # else: no set of the criterion's domain, so no codeset: any concept of the domain matches (as in ATLAS).
    if rnd is not None:
        body.update(synthetic_attributes(rnd, vocabulary, sets, kind))
        if kind == "Specimen" and ("AnatomicSite" in body or "DiseaseStatus" in body):
            body.pop("CodesetId", None)  # biopsies are coded locally (concept 0): only their site and status map
        if nested and pick.one_in(8):
            body["CorrelatedCriteria"] = draw(
                criteria_groups(vocabulary, sets, depth=1, allow_empty=False, nested=False, rnd=rnd)
            )
        return {kind: body}
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


# --- every attribute, for the synthetic warehouse -----------------------------------------------------------------

#: A drawn attribute value: ``(random, vocabulary, concept sets) -> value``, or None when the expression has no
#: concept set the attribute could name (the attribute is then left out).
AttributeDraw = Callable[[random.Random, Vocabulary, list[dict[str, Any]]], Any]


def _concept_list(*concept_ids: int) -> AttributeDraw:
    """A list of concepts (``[{"CONCEPT_ID": …}]``) among ``concept_ids``: the values found in the data."""
    return lambda rnd, _vocabulary, _sets: [
        {"CONCEPT_ID": c} for c in rnd.sample(concept_ids, rnd.randint(1, len(concept_ids)))
    ]


def _text(*texts: str) -> AttributeDraw:
    """A TextFilter on the start, a part or the end of a value the data holds (mostly a positive match)."""

    def text(rnd: random.Random, _vocabulary: Vocabulary, _sets: list[dict[str, Any]]) -> Any:
        value, op = rnd.choice(texts), rnd.choice(("startsWith", "contains", "contains", "!contains", "endsWith"))
        # A prefix only ends a value when it is the whole of it: end matches take the value's last letters.
        return {"Text": value[-3:] if op == "endsWith" else value, "Op": op}

    return text


def _permissive(
    rnd: random.Random, ops: Sequence[str], low: int, high: int, show: Callable[[int], Any]
) -> dict[str, Any]:
    """A range (NumericRange or DateRange) that most values in [low, high] pass: "greater than" a value in the
    lower part, "less than" one in the upper part, "between" from the lower to the upper part, "not between" a
    narrow band at the bottom; "equal" to any. Points are drawn as integers and written with ``show``."""
    span = high - low

    def point(a: float, b: float) -> int:
        return rnd.randint(int(a), max(int(a), int(b)))

    op = rnd.choice(ops)
    if op in ("gt", "gte"):
        return {"Op": op, "Value": show(point(low, low + 0.4 * span))}
    if op in ("lt", "lte"):
        return {"Op": op, "Value": show(point(high - 0.4 * span, high))}
    if op == "bt":
        return {"Op": op, "Value": show(point(low, low + 0.4 * span)), "Extent": show(point(high - 0.4 * span, high))}
    if op == "!bt":
        start = point(low, low + 0.1 * span)
        return {"Op": op, "Value": show(start), "Extent": show(point(start, start + 0.1 * span))}
    return {"Op": op, "Value": show(point(low, high))}


def _numbers(low: float, high: float, *, integer: bool = True) -> AttributeDraw:
    """A NumericRange on values between ``low`` and ``high`` (integers, or decimals to one place) that most of
    them pass (``_permissive``)."""
    scale = 1 if integer else 10

    def numbers(rnd: random.Random, _vocabulary: Vocabulary, _sets: list[dict[str, Any]]) -> Any:
        return _permissive(rnd, _NUMERIC_OPS, int(low * scale), int(high * scale), lambda v: v if integer else v / 10)

    return numbers


def _dates(rnd: random.Random, vocabulary: Vocabulary, _sets: list[dict[str, Any]]) -> Any:
    """A DateRange on the years the data covers that most events pass (``_permissive``)."""
    first = date(vocabulary.first_year, 1, 1).toordinal()
    last = date(vocabulary.last_year, 12, 28).toordinal()
    return _permissive(rnd, _DATE_OPS, first, last, lambda day: date.fromordinal(day).isoformat())


_ages = _numbers(0, 90)


def _genders(rnd: random.Random, vocabulary: Vocabulary, _sets: list[dict[str, Any]]) -> Any:
    chosen = rnd.sample(vocabulary.genders, rnd.randint(1, 2))
    return [{"CONCEPT_ID": c, "CONCEPT_NAME": "MALE" if c == 8507 else "FEMALE"} for c in chosen]


def _true(_rnd: random.Random, _vocabulary: Vocabulary, _sets: list[dict[str, Any]]) -> Any:
    return True


def _selection(domain: str) -> AttributeDraw:
    """A ConceptSetSelection of the expression's concept set of ``domain`` (``_ATTRIBUTE_SETS`` or a criterion
    domain), included or (one time in four) excluded."""

    def selection(rnd: random.Random, _vocabulary: Vocabulary, sets: list[dict[str, Any]]) -> Any:
        matching = [i for i, d in enumerate(_codeset_domains(sets)) if d == domain]
        if not matching:
            return None
        return {"CodesetId": rnd.choice(matching), "IsExclusion": rnd.random() < 0.25}

    return selection


def _codeset(domain: str) -> AttributeDraw:
    """The id of a concept set of ``domain``: a source concept set (source concepts are the standard ones here,
    but for the ICD10CM code of GI haemorrhage, reached through 'Maps to' by includeMapped)."""

    def codeset(rnd: random.Random, _vocabulary: Vocabulary, sets: list[dict[str, Any]]) -> Any:
        matching = [i for i, d in enumerate(_codeset_domains(sets)) if d == domain]
        return rnd.choice(matching) if matching else None

    return codeset


def _date_adjustment(rnd: random.Random, _vocabulary: Vocabulary, _sets: list[dict[str, Any]]) -> Any:
    return {
        "StartWith": rnd.choice(("START_DATE", "END_DATE")),
        "StartOffset": rnd.choice((0, -7, 1, 30)),
        "EndWith": rnd.choice(("END_DATE", "START_DATE")),
        "EndOffset": rnd.choice((0, 7, 30)),
    }


def _user_defined_period(rnd: random.Random, vocabulary: Vocabulary, _sets: list[dict[str, Any]]) -> Any:
    year = rnd.randint(vocabulary.first_year, vocabulary.last_year - 1)
    return {"StartDate": f"{year}-01-01", "EndDate": f"{year + 1}-06-30"}


_SPECIALTIES = _concept_list(38004446, 38004455, 38004456)
_VISIT_TYPES = _concept_list(9202, 9201, 9203)
_PERSON: dict[str, AttributeDraw] = {"Age": _ages, "Gender": _genders, "GenderCS": _selection("gender")}
_EVENT: dict[str, AttributeDraw] = {
    "First": _true,
    "OccurrenceStartDate": _dates,
    **_PERSON,
    "ProviderSpecialty": _SPECIALTIES,
    "ProviderSpecialtyCS": _selection("specialty"),
    "VisitType": _VISIT_TYPES,
    "VisitTypeCS": _selection("visittype"),
    "DateAdjustment": _date_adjustment,
}
_ERA: dict[str, AttributeDraw] = {
    "First": _true,
    "EraStartDate": _dates,
    "EraEndDate": _dates,
    "EraLength": _numbers(0, 365),
    "AgeAtStart": _ages,
    "AgeAtEnd": _ages,
    "Gender": _genders,
}

#: For each criterion kind, the attributes a synthetic expression draws and how: values that the synthetic
#: warehouse holds (its concepts, the ranges of its numbers, the beginnings of its texts). An ``…Exclude`` flag
#: goes with its type attribute (see ``synthetic_attributes``).
SYNTHETIC_ATTRIBUTES: dict[str, dict[str, AttributeDraw]] = {
    "ConditionOccurrence": {
        **_EVENT,
        "OccurrenceEndDate": _dates,
        "ConditionType": _concept_list(32817, 32020),
        "ConditionStatus": _concept_list(32902, 32908, 32893),
        "StopReason": _text("Resolved", "Improved"),
        "ConditionSourceConcept": _codeset("condition"),
    },
    "DrugExposure": {
        **_EVENT,
        "OccurrenceEndDate": _dates,
        "DrugType": _concept_list(32817, 32869),
        "StopReason": _text("Course completed", "Adverse reaction", "Patient request"),
        "Refills": _numbers(0, 5),
        "Quantity": _numbers(1, 180, integer=False),
        "DaysSupply": _numbers(1, 90),
        "RouteConcept": _concept_list(4132161, 4171047),
        "LotNumber": _text("A1024", "B2048", "C4096"),
        "DrugSourceConcept": _codeset("drug"),
    },
    "ProcedureOccurrence": {
        **_EVENT,
        "ProcedureType": _concept_list(32817),
        "Quantity": _numbers(1, 2),
        "ProcedureSourceConcept": _codeset("procedure"),
    },
    "Measurement": {
        **_EVENT,
        "MeasurementType": _concept_list(32856),
        "Operator": _concept_list(4172703, 4172704),
        "ValueAsNumber": _numbers(0, 200, integer=False),
        "ValueAsConcept": _concept_list(9191, 9189, 4155142, 4155143),
        "Unit": _concept_list(8876, 8840, 720870, 8554),
        "RangeLow": _numbers(0, 100, integer=False),
        "RangeHigh": _numbers(1, 200, integer=False),
        "RangeLowRatio": _numbers(0, 3, integer=False),
        "RangeHighRatio": _numbers(0, 2, integer=False),
        "MeasurementSourceConcept": _codeset("measurement"),
    },
    "Observation": {
        **_EVENT,
        "ObservationType": _concept_list(32817),
        "ValueAsNumber": _numbers(0, 12),
        "ValueAsString": _text("Never", "Former", "Current", "smoker"),
        "ValueAsConcept": _concept_list(42709996),
        "ObservationSourceConcept": _codeset("observation"),
    },
    "VisitOccurrence": {
        "First": _true,
        "OccurrenceStartDate": _dates,
        "OccurrenceEndDate": _dates,
        **_PERSON,
        "VisitType": _concept_list(32817),
        "VisitSourceConcept": _codeset("visit"),
        "VisitLength": _numbers(0, 20),
        "ProviderSpecialty": _SPECIALTIES,
        "ProviderSpecialtyCS": _selection("specialty"),
        "PlaceOfService": _concept_list(8717, 8756, 8940),
        "PlaceOfServiceCS": _selection("place"),
        "DateAdjustment": _date_adjustment,
    },
    "VisitDetail": {
        "First": _true,
        "VisitDetailStartDate": _dates,
        "VisitDetailEndDate": _dates,
        "VisitDetailTypeCS": _selection("type"),
        "VisitDetailSourceConcept": _codeset("visitdetail"),
        "VisitDetailLength": _numbers(0, 20),
        "Age": _ages,
        "GenderCS": _selection("gender"),
        "ProviderSpecialtyCS": _selection("specialty"),
        "PlaceOfServiceCS": _selection("place"),
    },
    "DeviceExposure": {
        **_EVENT,
        "OccurrenceEndDate": _dates,
        "DeviceType": _concept_list(32817),
        "UniqueDeviceId": _text("(01)00884", "(01)0064", "(01)087"),
        "Quantity": _numbers(1, 10),
        "DeviceSourceConcept": _codeset("device"),
    },
    "Specimen": {
        "First": _true,
        "OccurrenceStartDate": _dates,
        **_PERSON,
        "SpecimenType": _concept_list(32856),
        "Quantity": _numbers(1, 10, integer=False),
        "Unit": _concept_list(8587),
        "AnatomicSite": _concept_list(4111459),
        "DiseaseStatus": _concept_list(4066212),
        "SourceId": _text("HEM", "CHEM", "PATH"),
    },
    "Death": {
        "OccurrenceStartDate": _dates,
        **_PERSON,
        "DeathType": _concept_list(32817, 32815),
        "DeathSourceConcept": _codeset("condition"),
        "DateAdjustment": _date_adjustment,
    },
    "ConditionEra": {**_ERA, "OccurrenceCount": _numbers(1, 5)},
    "DrugEra": {**_ERA, "OccurrenceCount": _numbers(1, 5), "GapDays": _numbers(0, 30)},
    "DoseEra": {**_ERA, "Unit": _concept_list(8576), "DoseValue": _numbers(1, 1000, integer=False)},
    "ObservationPeriod": {
        "First": _true,
        "PeriodStartDate": _dates,
        "PeriodEndDate": _dates,
        "PeriodType": _concept_list(32817),
        "PeriodLength": _numbers(0, 6000),
        "AgeAtStart": _ages,
        "AgeAtEnd": _ages,
        "UserDefinedPeriod": _user_defined_period,
    },
}


def synthetic_attributes(
    rnd: random.Random, vocabulary: Vocabulary, sets: list[dict[str, Any]], kind: str
) -> dict[str, Any]:
    """2-3 attributes of ``kind`` from ``SYNTHETIC_ATTRIBUTES``. The attributes of the kind's own columns are
    drawn three times as often as those every event kind shares (person, provider, visit, dates), which come up
    through every kind anyway: so each construct gets about as many examples as the others."""
    table = SYNTHETIC_ATTRIBUTES[kind]
    shared = set(_EVENT) | set(_ERA) | set(_PERSON)
    pool = [name for name in sorted(table) for _ in range(1 if name in shared else 3)]
    names: list[str] = []
    while len(names) < rnd.randint(2, 3) and len(names) < len(table):
        name = rnd.choice(pool)
        if name not in names:
            names.append(name)
    attributes: dict[str, Any] = {}
    for name in names:
        value = table[name](rnd, vocabulary, sets)
        if value is None:
            continue
        attributes[name] = value
        if f"{name}Exclude" in DOMAINS[kind].attributes and rnd.random() < 0.3:
            attributes[f"{name}Exclude"] = True
    if kind == "Measurement" and "ValueAsConcept" in attributes and rnd.random() < 0.5:
        # circe-be's Abnormal reads value_as_concept_id, which its query selects only with ValueAsConcept set.
        attributes["Abnormal"] = True
    return attributes


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


def _window(rnd: random.Random) -> dict[str, Any]:
    """``windows`` made with ``rnd``."""
    first, second = rnd.choice(_WINDOW_DAYS), rnd.choice(_WINDOW_DAYS)
    first_coeff, second_coeff = -1, rnd.choice((-1, 1, 1))
    if second_coeff == -1 and first is not None and (second is None or second > first):
        first, second = second, first
    window: dict[str, Any] = {
        "Start": {"Days": first, "Coeff": first_coeff},
        "End": {"Days": second, "Coeff": second_coeff},
    }
    if rnd.random() < 0.2:
        window["UseIndexEnd"] = True
    if rnd.random() < 0.2:
        window["UseEventEnd"] = True
    return window


@st.composite
def occurrences(draw: st.DrawFn, rnd: random.Random | None = None) -> dict[str, Any]:
    """Occurrence: exactly (0) / at most (1) / at least (2) a count, maybe of distinct concepts or dates."""
    pick = Picker(draw, rnd)
    kind = pick.choice((2, 2, 0, 1))
    # Weighted towards the common ATLAS forms (at least 1, exactly 0) so that cohorts are rarely empty.
    count = pick.choice({2: (1, 1, 1, 2), 0: (0, 0, 1), 1: (0, 1, 2)}[kind])
    occurrence: dict[str, Any] = {"Type": kind, "Count": count}
    if pick.one_in(4 if rnd is None else 2):
        occurrence["IsDistinct"] = True
        if pick.coin():
            columns = ("DOMAIN_CONCEPT", "DOMAIN_CONCEPT", "START_DATE", "START_DATE", "END_DATE", "VISIT_ID")
            occurrence["CountColumn"] = pick.choice(columns if rnd is None else sorted(set(columns)))
    return occurrence


@st.composite
def correlated_criteria(
    draw: st.DrawFn,
    vocabulary: Vocabulary,
    sets: list[dict[str, Any]],
    *,
    nested: bool = True,
    rnd: random.Random | None = None,
) -> dict[str, Any]:
    """A windowed criterion of a group: criterion, start window (maybe end window), occurrence, flags."""
    pick = Picker(draw, rnd)
    criterion = draw(criteria(vocabulary, sets, kinds=vocabulary.correlated_kinds, nested=nested, rnd=rnd))
    occurrence = draw(occurrences(rnd))
    kind, body = next(iter(criterion.items()))
    if occurrence.get("CountColumn") == "VISIT_ID" and kind in (
        "ConditionEra",
        "DrugEra",
        "ObservationPeriod",
        "Death",
        "VisitDetail",
    ):
        # Circe refuses a visit count on criteria without visits (and on visit details, counted by their own id).
        occurrence["CountColumn"] = "START_DATE"
    if "CorrelatedCriteria" in body:
        # circe-be cannot count distinct values of a criterion that has its own correlated criteria: its SQL then
        # reads a column (A.domain_concept_id, ...) that the wrapped criterion query no longer selects.
        occurrence.pop("IsDistinct", None)
        occurrence.pop("CountColumn", None)
    window = (lambda: draw(windows())) if rnd is None else (lambda: _window(rnd))
    result: dict[str, Any] = {"Criteria": criterion, "StartWindow": window(), "Occurrence": occurrence}
    if pick.one_in(6):
        result["EndWindow"] = window()
    if pick.one_in(6):
        result["RestrictVisit"] = True
    if pick.one_in(6):
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


def _demographic(rnd: random.Random, vocabulary: Vocabulary) -> dict[str, Any]:
    """``demographic_criteria`` made with ``rnd``."""
    result: dict[str, Any] = {}
    while not result:
        if rnd.random() < 0.5:
            result["Age"] = _ages(rnd, vocabulary, [])
        if rnd.random() < 0.5:
            result["Gender"] = _genders(rnd, vocabulary, [])
        if rnd.random() < 1 / 3:
            result["OccurrenceStartDate"] = _dates(rnd, vocabulary, [])
        if rnd.random() < 0.3:
            result["OccurrenceEndDate"] = _dates(rnd, vocabulary, [])
        if rnd.random() < 0.3:
            result["Race"] = [{"CONCEPT_ID": rnd.choice(vocabulary.races)}]
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
    rnd: random.Random | None = None,
) -> dict[str, Any]:
    """ALL / ANY / AT_LEAST / AT_MOST group of 0-2 criteria, 0-1 demographic criteria and nested groups.

    ``nested`` False keeps the criteria of this group from carrying correlated criteria of their own.
    """
    pick = Picker(draw, rnd)
    group_type = pick.choice(("ALL", "ALL", "ANY", "AT_LEAST", "AT_MOST"))
    criteria_list = pick.many(correlated_criteria(vocabulary, sets, nested=nested, rnd=rnd), 0, 2)
    if rnd is None:
        demographics = pick.many(demographic_criteria(vocabulary), 0, 1)
    else:
        demographics = [_demographic(rnd, vocabulary) for _ in range(rnd.randint(0, 1))]
    subgroups = []
    if depth > 1 and pick.one_in(4):
        subgroups = pick.many(
            criteria_groups(vocabulary, sets, depth=depth - 1, allow_empty=False, nested=nested, rnd=rnd), 1, 2
        )
    if not allow_empty and not (criteria_list or demographics or subgroups):
        criteria_list = [draw(correlated_criteria(vocabulary, sets, nested=nested, rnd=rnd))]
    group: dict[str, Any] = {
        "Type": group_type,
        "CriteriaList": criteria_list,
        "DemographicCriteriaList": demographics,
        "Groups": subgroups,
    }
    if group_type.startswith("AT_"):
        members = len(criteria_list) + len(demographics) + len(subgroups)
        group["Count"] = pick.integer(0 if group_type == "AT_MOST" else 1, max(1, members))
    return group


# --- the whole expression ---------------------------------------------------------------------------------------


@st.composite
def end_strategies(
    draw: st.DrawFn, sets: list[dict[str, Any]], rnd: random.Random | None = None
) -> dict[str, Any] | None:
    """No end strategy (end of observation), a date offset, or a custom drug era on a drug concept set."""
    pick = Picker(draw, rnd)
    choice = pick.choice(("none", "offset", "offset", "era"))
    if choice == "none":
        return None
    if choice == "offset":
        return {
            "DateOffset": {
                "DateField": pick.choice(("StartDate", "EndDate")),
                "Offset": pick.choice((0, 1, 7, 30, 180, 365)),
            }
        }
    drug_sets = [i for i, d in enumerate(_codeset_domains(sets)) if d in ("drug", "drugingredient")]
    era: dict[str, Any] = {
        "DrugCodesetId": pick.choice(drug_sets),
        "GapDays": pick.choice((0, 7, 30, 60)),
        "Offset": pick.choice((0, 0, 7, 30)),
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


def _censor_window(rnd: random.Random, vocabulary: Vocabulary) -> dict[str, Any]:
    """``censor_windows`` made with ``rnd``."""
    window: dict[str, Any] = {}
    while not window:
        if rnd.random() < 0.5:
            window["StartDate"] = f"{rnd.randint(vocabulary.first_year, vocabulary.last_year - 5):04d}-01-01"
        if rnd.random() < 0.5:
            window["EndDate"] = f"{rnd.randint(vocabulary.first_year + 10, vocabulary.last_year):04d}-12-31"
    return window


@st.composite
def cohort_expressions(draw: st.DrawFn, dataset: str = "gibleed") -> dict[str, Any]:
    """A random, valid ATLAS cohort expression for ``dataset`` ("gibleed", "synthea27nj" or "synthetic")."""
    vocabulary = VOCABULARIES[dataset]
    rnd = random.Random(draw(st.integers(0, 2**64 - 1))) if vocabulary.every_attribute else None
    pick = Picker(draw, rnd)
    sets = draw(concept_sets(vocabulary, rnd))
    limits = ("First", "All", "Last")
    expression: dict[str, Any] = {
        "cdmVersionRange": ">=5.0.0",
        "ConceptSets": sets,
        "PrimaryCriteria": {
            # Synthetic expressions have up to three entry events: each brings its attributes, and any of them
            # having events keeps the cohort from being empty.
            "CriteriaList": pick.many(
                criteria(vocabulary, sets, kinds=vocabulary.primary_kinds, rnd=rnd),
                1 if rnd is None else 2,
                2 if rnd is None else 3,
            ),
            "ObservationWindow": {
                "PriorDays": pick.choice((0, 0, 30, 365)),
                "PostDays": pick.choice((0, 0, 30, 180)),
            },
            "PrimaryCriteriaLimit": {"Type": pick.choice(limits)},
        },
        "QualifiedLimit": {"Type": pick.choice(limits)},
        "ExpressionLimit": {"Type": pick.choice(limits)},
        "InclusionRules": [
            {"name": f"rule {index + 1}", "expression": group}
            for index, group in enumerate(pick.many(criteria_groups(vocabulary, sets, rnd=rnd), 0, 2))
        ],
        "CensoringCriteria": pick.many(
            criteria(vocabulary, sets, kinds=vocabulary.correlated_kinds, nested=False, rnd=rnd), 0, 1
        ),
        "CollapseSettings": {"CollapseType": "ERA", "EraPad": pick.choice((0, 0, 1, 30))},
    }
    if pick.one_in(3):
        expression["AdditionalCriteria"] = draw(criteria_groups(vocabulary, sets, depth=1, rnd=rnd))
    end_strategy = draw(end_strategies(sets, rnd))
    if end_strategy is not None:
        expression["EndStrategy"] = end_strategy
    if pick.one_in(5):
        expression["CensorWindow"] = (
            draw(censor_windows(vocabulary)) if rnd is None else _censor_window(rnd, vocabulary)
        )
    return expression


# --- which constructs an expression uses ------------------------------------------------------------------------

#: Attributes of a criterion that are not constructs of their own (the concept set is the criterion itself;
#: nested correlated criteria are counted as a group).
_NOT_CONSTRUCTS = frozenset({"CodesetId", "CorrelatedCriteria"})
_OCCURRENCE_TYPES = {0: "exactly", 1: "at most", 2: "at least"}


def expression_constructs(expression: dict[str, Any]) -> set[str]:
    """The ATLAS constructs ``expression`` uses: each criterion kind and attribute, the correlated-criteria
    options, group types, limits, end strategies, censoring, era padding and concept-set item flags."""
    found: set[str] = set()
    for concept_set in expression.get("ConceptSets") or []:
        for item in concept_set["expression"]["items"]:
            found.update(flag for flag in ("isExcluded", "includeDescendants", "includeMapped") if item.get(flag))
    primary = expression["PrimaryCriteria"]
    for criterion in primary["CriteriaList"]:
        found.update(_criterion_constructs(criterion))
    window = primary.get("ObservationWindow") or {}
    if window.get("PriorDays") or window.get("PostDays"):
        found.add("ObservationWindow")
    for key in ("PrimaryCriteriaLimit", "QualifiedLimit", "ExpressionLimit"):
        found.add(f"{key} {(primary if key == 'PrimaryCriteriaLimit' else expression)[key]['Type']}")
    if expression.get("AdditionalCriteria"):
        found.add("AdditionalCriteria")
        found.update(_group_constructs(expression["AdditionalCriteria"]))
    for rule in expression.get("InclusionRules") or []:
        found.add("InclusionRules")
        found.update(_group_constructs(rule["expression"]))
    for criterion in expression.get("CensoringCriteria") or []:
        found.add("CensoringCriteria")
        found.update(_criterion_constructs(criterion))
    if expression.get("CensorWindow"):
        found.add("CensorWindow")
    if (expression.get("CollapseSettings") or {}).get("EraPad"):
        found.add("EraPad")
    for strategy in expression.get("EndStrategy") or {}:
        found.add(f"EndStrategy {strategy}")
    return found


def _criterion_constructs(criterion: dict[str, Any]) -> Iterator[str]:
    kind, body = next(iter(criterion.items()))
    yield kind
    for attribute in body:
        if attribute in _NOT_CONSTRUCTS:
            continue
        # The type filters' Exclude flag (NOT IN) is one code path in every domain: one construct.
        yield "TypeExclude" if attribute.endswith("TypeExclude") else attribute
        if attribute.endswith("SourceConcept"):
            yield "sourceConcept"
    if body.get("CorrelatedCriteria"):
        yield "nested CorrelatedCriteria"
        yield from _group_constructs(body["CorrelatedCriteria"])


def _group_constructs(group: dict[str, Any]) -> Iterator[str]:
    yield f"group {group['Type']}"
    for correlated in group.get("CriteriaList") or []:
        yield from _criterion_constructs(correlated["Criteria"])
        occurrence = correlated["Occurrence"]
        yield f"Occurrence {_OCCURRENCE_TYPES[occurrence['Type']]}"
        if occurrence.get("IsDistinct"):
            yield f"Occurrence distinct {occurrence.get('CountColumn', 'DOMAIN_CONCEPT')}"
        for flag in ("RestrictVisit", "IgnoreObservationPeriod", "EndWindow"):
            if correlated.get(flag):
                yield flag
        for window in (correlated["StartWindow"], correlated.get("EndWindow") or {}):
            yield from (flag for flag in ("UseIndexEnd", "UseEventEnd") if window.get(flag))
    for demographic in group.get("DemographicCriteriaList") or []:
        yield "DemographicCriteria"
        yield from (f"DemographicCriteria {key}" for key in demographic)
    for subgroup in group.get("Groups") or []:
        yield "nested group"
        yield from _group_constructs(subgroup)


def constructs_drawn(dataset: str) -> frozenset[str]:
    """Every construct ``cohort_expressions(dataset)`` can draw, for a data set whose strategy draws every
    attribute (``Vocabulary.every_attribute``): what a report over enough examples must show non-empty."""
    vocabulary = VOCABULARIES[dataset]
    kinds = set(vocabulary.primary_kinds) | set(vocabulary.correlated_kinds)
    found = set(kinds)
    for kind in kinds:
        for attribute in SYNTHETIC_ATTRIBUTES[kind]:
            found.add(attribute)
            if f"{attribute}Exclude" in DOMAINS[kind].attributes:
                found.add("TypeExclude")
    found |= {"sourceConcept", "Abnormal", "nested CorrelatedCriteria", "nested group", "ObservationWindow"}
    found |= {"isExcluded", "includeDescendants", "includeMapped", "AdditionalCriteria", "InclusionRules"}
    found |= {"CensoringCriteria", "CensorWindow", "EraPad", "EndStrategy DateOffset", "EndStrategy CustomEra"}
    found |= {f"group {group}" for group in ("ALL", "ANY", "AT_LEAST", "AT_MOST")}
    found |= {f"Occurrence {name}" for name in _OCCURRENCE_TYPES.values()}
    found |= {f"Occurrence distinct {column}" for column in ("DOMAIN_CONCEPT", "START_DATE", "END_DATE", "VISIT_ID")}
    found |= {"RestrictVisit", "IgnoreObservationPeriod", "EndWindow", "UseIndexEnd", "UseEventEnd"}
    found |= {"DemographicCriteria", "DemographicCriteria Age", "DemographicCriteria Gender"}
    found |= {"DemographicCriteria OccurrenceStartDate"}
    for key in ("PrimaryCriteriaLimit", "QualifiedLimit", "ExpressionLimit"):
        found |= {f"{key} {limit}" for limit in ("First", "All", "Last")}
    return frozenset(found)
