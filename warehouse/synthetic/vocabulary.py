"""The vocabulary of the synthetic warehouse: a closed subset of the OMOP standardized vocabularies.

Every concept is real (id, name, domain, vocabulary, class, code as published by OHDSI); the rows come from
``vocabulary_data`` plus a few well-known concepts listed here. ``concept_ancestor`` is the transitive closure of
the real ancestor rows and 'Is a' relationships between the concepts we ship, so that a cohort that asks for
"descendants of diabetes mellitus" finds type 2 diabetes, and one that asks for metformin finds its products.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from warehouse.synthetic.kcd7 import KCD7_VOCABULARY, kcd7_concept_rows, kcd7_maps
from warehouse.synthetic.vocabulary_data import ANCESTOR_ROWS, CONCEPT_ROWS, IS_A_EDGES

VALID_START = "1970-01-01"
VALID_END = "2099-12-31"

# Concepts absent from the sample vocabularies we extract from but needed as parents or as type, race and unit
# concepts. Each is a published OMOP concept; ids and codes were checked against public OMOP material.
EXTRA_CONCEPTS: tuple[tuple[int, str, str, str, str, str, str, str, str], ...] = (
    (201820, "Diabetes mellitus", "Condition", "SNOMED", "Clinical Finding", "S", "73211009", VALID_START, VALID_END),
    (
        316866,
        "Hypertensive disorder",
        "Condition",
        "SNOMED",
        "Clinical Finding",
        "S",
        "38341003",
        VALID_START,
        VALID_END,
    ),
    (
        255573,
        "Chronic obstructive lung disease",
        "Condition",
        "SNOMED",
        "Clinical Finding",
        "S",
        "13645005",
        VALID_START,
        VALID_END,
    ),
    (
        46271022,
        "Chronic kidney disease",
        "Condition",
        "SNOMED",
        "Clinical Finding",
        "S",
        "709044004",
        VALID_START,
        VALID_END,
    ),
    (1503297, "metformin", "Drug", "RxNorm", "Ingredient", "S", "6809", VALID_START, VALID_END),
    (8515, "Asian", "Race", "Race", "Race", "S", "2", VALID_START, VALID_END),
    (32817, "EHR", "Type Concept", "Type Concept", "Type Concept", "S", "OMOP4976890", "2020-08-20", VALID_END),
    (32856, "Lab", "Type Concept", "Type Concept", "Type Concept", "S", "OMOP4976929", "2020-08-20", VALID_END),
    (
        720870,
        "milliliter per minute per 1.73 square meter",
        "Unit",
        "UCUM",
        "Unit",
        "S",
        "mL/min/(173.10*-2.m2)",
        "2022-04-07",
        VALID_END,
    ),
    (
        46236952,
        "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by "
        "Creatinine-based formula (MDRD)",
        "Measurement",
        "LOINC",
        "Lab Test",
        "S",
        "77147-7",
        VALID_START,
        VALID_END,
    ),
    # The concepts the attributes of Circe criteria filter on, so that each of them has data to hit: condition
    # status, route, place of service, provider specialty, specimen, anatomic site and disease status, measurement
    # operator and qualitative result, observations, devices, visit detail (intensive care) and the type
    # concepts of prescriptions and deaths. OMOP-generated concepts (condition status, type, visit) carry their
    # concept id as code: their OMOP codes are not in our sources.
    (
        32902,
        "Primary diagnosis",
        "Condition Status",
        "Condition Status",
        "Condition Status",
        "S",
        "32902",
        VALID_START,
        VALID_END,
    ),
    (
        32908,
        "Secondary diagnosis",
        "Condition Status",
        "Condition Status",
        "Condition Status",
        "S",
        "32908",
        VALID_START,
        VALID_END,
    ),
    (
        32893,
        "Confirmed diagnosis",
        "Condition Status",
        "Condition Status",
        "Condition Status",
        "S",
        "32893",
        VALID_START,
        VALID_END,
    ),
    (
        32020,
        "EHR encounter diagnosis",
        "Type Concept",
        "Type Concept",
        "Type Concept",
        "S",
        "32020",
        VALID_START,
        VALID_END,
    ),
    (32869, "Pharmacy claim", "Type Concept", "Type Concept", "Type Concept", "S", "32869", VALID_START, VALID_END),
    (32815, "Death Certificate", "Type Concept", "Type Concept", "Type Concept", "S", "32815", VALID_START, VALID_END),
    (32037, "Intensive Care", "Visit", "Visit", "Visit", "S", "32037", VALID_START, VALID_END),
    (4132161, "Oral", "Route", "SNOMED", "Qualifier Value", "S", "26643006", VALID_START, VALID_END),
    (4171047, "Intravenous", "Route", "SNOMED", "Qualifier Value", "S", "47625008", VALID_START, VALID_END),
    (4302612, "Subcutaneous", "Route", "SNOMED", "Qualifier Value", "S", "34206005", VALID_START, VALID_END),
    (
        8717,
        "Inpatient Hospital",
        "Visit",
        "CMS Place of Service",
        "Place of Service",
        "S",
        "21",
        VALID_START,
        VALID_END,
    ),
    (
        8756,
        "Outpatient Hospital",
        "Visit",
        "CMS Place of Service",
        "Place of Service",
        "S",
        "22",
        VALID_START,
        VALID_END,
    ),
    (8940, "Office", "Visit", "CMS Place of Service", "Place of Service", "S", "11", VALID_START, VALID_END),
    (
        38004446,
        "General Practice",
        "Provider",
        "Medicare Specialty",
        "Physician Specialty",
        "S",
        "01",
        VALID_START,
        VALID_END,
    ),
    (
        38004455,
        "Gastroenterology",
        "Provider",
        "Medicare Specialty",
        "Physician Specialty",
        "S",
        "10",
        VALID_START,
        VALID_END,
    ),
    (
        38004456,
        "Internal Medicine",
        "Provider",
        "Medicare Specialty",
        "Physician Specialty",
        "S",
        "11",
        VALID_START,
        VALID_END,
    ),
    (4001225, "Blood specimen", "Specimen", "SNOMED", "Specimen", "S", "119297000", VALID_START, VALID_END),
    (4046834, "Capillary blood specimen", "Specimen", "SNOMED", "Specimen", "S", "122555007", VALID_START, VALID_END),
    (4047495, "Peripheral blood specimen", "Specimen", "SNOMED", "Specimen", "S", "122591000", VALID_START, VALID_END),
    (
        4111459,
        "Lung structure",
        "Spec Anatomic Site",
        "SNOMED",
        "Body Structure",
        "S",
        "39607008",
        VALID_START,
        VALID_END,
    ),
    (4066212, "Malignant", "Spec Disease Status", "SNOMED", "Qualifier Value", "S", "30807003", VALID_START, VALID_END),
    (8587, "milliliter", "Unit", "UCUM", "Unit", "S", "mL", VALID_START, VALID_END),
    (4172703, "=", "Meas Value Operator", "SNOMED", "Qualifier Value", "S", "276136004", VALID_START, VALID_END),
    (4172704, ">", "Meas Value Operator", "SNOMED", "Qualifier Value", "S", "276139006", VALID_START, VALID_END),
    (4171756, "<", "Meas Value Operator", "SNOMED", "Qualifier Value", "S", "276140008", VALID_START, VALID_END),
    (9189, "Negative", "Meas Value", "SNOMED", "Qualifier Value", "S", "260385009", VALID_START, VALID_END),
    (9191, "Positive", "Meas Value", "SNOMED", "Qualifier Value", "S", "10828004", VALID_START, VALID_END),
    (
        4155142,
        "Above reference range",
        "Meas Value",
        "SNOMED",
        "Qualifier Value",
        "S",
        "281302008",
        VALID_START,
        VALID_END,
    ),
    (
        4155143,
        "Below reference range",
        "Meas Value",
        "SNOMED",
        "Qualifier Value",
        "S",
        "281300000",
        VALID_START,
        VALID_END,
    ),
    (
        43054909,
        "Tobacco smoking status",
        "Observation",
        "LOINC",
        "Clinical Observation",
        "S",
        "72166-2",
        "2012-12-28",
        VALID_END,
    ),
    (
        42709996,
        "Smokes tobacco daily",
        "Observation",
        "SNOMED",
        "Clinical Finding",
        "S",
        "449868002",
        "2012-01-31",
        VALID_END,
    ),
    (
        46234680,
        "Alcohol Use Disorder Identification Test - Consumption [AUDIT-C]",
        "Observation",
        "LOINC",
        "Survey",
        "S",
        "72109-2",
        "2015-06-29",
        VALID_END,
    ),
    (
        4060985,
        "Body mass index 30+ - obesity",
        "Observation",
        "SNOMED",
        "Clinical Finding",
        "S",
        "162864005",
        "2002-01-31",
        VALID_END,
    ),
    (4126216, "Face mask", "Device", "SNOMED", "Physical Object", "S", "261352009", "2002-01-31", VALID_END),
    (
        45767945,
        "Coronary artery stent",
        "Device",
        "SNOMED",
        "Physical Object",
        "S",
        "705643001",
        "2014-07-31",
        VALID_END,
    ),
    (
        4217646,
        "Implantable defibrillator",
        "Device",
        "SNOMED",
        "Physical Object",
        "S",
        "72506001",
        "2002-01-31",
        VALID_END,
    ),
    # Non-standard source concepts, mapped to the standard ones below ('Maps to').
    (
        3030354,
        "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma by "
        "Creatinine-based formula (MDRD)",
        "Measurement",
        "LOINC",
        "Lab Test",
        "",
        "33914-3",
        VALID_START,
        "2018-06-15",
    ),
)

# Non-standard → standard mappings we ship (real 'Maps to' relationships).
SOURCE_MAPS: tuple[tuple[int, int], ...] = (
    (35208414, 192671),  # ICD10CM K92.2 Gastrointestinal hemorrhage, unspecified → Gastrointestinal hemorrhage
    (3030354, 46236952),  # LOINC 33914-3 (deprecated eGFR MDRD) → 77147-7
    *kcd7_maps(),  # the KCD-7 codes of the simulated conditions → the standard concepts written (``kcd7``)
)

# Extra real hierarchy edges (parent, child): parents we add above, and RxNorm clinical drugs whose ingredient
# the sample ancestor table does not link (the ingredient is named in the drug's RxNorm name).
EXTRA_IS_A: tuple[tuple[int, int], ...] = (
    (46271022, 443614),  # chronic kidney disease stage 1..4 'Is a' chronic kidney disease
    (46271022, 443601),
    (46271022, 443597),
    (46271022, 443612),
)
INGREDIENT_OF: tuple[tuple[int, int], ...] = (
    (1332418, 19073094),  # amlodipine → amlodipine 2.5 MG Oral Tablet
    (1308216, 19080128),  # lisinopril → lisinopril 10 MG Oral Tablet
    (1308216, 19080129),  # lisinopril → lisinopril 20 MG Oral Tablet
    (1539403, 1539463),  # simvastatin → simvastatin 10 MG Oral Tablet
    (1125315, 19020053),  # acetaminophen → acetaminophen 500 MG Oral Tablet
    (1154343, 1511248),  # albuterol → albuterol 0.09 MG/ACTUAT Metered Dose Inhaler
    (1124300, 40162359),  # diclofenac → Diclofenac Sodium 75 MG Delayed Release Oral Tablet
    (1305058, 19007333),  # methotrexate → Methotrexate 10 MG Oral Tablet
)
# RxNorm places a clinical drug two steps below its ingredient (via the clinical drug component) and three via
# the clinical drug form; the sample ancestor table has (2, 3) for every ingredient → clinical drug pair.
INGREDIENT_LEVELS = (2, 3)

VOCABULARY_ROWS: tuple[tuple[str, str, str, str, int], ...] = (
    ("None", "OMOP Standardized Vocabularies", "OMOP generated", "Soyang synthetic subset", 44819096),
    ("SNOMED", "Systematic Nomenclature of Medicine - Clinical Terms (IHTSDO)", "", "subset", 44819097),
    (
        "ICD10CM",
        "International Classification of Diseases, Tenth Revision, Clinical Modification (NCHS)",
        "",
        "subset",
        44819098,
    ),
    ("LOINC", "Logical Observation Identifiers Names and Codes (Regenstrief Institute)", "", "subset", 44819102),
    ("RxNorm", "RxNorm (NLM)", "", "subset", 44819104),
    ("UCUM", "Unified Code for Units of Measure (Regenstrief Institute)", "", "subset", 44819107),
    ("Gender", "OMOP Gender", "OMOP generated", "", 44819108),
    ("Race", "Race and Ethnicity Code Set (USBC)", "", "Version 1.0", 44819109),
    ("Ethnicity", "OMOP Ethnicity", "OMOP generated", "", 44819134),
    ("Visit", "OMOP Visit", "OMOP generated", "", 44819119),
    # The vocabulary concepts of these are not in our sources: 0 rather than a guessed id.
    ("Type Concept", "OMOP Type Concept", "OMOP generated", "", 0),
    ("Condition Status", "OMOP Condition Status", "OMOP generated", "", 0),
    ("CMS Place of Service", "Place of Service Codes for Professional Claims (CMS)", "", "subset", 0),
    ("Medicare Specialty", "Medicare provider/supplier specialty codes (CMS)", "", "subset", 0),
    KCD7_VOCABULARY,
)

DOMAIN_ROWS: tuple[tuple[str, str, int], ...] = (
    ("Condition", "Condition", 19),
    ("Drug", "Drug", 13),
    ("Ethnicity", "Ethnicity", 4),
    ("Gender", "Gender", 2),
    ("Measurement", "Measurement", 21),
    ("Metadata", "Metadata", 7),
    ("Procedure", "Procedure", 10),
    ("Race", "Race", 3),
    ("Type Concept", "Type Concept", 58),
    ("Unit", "Unit", 16),
    ("Visit", "Visit", 8),
    ("Observation", "Observation", 27),
    ("Device", "Device", 17),
    ("Specimen", "Specimen", 36),
    # Domains whose domain concept is not in our sources: 0 rather than a guessed id.
    ("Condition Status", "Condition Status", 0),
    ("Route", "Route", 0),
    ("Provider", "Provider", 0),
    ("Spec Anatomic Site", "Specimen Anatomic Site", 0),
    ("Spec Disease Status", "Specimen Disease Status", 0),
    ("Meas Value", "Measurement Value", 0),
    ("Meas Value Operator", "Measurement Value Operator", 0),
)

RELATIONSHIP_ROWS: tuple[tuple[str, str, str, str, str, int], ...] = (
    ("Is a", "Is a", "1", "0", "Subsumes", 44818821),
    ("Subsumes", "Subsumes", "1", "1", "Is a", 44818723),
    ("Maps to", "Non-standard to Standard map (OMOP)", "0", "0", "Mapped from", 44818977),
    ("Mapped from", "Standard to Non-standard map (OMOP)", "0", "0", "Maps to", 44818976),
    ("RxNorm has ing", "Has ingredient (RxNorm)", "1", "0", "RxNorm ing of", 44818719),
    ("RxNorm ing of", "Ingredient of (RxNorm)", "1", "1", "RxNorm has ing", 44818817),
)


@dataclass(frozen=True, slots=True)
class Concept:
    """One concept row."""

    concept_id: int
    concept_name: str
    domain_id: str
    vocabulary_id: str
    concept_class_id: str
    standard_concept: str
    concept_code: str
    valid_start_date: str
    valid_end_date: str


@cache
def concepts() -> dict[int, Concept]:
    """Every concept of the subset by id."""
    rows = {row[0]: Concept(*row) for row in CONCEPT_ROWS}
    for row in (*EXTRA_CONCEPTS, *kcd7_concept_rows(VALID_START, VALID_END)):
        rows[row[0]] = Concept(*row)
    return dict(sorted(rows.items()))


def _direct_edges() -> dict[tuple[int, int], tuple[int, int]]:
    """Known (ancestor, descendant) → (min, max) levels before closing."""
    known = concepts()
    edges: dict[tuple[int, int], tuple[int, int]] = {}

    def add(ancestor: int, descendant: int, low: int, high: int) -> None:
        if ancestor not in known or descendant not in known or ancestor == descendant:
            return
        old = edges.get((ancestor, descendant))
        edges[(ancestor, descendant)] = (low, high) if old is None else (min(old[0], low), max(old[1], high))

    for ancestor, descendant, low, high in ANCESTOR_ROWS:
        add(ancestor, descendant, low, high)
    for parent, child in (*IS_A_EDGES, *EXTRA_IS_A):
        add(parent, child, 1, 1)
    for ingredient, drug in INGREDIENT_OF:
        add(ingredient, drug, *INGREDIENT_LEVELS)
    return edges


@cache
def ancestor_rows() -> tuple[tuple[int, int, int, int], ...]:
    """concept_ancestor: the transitive closure over standard concepts, with a level-0 row per standard concept.

    Only standard concepts take part (as in the OMOP vocabulary). Levels of a derived pair are the min and max
    over the paths through the known pairs; the closure is computed by relaxing until nothing changes, which for
    a few hundred concepts is instant.
    """
    known = concepts()
    standard = {cid for cid, c in known.items() if c.standard_concept == "S"}
    pairs = {k: v for k, v in _direct_edges().items() if k[0] in standard and k[1] in standard}
    changed = True
    while changed:
        changed = False
        by_ancestor: dict[int, list[tuple[int, tuple[int, int]]]] = {}
        for (a, d), lv in pairs.items():
            by_ancestor.setdefault(a, []).append((d, lv))
        for (a, b), (lo1, hi1) in list(pairs.items()):
            for c, (lo2, hi2) in by_ancestor.get(b, ()):
                if c == a:
                    continue
                new = (lo1 + lo2, hi1 + hi2)
                old = pairs.get((a, c))
                merged = new if old is None else (min(old[0], new[0]), max(old[1], new[1]))
                if merged != old:
                    pairs[(a, c)] = merged
                    changed = True
    rows = [(cid, cid, 0, 0) for cid in sorted(standard)]
    rows.extend((a, d, lo, hi) for (a, d), (lo, hi) in sorted(pairs.items()))
    return tuple(rows)


@cache
def relationship_rows() -> tuple[tuple[int, int, str], ...]:
    """concept_relationship rows (concept_id_1, concept_id_2, relationship_id) for the concepts we ship."""
    known = concepts()
    rows: set[tuple[int, int, str]] = set()
    for cid, concept in known.items():
        if concept.standard_concept == "S":
            rows.add((cid, cid, "Maps to"))
            rows.add((cid, cid, "Mapped from"))
    for source, target in SOURCE_MAPS:
        rows.add((source, target, "Maps to"))
        rows.add((target, source, "Mapped from"))
    for parent, child in (*IS_A_EDGES, *EXTRA_IS_A):
        if parent in known and child in known:
            rows.add((child, parent, "Is a"))
            rows.add((parent, child, "Subsumes"))
    for ingredient, drug in INGREDIENT_OF:
        rows.add((drug, ingredient, "RxNorm has ing"))
        rows.add((ingredient, drug, "RxNorm ing of"))
    return tuple(sorted(rows))


def concept_class_rows() -> tuple[tuple[str, str, int], ...]:
    """concept_class rows for the classes in use; their concept ids are not in our sources, hence 0."""
    return tuple((name, name, 0) for name in sorted({c.concept_class_id for c in concepts().values()}))


@cache
def ingredient_of() -> dict[int, int]:
    """Drug concept → its single ingredient (ingredients map to themselves); multi-ingredient drugs are left out."""
    known = concepts()
    ingredients: dict[int, list[int]] = {}
    for a, d, _lo, _hi in ancestor_rows():
        if known[a].concept_class_id == "Ingredient" and known[d].domain_id == "Drug":
            ingredients.setdefault(d, []).append(a)
    return {drug: found[0] for drug, found in ingredients.items() if len(found) == 1}


def require(concept_ids: Iterable[int]) -> None:
    """Fail early when the generator refers to a concept the vocabulary does not ship."""
    known = concepts()
    missing = sorted({int(c) for c in concept_ids if int(c) not in known})
    if missing:
        raise ValueError(f"concepts used by the generator but missing from the vocabulary: {missing}")
