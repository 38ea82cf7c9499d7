"""The epidemiology of the synthetic population: who lives there, what they have, what they are given.

Figures are rounded, plausible values for a Korean regional population (an older province such as Gangwon:
more people over 60 than the national average, sex ratio about 1 overall, more women among the oldest). They
drive a simulation meant for testing a cohort tool, not for research: relations point the right way (diabetes
raises HbA1c, CKD lowers eGFR, prevalence rises with age) but magnitudes are only roughly calibrated.

Calibration checked on 20,000 persons (seed 42), counting people with a recorded diagnosis: type 2 diabetes in
about 11 % of living adults (20+), 4 % at 20-39, 10 % at 40-59, 19 % at 60-69 and 29 % at 70+ (KNHANES-like
figures); hypertension in about 29 % of living adults and 70 % at 70+; mean HbA1c 7.3 % with diabetes against
5.4 % without; mean eGFR 38 with CKD against 88 without.

Volume: about 140 rows per person over the 15-year window (44 measurements, 17 visits, 16 prescriptions, 15
diagnoses, 4.5 specimens, 4.4 observations, and their eras). Healthy people see a doctor rarely
(``VISIT_RATE_*``); routine panels at follow-up visits are ordered with the probabilities of ``GROUP_ORDERS``, and
the national screening measures lipids about every other round (every four years in the real programme).
Diseases are not thinned to save rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Share of the population in 5-year age bands 0-4 .. 95-99 at the end of the data window.
AGE_BAND_WEIGHTS: tuple[float, ...] = (
    2.6, 3.4, 3.9, 4.1, 4.9, 5.4, 5.3, 5.9, 7.0, 7.6, 8.6, 9.0, 8.6, 7.0, 5.2, 4.2, 3.2, 1.9, 0.8, 0.25,
)  # fmt: skip

# Cities and counties of Gangwon province with rough populations (thousands): person.location_id is drawn from it.
REGIONS: tuple[tuple[str, str, int], ...] = (
    ("Chuncheon", "24-110", 286),
    ("Wonju", "26-400", 361),
    ("Gangneung", "25-500", 210),
    ("Donghae", "25-700", 89),
    ("Taebaek", "26-000", 40),
    ("Sokcho", "24-800", 82),
    ("Samcheok", "25-900", 63),
    ("Hongcheon", "25-100", 67),
    ("Hoengseong", "25-200", 46),
    ("Yeongwol", "26-200", 38),
    ("Pyeongchang", "25-300", 41),
    ("Jeongseon", "26-100", 35),
    ("Cheorwon", "24-000", 42),
    ("Hwacheon", "24-100", 23),
    ("Yanggu", "24-500", 21),
    ("Inje", "24-600", 32),
    ("Goseong", "24-700", 27),
    ("Yangyang", "25-000", 28),
)
# location.state is VARCHAR(2) in the CDM: the province's ISO 3166-2 subdivision code (KR-51, Gangwon State).
PROVINCE_CODE = "51"

# Visits and measurements use these concepts.
VISIT_INPATIENT, VISIT_OUTPATIENT, VISIT_ER = 9201, 9202, 9203
TYPE_EHR, TYPE_LAB = 32817, 32856
GENDER_MALE, GENDER_FEMALE = 8507, 8532
RACE_ASIAN = 8515
ETHNICITY_NOT_HISPANIC = 38003564


@dataclass(frozen=True, slots=True)
class Chronic:
    """A chronic condition: prevalence at the end of the window is logistic in age, sex and other conditions.

    ``logit = intercept + per_decade * (age - 50) / 10 + female * is_female + sum(risk[c] for c the person has)``;
    conditions are drawn in the order of ``CHRONIC``, so ``risk`` may only name earlier ones.
    """

    key: str
    concept_id: int
    intercept: float
    per_decade: float
    min_age: int = 18
    female: float = 0.0
    risk: dict[str, float] = field(default_factory=dict)
    drugs: tuple[int, ...] = ()  # drug concepts, first is the most common choice
    drug_weights: tuple[float, ...] = ()
    treated: float = 0.0  # share of cases on a drug
    second_drug: float = 0.0  # share of treated cases on a second drug of the list
    death_hr: float = 1.0  # hazard ratio of death
    record: float = 0.5  # chance a visit after onset records the diagnosis


CHRONIC: tuple[Chronic, ...] = (
    Chronic("htn", 320128, -1.15, 0.95, 20, -0.2, {},
            (1332419, 19080128, 19073094, 19080129), (0.45, 0.25, 0.2, 0.1), 0.85, 0.3, 1.1),
    Chronic("t2dm", 201826, -2.3, 0.45, 25, -0.25, {"htn": 0.6},
            (1503297,), (1.0,), 0.9, 0.0, 1.4, 0.6),
    Chronic("hld", 432867, -1.4, 0.45, 25, 0.1, {"htn": 0.6, "t2dm": 0.9},
            (1545959, 1539411, 1539463), (0.5, 0.3, 0.2), 0.7, 0.0, 1.0),
    Chronic("ckd", 443597, -4.2, 0.75, 30, 0.0, {"htn": 0.9, "t2dm": 1.1},
            (19080128,), (1.0,), 0.4, 0.0, 1.6),
    Chronic("ihd", 317576, -4.3, 0.8, 35, -0.7, {"htn": 0.7, "t2dm": 0.6, "hld": 0.7},
            (19059056, 19075601, 19126352), (0.7, 0.2, 0.1), 0.85, 0.4, 1.5),
    Chronic("af", 313217, -5.6, 0.9, 40, -0.4, {"htn": 0.6, "ihd": 0.7},
            (40163554, 19018935), (0.8, 0.2), 0.75, 0.2, 1.5),
    Chronic("hf", 316139, -6.0, 0.95, 40, -0.2, {"htn": 0.6, "ihd": 1.2, "af": 1.1},
            (19080128, 19018935), (0.7, 0.3), 0.8, 0.3, 2.2),
    Chronic("copd", 255573, -5.6, 0.85, 40, -1.1, {}, (1511248, 1149380, 1137529), (0.5, 0.3, 0.2), 0.7, 0.3, 1.8),
    Chronic("asthma", 317009, -3.3, 0.1, 3, 0.2, {}, (1511248, 1149380), (0.6, 0.4), 0.7, 0.2, 1.1),
    Chronic("oa", 80180, -2.7, 0.9, 40, 0.7, {},
            (19020053, 19078461, 19019273, 40162359, 1118084), (0.35, 0.2, 0.2, 0.15, 0.1), 0.6, 0.0, 1.0, 0.4),
    Chronic("depression", 4152280, -3.2, 0.1, 15, 0.6, {}, (), (), 0.0, 0.0, 1.3, 0.4),
    Chronic("hypothyroid", 140673, -4.2, 0.3, 20, 1.3, {}, (40174880,), (1.0,), 0.9, 0.0, 1.0),
    Chronic("osteoporosis", 80502, -5.2, 1.1, 45, 1.8, {}, (40173590,), (1.0,), 0.6, 0.0, 1.1),
    Chronic("gout", 440674, -4.5, 0.35, 25, -1.4, {"ckd": 0.7}, (), (), 0.0, 0.0, 1.0),
    Chronic("alzheimer", 378419, -9.0, 1.7, 60, 0.4, {"htn": 0.2, "t2dm": 0.3},
            (40223768, 19077572), (0.8, 0.2), 0.7, 0.0, 2.5),
    Chronic("ra", 80809, -5.6, 0.3, 20, 1.1, {}, (19007333,), (1.0,), 0.8, 0.0, 1.2),
    Chronic("breast_ca", 4112853, -6.2, 0.5, 30, 3.5, {}, (), (), 0.0, 0.0, 2.0),
    Chronic("colon_ca", 4180790, -7.2, 0.75, 40, -0.3, {}, (), (), 0.0, 0.0, 2.5),
    Chronic("lung_ca", 4115276, -8.6, 0.95, 45, -0.9, {"copd": 1.2}, (), (), 0.0, 0.0, 5.0),
    Chronic("gerd", 318800, -2.9, 0.3, 18, 0.1, {}, (), (), 0.0, 0.0, 1.0, 0.3),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Acute:
    """An acute event: yearly rate ``base * exp(per_decade * (age - 50) / 10) * prod(multipliers)``."""

    key: str
    concept_id: int
    base: float
    per_decade: float
    setting: int  # visit concept
    female: float = 1.0  # rate ratio for women
    multipliers: dict[str, float] = field(default_factory=dict)  # chronic key (or 'nsaid', 'anticoag') → ratio
    stay_days: tuple[int, int] = (0, 0)  # inclusive range of extra days for inpatient stays
    drugs: tuple[int, ...] = ()
    days_supply: int = 7
    procedures: tuple[int, ...] = ()
    source_concept_id: int = 0  # a non-standard source concept coded at the hospital, 0 = same as concept


ACUTE: tuple[Acute, ...] = (
    Acute("pneumonia", 255848, 0.006, 0.45, VISIT_INPATIENT, 0.85, {"copd": 3.0, "hf": 2.0, "alzheimer": 2.5},
          (3, 12), (19073188, 19075001), 7, (4163872,)),
    Acute("bronchitis", 260139, 0.04, -0.05, VISIT_OUTPATIENT, 1.1, {"copd": 2.0, "asthma": 1.8}, (0, 0),
          (19073188, 46233710), 5),
    Acute("pharyngitis", 4112343, 0.08, -0.35, VISIT_OUTPATIENT, 1.1, {}, (0, 0), (19133905, 1127433), 5),
    Acute("sinusitis", 4283893, 0.03, -0.1, VISIT_OUTPATIENT, 1.3, {"asthma": 1.5}, (0, 0), (19073188,), 10),
    Acute("uti", 81902, 0.02, 0.2, VISIT_OUTPATIENT, 4.0, {"t2dm": 1.6}, (0, 0), (920334, 19075001), 5),
    Acute("cystitis", 195588, 0.01, 0.1, VISIT_OUTPATIENT, 5.0, {}, (0, 0), (920334,), 5),
    Acute("hip_fracture", 4230399, 0.0004, 1.0, VISIT_INPATIENT, 2.0, {"osteoporosis": 3.0, "alzheimer": 2.0},
          (7, 20), (19020053,), 14, (4203771, 4145310)),
    Acute("forearm_fracture", 4278672, 0.002, 0.3, VISIT_ER, 1.4, {"osteoporosis": 2.0}, (0, 0),
          (19078461,), 7, (4243062,)),
    Acute("vertebral_fracture", 4048695, 0.0008, 0.9, VISIT_OUTPATIENT, 2.2, {"osteoporosis": 4.0}, (0, 0),
          (19020053,), 14),
    Acute("gi_bleed", 192671, 0.0008, 0.65, VISIT_INPATIENT, 0.7, {"nsaid": 3.0, "anticoag": 2.5, "ckd": 1.5},
          (2, 7), (), 0, (4249893,), 35208414),
    Acute("mi", 4329847, 0.0004, 0.6, VISIT_INPATIENT, 0.4, {"ihd": 8.0, "t2dm": 1.6}, (3, 8),
          (19075601, 19059056), 30, (4163951, 4230911, 4336464)),
    Acute("stroke", 381316, 0.0006, 0.75, VISIT_INPATIENT, 0.85, {"af": 4.0, "htn": 1.8}, (5, 15),
          (40220960,), 1, ()),
    Acute("appendicitis", 440448, 0.0012, -0.4, VISIT_INPATIENT, 0.9, {}, (2, 4), (19075001,), 5, (4198190,)),
    Acute("cholecystitis", 198809, 0.0008, 0.35, VISIT_INPATIENT, 1.2, {}, (3, 6), (), 0, (4163971,)),
    Acute("ankle_sprain", 81151, 0.006, -0.5, VISIT_ER, 0.9, {}, (0, 0), (19078461,), 7, (4024289,)),
    Acute("sepsis", 132797, 0.0003, 0.8, VISIT_INPATIENT, 0.9, {"t2dm": 1.5, "ckd": 2.0, "alzheimer": 2.0},
          (5, 20), (19129655,), 10, ()),
    Acute("dvt", 44782746, 0.0004, 0.5, VISIT_ER, 1.1, {"breast_ca": 3.0, "lung_ca": 4.0}, (0, 0),
          (40163554,), 90),
    Acute("hf_exacerbation", 4229440, 0.0, 0.0, VISIT_INPATIENT, 1.0, {"hf": 1.0}, (4, 10), (19080129,), 30,
          (4230911,)),
)  # fmt: skip
# hf_exacerbation has base 0 and gets its rate from HF_EXACERBATION_RATE for people with heart failure.
HF_EXACERBATION_RATE = 0.25

NSAIDS = (19078461, 19019273, 40162359, 1118084)
ANTICOAGULANTS = (40163554, 19059056, 19075601)


@dataclass(frozen=True, slots=True)
class Lab:
    """A measurement: value = mean + sex/age effects + condition effects + person effect + noise."""

    key: str
    concept_id: int
    unit_concept_id: int
    mean: float
    sd_person: float
    sd_visit: float
    low: float
    high: float
    female: float = 0.0
    per_decade: float = 0.0
    effects: dict[str, float] = field(default_factory=dict)  # chronic key → shift
    treated: dict[str, float] = field(default_factory=dict)  # chronic key → shift when on a drug for it
    decimals: int = 1
    floor: float = 0.0
    source_concept_id: int = 0


LABS: tuple[Lab, ...] = (
    Lab("sbp", 3004249, 8876, 118.0, 9.0, 8.0, 90, 120, -3.0, 3.0, {"htn": 22.0, "ckd": 4.0}, {"htn": -10.0}, 0),
    Lab("dbp", 3012888, 8876, 75.0, 6.0, 6.0, 60, 80, -2.0, 0.5, {"htn": 9.0}, {"htn": -5.0}, 0),
    Lab("bmi", 3038553, 9531, 23.6, 3.0, 0.5, 18.5, 23.0, -0.6, 0.1, {"t2dm": 2.0, "htn": 1.2, "hld": 0.8}, {}, 1),
    Lab("hba1c", 3004410, 8554, 5.45, 0.25, 0.15, 4.0, 5.6, 0.0, 0.06, {"t2dm": 2.4}, {"t2dm": -0.6}, 1, 4.0),
    Lab("glucose", 3000483, 8840, 94.0, 7.0, 8.0, 70, 100, -2.0, 1.5, {"t2dm": 60.0}, {"t2dm": -20.0}, 0, 55.0),
    Lab("tchol", 3027114, 8840, 192.0, 25.0, 12.0, 0, 200, 6.0, 1.0, {"hld": 40.0}, {"hld": -50.0}, 0, 90.0),
    Lab("ldl", 3009966, 8840, 115.0, 22.0, 10.0, 0, 130, 3.0, 1.0, {"hld": 38.0}, {"hld": -48.0}, 0, 30.0),
    Lab("hdl", 3007070, 8840, 53.0, 9.0, 4.0, 40, 200, 8.0, -0.5, {"t2dm": -5.0}, {}, 0, 15.0),
    Lab("tg", 3022192, 8840, 120.0, 35.0, 30.0, 0, 150, -20.0, 2.0, {"t2dm": 45.0, "hld": 40.0}, {"hld": -20.0}, 0,
        30.0),
    Lab("hemoglobin", 3000963, 8713, 14.9, 0.8, 0.5, 13.0, 17.0, -2.0, -0.15, {"ckd": -1.6, "hf": -0.5}, {}, 1, 5.0),
    Lab("creatinine", 3016723, 8840, 0.95, 0.1, 0.06, 0.7, 1.3, -0.22, 0.03, {"ckd": 0.85, "hf": 0.15, "t2dm": 0.05},
        {}, 2, 0.3),
    Lab("egfr", 46236952, 720870, 0.0, 0.0, 0.0, 60, 999, decimals=0, source_concept_id=3030354),
)  # fmt: skip
# eGFR is computed from the creatinine of the same draw (an MDRD-style formula), so the two always agree.
LAB_GROUPS: dict[str, tuple[str, ...]] = {
    "bp": ("sbp", "dbp"),
    "bmi": ("bmi",),
    "glycemic": ("hba1c", "glucose"),
    "lipid": ("tchol", "ldl", "hdl", "tg"),
    "cbc": ("hemoglobin",),
    "renal": ("creatinine", "egfr"),
}
# Chance a follow-up visit orders each group, for people with the condition (max over their conditions).
GROUP_ORDERS: dict[str, dict[str, float]] = {
    "bp": {"*": 0.1, "htn": 0.5, "ckd": 0.5, "hf": 0.5, "ihd": 0.5},
    "bmi": {"*": 0.05, "t2dm": 0.3},
    "glycemic": {"*": 0.02, "t2dm": 0.45},
    "lipid": {"*": 0.02, "hld": 0.25, "t2dm": 0.15, "ihd": 0.25},
    "cbc": {"*": 0.05, "ckd": 0.4, "hf": 0.2, "ra": 0.4},
    "renal": {"*": 0.03, "ckd": 0.5, "t2dm": 0.2, "htn": 0.1, "hf": 0.3},
}
# National health screening (every two years from age 20): groups measured, chance each is done.
SCREENING_GROUPS: dict[str, float] = {"bp": 1.0, "bmi": 1.0, "glycemic": 0.0, "lipid": 0.3, "cbc": 0.9, "renal": 0.8}
SCREENING_HBA1C = 0.15  # HbA1c is not part of the screening; some clinics add it
SCREENING_UPTAKE = 0.7

# Outpatient follow-up rate per year: base + per_year_of_age * age + per chronic condition. Kept low for healthy
# people (their visits record little beyond the odd blood pressure), which is where most rows used to come from.
VISIT_RATE_BASE, VISIT_RATE_AGE, VISIT_RATE_CHRONIC = 0.1, 0.006, 0.5
# Deaths: Gompertz hazard exp(a + b * age) per year, times the product of the conditions' hazard ratios.
GOMPERTZ_A, GOMPERTZ_B = -10.4, 0.092
