"""Vectorised generation of a synthetic OMOP CDM population, one chunk of persons at a time.

A chunk is a pure function of ``(seed, chunk index, first person id, size)`` (:func:`build_chunk`): it draws from
its own random stream (``SeedSequence([seed, chunk_index])``) and numbers the rows of every table from 1.
:func:`shift_ids` then adds the row counts of the earlier chunks, which gives the dense ids of a sequential run;
so the same seed and chunk size give the same rows in the same order whatever the machine and however many
processes build chunks (``parallel``). Everything is numpy on arrays of persons, visits and events: no Python
loop runs per person or per row, and text columns stay integer codes (``writer.Coded``) until DuckDB formats
them. Memory is that of one chunk: nothing is carried from one chunk to the next.

Order of the simulation, per chunk: persons (age, sex, region) → chronic conditions (prevalence at the end of
the window, onset age) → death (Gompertz hazard times the conditions' hazard ratios) → observation period →
visits (follow-up, screening, onset, acute events) and their stays (visit details: emergency room, intensive
care, ward) → what each visit records (diagnoses, prescriptions, measurements and urine test strips, procedures,
observations at screening, devices) → specimens of the blood draws and biopsies → eras derived from the
occurrences and exposures as the OHDSI era scripts build them (condition, drug and dose eras).

Every column the cohort compiler filters holds values for part of the rows and NULL (or 0) for the rest, in
proportions a hospital feed plausibly has, so that each Circe attribute can be proven on rows that it keeps and
rows that it drops.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from warehouse.synthetic import population as pop
from warehouse.synthetic.vocabulary import Concept, concepts, ingredient_of
from warehouse.synthetic.writer import NULL_DAY, Coded, Column

WINDOW_START = int(np.datetime64("2010-01-01", "D").astype(np.int64))
WINDOW_END = int(np.datetime64("2024-12-31", "D").astype(np.int64))
DAYS_PER_YEAR = 365.25
CONDITION_ERA_GAP = 30  # OHDSI convention: occurrences closer than 30 days form one era
DRUG_ERA_GAP = 30
PROVIDERS_PER_SITE = 8

CHRONIC_KEYS = [c.key for c in pop.CHRONIC]
C = len(pop.CHRONIC)
CHRONIC_INDEX = {k: i for i, k in enumerate(CHRONIC_KEYS)}
LAB_INDEX = {lab.key: i for i, lab in enumerate(pop.LABS)}
GROUPS = list(pop.LAB_GROUPS)
Tables = dict[str, dict[str, Column]]  # table → column → values, one chunk
# visit_source_value of each kind of visit; visits carry the index, the text is only made by the CSV writer.
VISIT_SOURCES: tuple[str, ...] = ("follow-up", "diagnosis", "screening", *(a.key for a in pop.ACUTE))
_VISIT_SOURCE = {label: i for i, label in enumerate(VISIT_SOURCES)}
_RECORDING_SOURCES = {_VISIT_SOURCE[k] for k in ("follow-up", "diagnosis", "screening")}
# Tables whose surrogate key is numbered by Counters. A chunk numbers from 1; its rows are then moved up by the
# rows of all earlier chunks (shift_ids), which gives the same dense ids as one sequential run.
ID_TABLES: tuple[str, ...] = (
    "visit_occurrence", "condition_occurrence", "drug_exposure", "procedure_occurrence", "measurement",
    "condition_era", "drug_era", "visit_detail", "specimen", "observation", "device_exposure", "dose_era",
)  # fmt: skip

# What the attribute columns hold (concepts of ``vocabulary.EXTRA_CONCEPTS``). Each is recorded for part of the
# rows only and NULL for the rest, in proportions a hospital ETL plausibly yields, so that a filter on it is
# neither always true nor always false.
PLACE_HOSPITAL, PLACE_OUTPATIENT_HOSPITAL, PLACE_OFFICE = 8717, 8756, 8940
SPECIALTY_GP, SPECIALTY_GI, SPECIALTY_IM = 38004446, 38004455, 38004456
STATUS_PRIMARY, STATUS_SECONDARY, STATUS_CONFIRMED = 32902, 32908, 32893
TYPE_ENCOUNTER_DIAGNOSIS, TYPE_PHARMACY_CLAIM, TYPE_DEATH_CERTIFICATE = 32020, 32869, 32815
VISIT_ICU = 32037
ROUTE_ORAL, ROUTE_IV, ROUTE_SC = 4132161, 4171047, 4302612
UNIT_MG, UNIT_ML = 8576, 8587
OPERATOR_EQ, OPERATOR_GT, OPERATOR_LT = 4172703, 4172704, 4171756
VALUE_POSITIVE, VALUE_NEGATIVE, VALUE_ABOVE_RANGE, VALUE_BELOW_RANGE = 9191, 9189, 4155142, 4155143
URINE_LEUKOCYTE_ESTERASE, URINE_GLUCOSE = 3000348, 3009261
SPECIMENS = (4001225, 4047495, 4046834)  # blood, peripheral blood, capillary blood
SITE_LUNG, STATUS_MALIGNANT = 4111459, 4066212
SMOKING_STATUS, SMOKES_DAILY, AUDIT_C, OBESITY = 43054909, 42709996, 46234680, 4060985
FACE_MASK, CORONARY_STENT, DEFIBRILLATOR = 4126216, 45767945, 4217646
ICU_EVENTS = ("mi", "sepsis", "stroke")
RESPIRATORY_EVENTS = ("pneumonia", "bronchitis", "pharyngitis", "sinusitis")
CONDITION_STOP_REASONS = ("Resolved", "Improved")
DRUG_STOP_REASONS = ("Course completed", "Adverse reaction", "Patient request")
SMOKING_TEXT = ("Never smoker", "Former smoker", "Current smoker")
SPECIMEN_SOURCES = ("blood", "bronchial biopsy", "tissue biopsy")
SPECIMEN_SECTIONS = ("HEM", "CHEM", "PATH")  # the laboratory section that numbers the specimen
DEVICE_UDIS = ("(01)00884521123456", "(01)00643169001763", "(01)08717648200274")


def drug_forms(known: dict[int, Concept]) -> tuple[dict[int, int], dict[int, float]]:
    """Route and strength (mg per unit) of each clinical drug, read from its RxNorm name ("lisinopril 10 MG
    Oral Tablet": oral, 10 mg): the drug_strength facts the OHDSI dose era script reads. Drugs with several
    strengths, or a strength per volume or per actuation, have none."""
    route: dict[int, int] = {}
    strength: dict[int, float] = {}
    for cid, concept in known.items():
        if concept.domain_id != "Drug":
            continue
        name = concept.concept_name.lower()
        if " oral " in f" {name} ":
            route[cid] = ROUTE_ORAL
        elif "insulin" in name or "prefilled syringe" in name:
            route[cid] = ROUTE_SC
        elif "inject" in name:
            route[cid] = ROUTE_IV
        found = _STRENGTH.findall(concept.concept_name)
        if len(found) == 1:
            strength[cid] = float(found[0])
    return route, strength


_STRENGTH = re.compile(r"(\d+(?:\.\d+)?) MG(?![/\w])")


def _lookup(mapping: dict[int, int | str], keys: np.ndarray, default: int | str = -1) -> np.ndarray:
    """Vectorised dict lookup for integer keys (via a sorted key array)."""
    ks = np.array(sorted(mapping), dtype=np.int64)
    vs = np.array([mapping[k] for k in ks.tolist()])
    pos = np.clip(np.searchsorted(ks, keys), 0, len(ks) - 1)
    found = ks[pos] == keys
    out = np.where(found, vs[pos], default)
    return out


@dataclass
class Counters:
    """Next id of every table with a surrogate key within one chunk (from 1; see :func:`shift_ids`)."""

    next_ids: dict[str, int] = field(default_factory=dict)

    def take(self, table: str, count: int) -> np.ndarray:
        start = self.next_ids.get(table, 1)
        self.next_ids[table] = start + count
        return np.arange(start, start + count, dtype=np.int64)

    def counts(self) -> dict[str, int]:
        """Ids handed out per table of :data:`ID_TABLES`."""
        return {table: self.next_ids.get(table, 1) - 1 for table in ID_TABLES}


@dataclass(frozen=True)
class Site:
    """Care sites and providers: per region one hospital (inpatient, ER) and two clinics (outpatient)."""

    hospital: np.ndarray  # care_site_id by region index
    clinics: np.ndarray  # (regions, 2)


def site_layout() -> Site:
    regions = len(pop.REGIONS)
    hospital = np.arange(regions, dtype=np.int64) * 10 + 1
    clinics = np.stack([hospital + 1, hospital + 2], axis=1)
    return Site(hospital=hospital, clinics=clinics)


def reference_tables() -> dict[str, dict[str, np.ndarray]]:
    """location, care_site and provider: small, fixed, written once."""
    names = [r[0] for r in pop.REGIONS]
    n = len(names)
    location = {
        "location_id": np.arange(1, n + 1, dtype=np.int64),
        "city": np.array(names),
        "state": np.array([pop.PROVINCE_CODE] * n),
        "zip": np.array([r[1] for r in pop.REGIONS]),
        "county": np.array(names),
        "location_source_value": np.array([f"KR-42-{i + 1:02d}" for i in range(n)]),
        "country_source_value": np.array(["KR"] * n),
    }
    site = site_layout()
    ids, site_names, loc, places = [], [], [], []
    for i, name in enumerate(names):
        ids += [int(site.hospital[i]), int(site.clinics[i, 0]), int(site.clinics[i, 1])]
        site_names += [f"{name} Medical Center", f"{name} Family Clinic", f"{name} Internal Medicine Clinic"]
        loc += [i + 1] * 3
        # The internal medicine clinics of every third region never reported their place of service.
        places += [PLACE_HOSPITAL, PLACE_OFFICE, -1 if i % 3 == 2 else PLACE_OUTPATIENT_HOSPITAL]
    care_site = {
        "care_site_id": np.array(ids, dtype=np.int64),
        "care_site_name": np.array(site_names),
        "place_of_service_concept_id": np.array(places, dtype=np.int64),
        "location_id": np.array(loc, dtype=np.int64),
        "care_site_source_value": np.array([f"CS{x:04d}" for x in ids]),
    }
    rng = np.random.default_rng(20240101)  # fixed: the provider roster does not depend on the run's seed
    provider_ids = (np.repeat(np.array(ids, dtype=np.int64), PROVIDERS_PER_SITE) * 100) + np.tile(
        np.arange(PROVIDERS_PER_SITE, dtype=np.int64), len(ids)
    )
    female = rng.random(len(provider_ids)) < 0.35
    # Hospital doctors are internists or gastroenterologists, family clinics general practitioners, internal
    # medicine clinics internists; one doctor in eight has no specialty on file.
    kind = np.tile(np.arange(3), len(ids) // 3).repeat(PROVIDERS_PER_SITE)
    hospital_specialty = np.where(rng.random(len(provider_ids)) < 0.7, SPECIALTY_IM, SPECIALTY_GI)
    specialty = np.choose(
        kind, [hospital_specialty, np.full(len(kind), SPECIALTY_GP), np.full(len(kind), SPECIALTY_IM)]
    )
    specialty = np.where(rng.random(len(provider_ids)) < 0.125, -1, specialty)
    provider = {
        "provider_id": provider_ids,
        "provider_name": np.array([f"Provider {x}" for x in provider_ids.tolist()]),
        "specialty_concept_id": specialty,
        "care_site_id": provider_ids // 100,
        "year_of_birth": rng.integers(1955, 1992, len(provider_ids)),
        "gender_concept_id": np.where(female, pop.GENDER_FEMALE, pop.GENDER_MALE),
        "provider_source_value": np.array([f"P{x}" for x in provider_ids.tolist()]),
        "gender_source_value": np.where(female, "F", "M"),
    }
    return {"location": location, "care_site": care_site, "provider": provider}


class Model:
    """Arrays derived once from ``population`` and the vocabulary, used by every chunk."""

    def __init__(self) -> None:
        known = concepts()
        self.codes = {cid: c.concept_code for cid, c in known.items()}
        # Source values are concept codes: kept as indices into one label tuple (see writer.Coded).
        self.code_ids = np.array(sorted(self.codes), dtype=np.int64)
        self.code_labels = tuple(self.codes[c] for c in self.code_ids.tolist())
        self.ingredient = ingredient_of()
        self.route, self.strength_mg = drug_forms(known)
        self.chronic_concept = np.array([c.concept_id for c in pop.CHRONIC], dtype=np.int64)
        self.intercept = np.array([c.intercept for c in pop.CHRONIC])
        self.per_decade = np.array([c.per_decade for c in pop.CHRONIC])
        self.female = np.array([c.female for c in pop.CHRONIC])
        self.min_age = np.array([c.min_age for c in pop.CHRONIC], dtype=np.float64)
        self.treated = np.array([c.treated for c in pop.CHRONIC])
        self.second = np.array([c.second_drug for c in pop.CHRONIC])
        self.death_log_hr = np.log(np.array([c.death_hr for c in pop.CHRONIC]))
        self.record = np.array([c.record for c in pop.CHRONIC])
        k = max(len(c.drugs) for c in pop.CHRONIC)
        self.drugs = np.full((C, k), -1, dtype=np.int64)
        self.drug_cum = np.ones((C, k))
        for i, c in enumerate(pop.CHRONIC):
            if c.drugs:
                self.drugs[i, : len(c.drugs)] = c.drugs
                w = np.array(c.drug_weights, dtype=np.float64)
                self.drug_cum[i, : len(c.drugs)] = np.cumsum(w / w.sum())
        self.n_drugs = np.array([len(c.drugs) for c in pop.CHRONIC])
        labs = pop.LABS
        self.lab_effect = np.zeros((C, len(labs)))
        self.lab_treated = np.zeros((C, len(labs)))
        for j, lab in enumerate(labs):
            for key, shift in lab.effects.items():
                self.lab_effect[CHRONIC_INDEX[key], j] = shift
            for key, shift in lab.treated.items():
                self.lab_treated[CHRONIC_INDEX[key], j] = shift
        self.group_base = np.array([pop.GROUP_ORDERS[g].get("*", 0.0) for g in GROUPS])
        self.group_cond = np.zeros((C, len(GROUPS)))
        for gi, g in enumerate(GROUPS):
            for key, p in pop.GROUP_ORDERS[g].items():
                if key != "*":
                    self.group_cond[CHRONIC_INDEX[key], gi] = p
        self.nsaid = np.isin(self.drugs, pop.NSAIDS).any(axis=1)
        self.anticoag = np.isin(self.drugs, pop.ANTICOAGULANTS).any(axis=1)
        self.site = site_layout()
        weights = np.array([r[2] for r in pop.REGIONS], dtype=np.float64)
        self.region_cum = np.cumsum(weights / weights.sum())
        band = np.array(pop.AGE_BAND_WEIGHTS)
        self.band_cum = np.cumsum(band / band.sum())


class ChunkBuilder:
    """Generates one chunk; the public entry point is :func:`generate`."""

    def __init__(self, model: Model, rng: np.random.Generator, counters: Counters, first_person: int, n: int):
        self.m, self.rng, self.ids = model, rng, counters
        self.n = n
        self.person_id = np.arange(first_person, first_person + n, dtype=np.int64)
        self.out: Tables = {}
        # visits are collected from several sources, then sorted and numbered together
        self._visits: list[dict[str, np.ndarray]] = []

    # --- persons, conditions, death ---------------------------------------------------------------------------
    def persons(self) -> None:
        rng, m, n = self.rng, self.m, self.n
        band = np.searchsorted(m.band_cum, rng.random(n), side="right")
        age_end = np.minimum(band, 19) * 5 + rng.random(n) * 5  # age at the end of the window, years
        birth = (WINDOW_END - age_end * DAYS_PER_YEAR).astype(np.int64)
        p_female = 0.49 + 0.17 * np.clip((age_end - 60) / 35, 0, 1)
        female = rng.random(n) < p_female
        region = np.minimum(np.searchsorted(m.region_cum, rng.random(n), side="right"), len(m.region_cum) - 1)
        # Registration: most people are in the hospital network from the start of the window, later arrivals
        # (moving in, first contact) spread over the years.
        enter = WINDOW_START + (rng.random(n) ** 3 * (WINDOW_END - WINDOW_START) * 0.8).astype(np.int64)
        start = np.maximum(enter, birth)
        leave_early = rng.random(n) < 0.08
        end = np.where(leave_early, start + (rng.random(n) * (WINDOW_END - start)).astype(np.int64), WINDOW_END)
        self.age_end, self.birth, self.female, self.region = age_end, birth, female, region
        self.obs_start, self.obs_end = start, end

    def chronic(self) -> None:
        rng, m, n = self.rng, self.m, self.n
        has = np.zeros((n, C), dtype=bool)
        for i, spec in enumerate(pop.CHRONIC):
            logit = m.intercept[i] + m.per_decade[i] * (self.age_end - 50) / 10 + m.female[i] * self.female
            for key, add in spec.risk.items():
                logit = logit + add * has[:, CHRONIC_INDEX[key]]
            has[:, i] = (rng.random(n) < 1 / (1 + np.exp(-logit))) & (self.age_end >= m.min_age[i])
        # Onset skewed towards the later years of the span from the earliest age to now.
        span = np.maximum(self.age_end[:, None] - m.min_age[None, :], 0)
        onset_age = m.min_age[None, :] + span * rng.beta(2.2, 1.3, (n, C))
        self.onset = np.where(
            has, self.birth[:, None] + (onset_age * DAYS_PER_YEAR).astype(np.int64), np.iinfo(np.int64).max
        )
        self.has = has
        # Treatment: whether, and with which drug(s) of the condition's list.
        treated = has & (rng.random((n, C)) < m.treated[None, :]) & (m.n_drugs[None, :] > 0)
        first = (rng.random((n, C))[:, :, None] > m.drug_cum[None, :, :]).sum(axis=2)
        first = np.minimum(first, np.maximum(m.n_drugs - 1, 0)[None, :])
        second = np.where(
            treated & (rng.random((n, C)) < m.second[None, :]) & (m.n_drugs[None, :] > 1),
            (first + 1 + rng.integers(0, 10**6, (n, C)) % np.maximum(m.n_drugs - 1, 1)[None, :])
            % np.maximum(m.n_drugs, 1),
            -1,
        )
        self.treated, self.drug1, self.drug2 = treated, first, second

    def death(self) -> None:
        rng, m = self.rng, self.m
        age_start = (self.obs_start - self.birth) / DAYS_PER_YEAR
        years = (self.obs_end - self.obs_start) / DAYS_PER_YEAR
        # Conditions count from their onset; using them for the whole stay overstates early hazard a little,
        # which is fine for test data.
        log_hr = (self.has * m.death_log_hr[None, :]).sum(axis=1)
        scale = np.exp(pop.GOMPERTZ_A + log_hr)
        b = pop.GOMPERTZ_B
        e = rng.exponential(1.0, self.n)
        # Cumulative Gompertz hazard from age_start: scale/b*(exp(b(a0+t)) - exp(b a0)) = E  →  t
        t = np.log(np.exp(b * age_start) + b * e / scale) / b - age_start
        dies = t < years
        death_day = self.obs_start + (t * DAYS_PER_YEAR).astype(np.int64)
        self.dies = dies
        self.obs_end = np.where(dies, np.maximum(death_day, self.obs_start), self.obs_end)
        # A condition whose onset falls after the end of observation never shows in the data.
        self.has &= self.onset <= self.obs_end[:, None]
        self.treated &= self.has

    # --- visits ---------------------------------------------------------------------------------------------------
    def _add_visits(self, person: np.ndarray, day: np.ndarray, concept: int, stay: np.ndarray | None = None,
                    source: str = "follow-up") -> dict[str, np.ndarray]:  # fmt: skip
        v = {
            "person": person.astype(np.int64),
            "day": day.astype(np.int64),
            "concept": np.full(len(person), concept, dtype=np.int64),
            "stay": np.zeros(len(person), dtype=np.int64) if stay is None else stay.astype(np.int64),
            "source": np.full(len(person), _VISIT_SOURCE[source], dtype=np.int64),
        }
        self._visits.append(v)
        return v

    def follow_up_visits(self) -> None:
        rng, n = self.rng, self.n
        years = (self.obs_end - self.obs_start + 1) / DAYS_PER_YEAR
        rate = pop.VISIT_RATE_BASE + pop.VISIT_RATE_AGE * self.age_end + pop.VISIT_RATE_CHRONIC * self.has.sum(1)
        count = rng.poisson(rate * years)
        person = np.repeat(np.arange(n), count)
        span = (self.obs_end - self.obs_start + 1)[person]
        day = self.obs_start[person] + (rng.random(len(person)) * span).astype(np.int64)
        self._add_visits(person, day, pop.VISIT_OUTPATIENT, source="follow-up")
        # A diagnosis visit on the day of every onset inside the observation period.
        p, c = np.nonzero(self.has & (self.onset >= self.obs_start[:, None]))
        self._add_visits(p, self.onset[p, c], pop.VISIT_OUTPATIENT, source="diagnosis")

    def screening_visits(self) -> None:
        rng = self.rng
        # Every two years from 20, with a random phase per person.
        phase = (rng.random(self.n) * 730).astype(np.int64)
        first = np.maximum(self.obs_start, self.birth + int(20 * DAYS_PER_YEAR)) + phase
        count = np.maximum((self.obs_end - first) // 730 + 1, 0)
        person = np.repeat(np.arange(self.n), count)
        offsets = np.arange(len(person)) - np.repeat(np.cumsum(count) - count, count)
        day = first[person] + offsets * 730
        keep = rng.random(len(person)) < pop.SCREENING_UPTAKE
        self._add_visits(person[keep], day[keep], pop.VISIT_OUTPATIENT, source="screening")

    def acute_events(self) -> None:
        rng, n = self.rng, self.n
        years = (self.obs_end - self.obs_start + 1) / DAYS_PER_YEAR
        age_mid = (self.age_end - (WINDOW_END - self.obs_end) / DAYS_PER_YEAR) - years / 2
        nsaid = (self.treated & self.m.nsaid[None, :]).any(1)
        anticoag = (self.treated & self.m.anticoag[None, :]).any(1)
        self.acute: list[tuple[pop.Acute, dict[str, np.ndarray]]] = []
        for spec in pop.ACUTE:
            rate = spec.base * np.exp(spec.per_decade * (age_mid - 50) / 10) * np.where(self.female, spec.female, 1.0)
            if spec.key == "hf_exacerbation":
                rate = pop.HF_EXACERBATION_RATE * self.has[:, CHRONIC_INDEX["hf"]]
            for key, ratio in spec.multipliers.items():
                if key == "nsaid":
                    flag = nsaid
                elif key == "anticoag":
                    flag = anticoag
                else:
                    flag = self.has[:, CHRONIC_INDEX[key]]
                if spec.key != "hf_exacerbation":
                    rate = rate * np.where(flag, ratio, 1.0)
            count = rng.poisson(rate * years)
            person = np.repeat(np.arange(n), count)
            span = (self.obs_end - self.obs_start + 1)[person]
            day = self.obs_start[person] + (rng.random(len(person)) * span).astype(np.int64)
            lo, hi = spec.stay_days
            stay = rng.integers(lo, hi + 1, len(person)) if hi > 0 else np.zeros(len(person), dtype=np.int64)
            stay = np.minimum(stay, self.obs_end[person] - day)
            v = self._add_visits(person, day, spec.setting, stay, source=spec.key)
            self.acute.append((spec, v))

    def number_visits(self) -> None:
        """Sort all visits by person and day and give them ids, provider and care site."""
        parts = self._visits
        cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        kind = np.concatenate([np.full(len(p["person"]), i) for i, p in enumerate(parts)])
        local = np.concatenate([np.arange(len(p["person"])) for p in parts])
        order = np.lexsort((local, kind, cat["day"], cat["person"]))
        ids = np.empty(len(order), dtype=np.int64)
        ids[order] = self.ids.take("visit_occurrence", len(order))
        # write back each part's ids so its events can refer to their visit
        offset = 0
        for p in parts:
            p["id"] = ids[offset : offset + len(p["person"])]
            offset += len(p["person"])
        region = self.region[cat["person"]]
        inpatient = cat["concept"] != pop.VISIT_OUTPATIENT
        clinic = self.m.site.clinics[region, self.rng.integers(0, 2, len(region))]
        site = np.where(inpatient, self.m.site.hospital[region], clinic)
        provider = site * 100 + self.rng.integers(0, PROVIDERS_PER_SITE, len(site))
        offset = 0
        for p in parts:
            sl = slice(offset, offset + len(p["person"]))
            p["provider"], p["site"] = provider[sl], site[sl]
            offset += len(p["person"])
        o = order
        self.out["visit_occurrence"] = {
            "visit_occurrence_id": ids[o],
            "person_id": self.person_id[cat["person"][o]],
            "visit_concept_id": cat["concept"][o],
            "visit_start_date": cat["day"][o],
            "visit_start_datetime": cat["day"][o],
            "visit_end_date": cat["day"][o] + cat["stay"][o],
            "visit_end_datetime": cat["day"][o] + cat["stay"][o],
            "visit_type_concept_id": np.full(len(o), pop.TYPE_EHR),
            "provider_id": provider[o],
            "care_site_id": site[o],
            "visit_source_value": Coded(cat["source"][o], VISIT_SOURCES),
            "visit_source_concept_id": cat["concept"][o],
        }
        self.visit_details(cat["person"], cat["day"], cat["stay"], cat["concept"], cat["source"], ids, site)

    def visit_details(self, p: np.ndarray, day: np.ndarray, stay: np.ndarray, concept: np.ndarray,
                      source: np.ndarray, visit: np.ndarray, site: np.ndarray) -> None:  # fmt: skip
        """Stays inside hospital visits: an emergency room visit is one detail; an inpatient stay is a ward stay,
        preceded by one to three days of intensive care for half of the heart attacks, sepses and strokes (and a
        few other admissions). Each stay has its own attending doctor of the hospital."""
        rng = self.rng
        er = np.nonzero(concept == pop.VISIT_ER)[0]
        ip = np.nonzero(concept == pop.VISIT_INPATIENT)[0]
        severe = np.isin(source[ip], [_VISIT_SOURCE[k] for k in ICU_EVENTS])
        icu = ip[rng.random(len(ip)) < np.where(severe, 0.5, 0.04)]
        icu_days = np.minimum(rng.integers(1, 4, len(icu)), stay[icu])
        icu_end = day[icu] + icu_days
        ward_start = day[ip].copy()
        has_icu = np.isin(ip, icu)
        ward_start[has_icu] = icu_end
        ward = stay[ip] + day[ip] > ward_start  # the stay goes on after intensive care (or had none)
        ward |= ~has_icu
        rows = np.concatenate([er, icu, ip[ward]])
        start = np.concatenate([day[er], day[icu], ward_start[ward]])
        end = np.concatenate([day[er] + stay[er], icu_end, (day + stay)[ip[ward]]])
        kind = np.concatenate([np.full(len(er), 0), np.full(len(icu), 1), np.full(ward.sum(), 2)])
        detail_concept = np.array([pop.VISIT_ER, VISIT_ICU, pop.VISIT_INPATIENT])[kind]
        o = np.lexsort((kind, start, self.person_id[p[rows]]))
        rows, start, end, kind, detail_concept = rows[o], start[o], end[o], kind[o], detail_concept[o]
        ids = self.ids.take("visit_detail", len(rows))
        # The ward stay that follows intensive care within the same visit refers to it.
        preceding = np.full(len(rows), -1, dtype=np.int64)
        follows = (kind[1:] == 2) & (kind[:-1] == 1) & (visit[rows[1:]] == visit[rows[:-1]])
        preceding[1:][follows] = ids[:-1][follows]
        self.out["visit_detail"] = {
            "visit_detail_id": ids,
            "person_id": self.person_id[p[rows]],
            "visit_detail_concept_id": detail_concept,
            "visit_detail_start_date": start,
            "visit_detail_start_datetime": start,
            "visit_detail_end_date": end,
            "visit_detail_end_datetime": end,
            "visit_detail_type_concept_id": np.full(len(rows), pop.TYPE_EHR),
            "provider_id": site[rows] * 100 + rng.integers(0, PROVIDERS_PER_SITE, len(rows)),
            "care_site_id": site[rows],
            "visit_detail_source_value": Coded(kind, ("ER", "ICU", "WARD")),
            "visit_detail_source_concept_id": detail_concept,
            "preceding_visit_detail_id": preceding,
            "visit_occurrence_id": visit[rows],
        }

    # --- events ---------------------------------------------------------------------------------------------------
    def _conditions(self, person: np.ndarray, concept: np.ndarray, day: np.ndarray, end: np.ndarray,
                    visit: np.ndarray, provider: np.ndarray, source_concept: np.ndarray) -> None:  # fmt: skip
        self._cond.append((person, concept, day, end, visit, provider, source_concept))

    def chronic_records(self) -> None:
        """Diagnoses, prescriptions and measurements at follow-up, diagnosis and screening visits."""
        rng, m = self.rng, self.m
        self._cond: list[tuple[np.ndarray, ...]] = []
        self._drug: list[tuple[np.ndarray, ...]] = []
        self._meas: list[tuple[np.ndarray, ...]] = []
        for v in self._visits:
            if v["source"].size == 0 or v["source"][0] not in _RECORDING_SOURCES:
                continue
            src = VISIT_SOURCES[v["source"][0]]
            p, day = v["person"], v["day"]
            active = self.onset[p] <= day[:, None]
            if src == "diagnosis":
                # the condition diagnosed that day is recorded for sure
                rec = active & (self.onset[p] == day[:, None])
            else:
                rec = active & (rng.random(active.shape) < m.record[None, :])
            vi, ci = np.nonzero(rec)
            self._conditions(p[vi], m.chronic_concept[ci], day[vi], day[vi], v["id"][vi], v["provider"][vi],
                             m.chronic_concept[ci])  # fmt: skip
            if src != "screening":
                # Prescriptions for treated active conditions: first drug, and the second for combination users.
                on = active & self.treated[p] & (rng.random(active.shape) < 0.85)
                vi, ci = np.nonzero(on)
                supply = np.array([30, 60, 90])[rng.integers(0, 3, len(vi))]
                drug = m.drugs[ci, self.drug1[p[vi], ci]]
                self._drug.append((p[vi], drug, day[vi], supply, v["id"][vi], v["provider"][vi]))
                two = self.drug2[p[vi], ci] >= 0
                vi2, ci2 = vi[two], ci[two]
                drug2 = m.drugs[ci2, self.drug2[p[vi2], ci2]]
                self._drug.append((p[vi2], drug2, day[vi2], supply[two], v["id"][vi2], v["provider"][vi2]))
                prob = np.empty((len(p), len(GROUPS)))
                for gi in range(len(GROUPS)):
                    prob[:, gi] = np.maximum(m.group_base[gi], (active * m.group_cond[None, :, gi]).max(axis=1))
            else:
                prob = np.broadcast_to(np.array([pop.SCREENING_GROUPS[g] for g in GROUPS]), (len(p), len(GROUPS)))
            ordered = rng.random(prob.shape) < prob
            if src == "screening":
                hba1c_only = rng.random(len(p)) < pop.SCREENING_HBA1C
                self._labs(p[hba1c_only], day[hba1c_only], v["id"][hba1c_only], v["provider"][hba1c_only], ("hba1c",))
            for gi, g in enumerate(GROUPS):
                if src == "screening" and g == "glycemic":
                    keys: tuple[str, ...] = ("glucose",)
                    sel = rng.random(len(p)) < 0.95
                else:
                    keys = pop.LAB_GROUPS[g]
                    sel = ordered[:, gi]
                self._labs(p[sel], day[sel], v["id"][sel], v["provider"][sel], keys)

    def _labs(self, p: np.ndarray, day: np.ndarray, visit: np.ndarray, provider: np.ndarray,
              keys: tuple[str, ...], shift: dict[str, float] | None = None) -> None:  # fmt: skip
        if len(p) == 0:
            return
        rng, m = self.rng, self.m
        active = (self.onset[p] <= day[:, None]).astype(np.float64)
        treated = active * self.treated[p]
        age = (day - self.birth[p]) / DAYS_PER_YEAR
        creat = None
        for key in keys:
            j = LAB_INDEX[key]
            lab = pop.LABS[j]
            if key == "egfr":
                # MDRD: 175 * Scr^-1.154 * age^-0.203 * 0.742 if female
                assert creat is not None, "eGFR needs the creatinine of the same draw"
                value = 175 * creat**-1.154 * np.maximum(age, 18) ** -0.203 * np.where(self.female[p], 0.742, 1.0)
            else:
                person_effect = self._person_effect(j)[p]
                value = (
                    lab.mean
                    + lab.female * self.female[p]
                    + lab.per_decade * (age - 50) / 10
                    + active @ m.lab_effect[:, j]
                    + treated @ m.lab_treated[:, j]
                    + lab.sd_person * person_effect
                    + lab.sd_visit * rng.standard_normal(len(p))
                    + (shift or {}).get(key, 0.0)
                )
                value = np.maximum(value, lab.floor)
                if key == "creatinine":
                    creat = value
            value = np.round(value, lab.decimals)
            self._meas.append((p, np.full(len(p), j), day, value, visit, provider))

    def _person_effect(self, j: int) -> np.ndarray:
        # A stable per-person deviation per lab (their "usual" value), drawn once per chunk and lab.
        cache = self.__dict__.setdefault("_effects", {})
        if j not in cache:
            cache[j] = self.rng.standard_normal(self.n)
        return cache[j]

    def acute_records(self) -> None:
        rng = self.rng
        self._proc: list[tuple[np.ndarray, ...]] = []
        for spec, v in self.acute:
            p, day, stay = v["person"], v["day"], v["stay"]
            if len(p) == 0:
                continue
            end = day + np.maximum(stay, 14 if spec.setting == pop.VISIT_OUTPATIENT else stay)
            source = spec.source_concept_id or spec.concept_id
            self._conditions(p, np.full(len(p), spec.concept_id), day, end, v["id"], v["provider"],
                             np.full(len(p), source))  # fmt: skip
            if spec.drugs:
                drug = np.array(spec.drugs)[rng.integers(0, len(spec.drugs), len(p))]
                self._drug.append((p, drug, day + stay, np.full(len(p), spec.days_supply), v["id"], v["provider"]))
            for proc in spec.procedures:
                done = rng.random(len(p)) < (0.8 if proc == spec.procedures[0] else 0.3)
                self._proc.append((p[done], np.full(done.sum(), proc), day[done], v["id"][done], v["provider"][done]))
            if spec.setting == pop.VISIT_INPATIENT:
                shift = {"hemoglobin": -3.0} if spec.key == "gi_bleed" else None
                self._labs(p, day, v["id"], v["provider"], ("hemoglobin", "creatinine", "egfr"), shift)

    # --- tables ---------------------------------------------------------------------------------------------------
    def person_tables(self) -> None:
        n, m = self.n, self.m
        birth = self.birth.astype("datetime64[D]")
        y = birth.astype("datetime64[Y]")
        mo = birth.astype("datetime64[M]")
        female = self.female
        self.out["person"] = {
            "person_id": self.person_id,
            "gender_concept_id": np.where(female, pop.GENDER_FEMALE, pop.GENDER_MALE),
            "year_of_birth": y.astype(np.int64) + 1970,
            "month_of_birth": (mo - y).astype(np.int64) + 1,
            "day_of_birth": (birth - mo).astype(np.int64) + 1,
            "birth_datetime": self.birth,
            "race_concept_id": np.full(n, pop.RACE_ASIAN),
            "ethnicity_concept_id": np.full(n, pop.ETHNICITY_NOT_HISPANIC),
            "location_id": self.region + 1,
            "care_site_id": m.site.hospital[self.region],
            "person_source_value": np.char.add("P", self.person_id.astype(str)),
            "gender_source_value": Coded(female.astype(np.int64), ("M", "F")),
        }
        self.out["observation_period"] = {
            "observation_period_id": self.person_id,
            "person_id": self.person_id,
            "observation_period_start_date": self.obs_start,
            "observation_period_end_date": self.obs_end,
            "period_type_concept_id": np.full(n, pop.TYPE_EHR),
        }
        dead = np.nonzero(self.dies)[0]
        # Cause: the condition with the largest hazard ratio among those the person has, else unknown.
        weight = np.where(self.has[dead], m.death_log_hr[None, :] + 1e-3, -np.inf)
        best = weight.argmax(axis=1)
        cause = np.where(np.isfinite(weight.max(axis=1)), m.chronic_concept[best], -1)
        self.out["death"] = {
            "person_id": self.person_id[dead],
            "death_date": self.obs_end[dead],
            "death_datetime": self.obs_end[dead],
            "death_type_concept_id": np.where(self.rng.random(len(dead)) < 0.4, TYPE_DEATH_CERTIFICATE, pop.TYPE_EHR),
            "cause_concept_id": cause,
            "cause_source_value": _codes(m, cause),
            "cause_source_concept_id": cause,
        }

    def event_tables(self) -> None:
        m = self.m
        # conditions
        cols = [np.concatenate(x) for x in zip(*self._cond, strict=True)]
        p, concept, day, end, visit, provider, source = cols
        o = np.lexsort((concept, visit, day, p))
        p, concept, day, end, visit, provider, source = (a[o] for a in cols)
        rng, n = self.rng, len(p)
        # A chronic diagnosis noted at a visit has no end date half of the time; acute ones end, some with a
        # stop reason. The era script reads a missing end as the day after the start (OHDSI).
        acute = end > day
        end = np.where(~acute & (rng.random(n) < 0.5), NULL_DAY, end)
        era_end = np.where(end == NULL_DAY, day + 1, end)
        stop = np.where(acute & (rng.random(n) < 0.3), rng.integers(0, len(CONDITION_STOP_REASONS), n), -1)
        status = np.array([STATUS_PRIMARY, STATUS_SECONDARY, STATUS_CONFIRMED, -1])[
            np.searchsorted([0.45, 0.8, 0.9], rng.random(n), side="right")
        ]
        self.out["condition_occurrence"] = {
            "condition_occurrence_id": self.ids.take("condition_occurrence", n),
            "person_id": self.person_id[p],
            "condition_concept_id": concept,
            "condition_start_date": day,
            "condition_start_datetime": day,
            "condition_end_date": end,
            "condition_end_datetime": end,
            "condition_type_concept_id": np.where(rng.random(n) < 0.2, TYPE_ENCOUNTER_DIAGNOSIS, pop.TYPE_EHR),
            "condition_status_concept_id": status,
            "stop_reason": Coded(stop, CONDITION_STOP_REASONS),
            "provider_id": provider,
            "visit_occurrence_id": visit,
            "condition_source_value": _codes(m, source),
            "condition_source_concept_id": source,
        }
        self.out["condition_era"] = _eras(self.ids, "condition_era", p, concept, day, era_end, CONDITION_ERA_GAP,
                                          self.person_id)  # fmt: skip
        # drugs (end clipped to the end of observation: nobody takes pills after death)
        cols = [np.concatenate(x) for x in zip(*self._drug, strict=True)]
        o = np.lexsort((cols[1], cols[4], cols[2], cols[0]))
        p, drug, day, supply, visit, provider = (a[o] for a in cols)
        end = np.minimum(day + supply - 1, self.obs_end[p])
        supply = end - day + 1
        n = len(p)
        chronic = supply >= 30
        # Long-term prescriptions are refilled, short courses not. The CDM requires an end date: where the
        # source had none (a tenth) the ETL derived it from the days supply and left verbatim_end_date empty; a
        # few short courses have no days supply.
        refills = np.where(chronic, np.minimum(rng.poisson(1.2, n), 5), 0)
        refills = np.where(rng.random(n) < 0.05, -1, refills)
        per_day = np.where(rng.random(n) < 0.25, 2, 1)
        quantity = np.where(rng.random(n) < 0.04, np.nan, (supply * per_day).astype(np.float64))
        no_end = rng.random(n) < 0.1
        days_supply = np.where(~no_end & ~chronic & (rng.random(n) < 0.05), -1, supply)
        stop = np.where(rng.random(n) < 0.15, np.where(chronic, rng.integers(1, len(DRUG_STOP_REASONS), n), 0), -1)
        route = _lookup(m.route, drug)
        self.out["drug_exposure"] = {
            "drug_exposure_id": self.ids.take("drug_exposure", n),
            "person_id": self.person_id[p],
            "drug_concept_id": drug,
            "drug_exposure_start_date": day,
            "drug_exposure_start_datetime": day,
            "drug_exposure_end_date": end,
            "drug_exposure_end_datetime": end,
            "verbatim_end_date": np.where(no_end, NULL_DAY, end),
            "drug_type_concept_id": np.where(rng.random(n) < 0.3, TYPE_PHARMACY_CLAIM, pop.TYPE_EHR),
            "stop_reason": Coded(stop, DRUG_STOP_REASONS),
            "refills": refills,
            "quantity": quantity,
            "days_supply": days_supply,
            "route_concept_id": route,
            "lot_number": Coded(np.where(route == ROUTE_IV, rng.integers(0, 3, n), -1), ("A1024", "B2048", "C4096")),
            "provider_id": provider,
            "visit_occurrence_id": visit,
            "drug_source_value": _codes(m, drug),
            "drug_source_concept_id": drug,
        }
        ingredient = _lookup(m.ingredient, drug)
        self.out["drug_era"] = _eras(self.ids, "drug_era", p, ingredient, day, end, DRUG_ERA_GAP,
                                     self.person_id, gap_days=True)  # fmt: skip
        # Dose eras: the daily dose of the ingredient (strength x quantity / days supply) held for a stretch.
        strength = _lookup(m.strength_mg, drug, np.nan).astype(np.float64)
        dose = np.round(strength * quantity / supply, 1)
        known = np.isfinite(dose) & (ingredient >= 0)
        self.out["dose_era"] = _dose_eras(self.ids, p[known], ingredient[known], dose[known], day[known],
                                          end[known], self.person_id)  # fmt: skip
        # procedures
        if self._proc:
            cols = [np.concatenate(x) for x in zip(*self._proc, strict=True)]
            o = np.lexsort((cols[1], cols[3], cols[2], cols[0]))
            p, proc, day, visit, provider = (a[o] for a in cols)
        else:
            p = proc = day = visit = provider = np.zeros(0, dtype=np.int64)
        self.out["procedure_occurrence"] = {
            "procedure_occurrence_id": self.ids.take("procedure_occurrence", len(p)),
            "person_id": self.person_id[p],
            "procedure_concept_id": proc,
            "procedure_date": day,
            "procedure_datetime": day,
            "procedure_end_date": day,
            "procedure_end_datetime": day,
            "procedure_type_concept_id": np.full(len(p), pop.TYPE_EHR),
            "quantity": np.ones(len(p), dtype=np.int64),
            "provider_id": provider,
            "visit_occurrence_id": visit,
            "procedure_source_value": _codes(m, proc),
            "procedure_source_concept_id": proc,
        }
        # measurements
        cols = [np.concatenate(x) for x in zip(*self._meas, strict=True)]
        o = np.lexsort((cols[1], cols[4], cols[2], cols[0]))
        p, lab, day, value, visit, provider = (a[o] for a in cols)
        self.specimens(p, day, visit)
        labs = pop.LABS
        n = len(p)
        concept = np.array([x.concept_id for x in labs])[lab]
        unit = np.array([x.unit_concept_id for x in labs])[lab]
        source = np.array([x.source_concept_id or x.concept_id for x in labs])[lab]
        low = np.array([x.low for x in labs], dtype=np.float64)[lab]
        high = np.array([x.high for x in labs], dtype=np.float64)[lab]
        # The laboratory reports an eGFR over 90 as "> 90"; some systems store the "=" of plain results too.
        # Reference ranges and units are missing from a few rows, as in real feeds; a range bound of 0 is none.
        capped = (lab == LAB_INDEX["egfr"]) & (value > 90)
        value = np.where(capped, 90.0, value)
        operator = np.where(capped, OPERATOR_GT, np.where(rng.random(n) < 0.3, OPERATOR_EQ, -1))
        no_range = rng.random(n) < 0.1
        low = np.where(no_range | (low == 0), np.nan, low)
        high = np.where(no_range, np.nan, high)
        unit = np.where(rng.random(n) < 0.02, -1, unit)
        # A fifth of the results outside their range carry the laboratory's flag as a value concept.
        flagged = rng.random(n) < 0.2
        value_concept = np.where(flagged & (value > high), VALUE_ABOVE_RANGE, -1)
        value_concept = np.where(flagged & (value < low), VALUE_BELOW_RANGE, value_concept)
        if self._qual:
            # Urine test strips: a qualitative result, no number, unit or range.
            q = [np.concatenate(x) for x in zip(*self._qual, strict=True)]
            qn = len(q[0])
            p, day, visit, provider = (
                np.concatenate([a, b]) for a, b in zip((p, day, visit, provider), q[:4], strict=True)
            )
            concept, source = np.concatenate([concept, q[4]]), np.concatenate([source, q[4]])
            value_concept = np.concatenate([value_concept, q[5]])
            value = np.concatenate([value, np.full(qn, np.nan)])
            operator, unit = np.concatenate([operator, np.full(qn, -1)]), np.concatenate([unit, np.full(qn, -1)])
            low, high = np.concatenate([low, np.full(qn, np.nan)]), np.concatenate([high, np.full(qn, np.nan)])
            o = np.lexsort((concept, visit, day, p))
            p, day, visit, provider, concept, source, value_concept, value, operator, unit, low, high = (
                a[o]
                for a in (p, day, visit, provider, concept, source, value_concept, value, operator, unit, low, high)
            )
        self.out["measurement"] = {
            "measurement_id": self.ids.take("measurement", len(p)),
            "person_id": self.person_id[p],
            "measurement_concept_id": concept,
            "measurement_date": day,
            "measurement_datetime": day,
            "measurement_type_concept_id": np.full(len(p), pop.TYPE_LAB),
            "operator_concept_id": operator,
            "value_as_number": value,
            "value_as_concept_id": value_concept,
            "unit_concept_id": unit,
            "range_low": low,
            "range_high": high,
            "provider_id": provider,
            "visit_occurrence_id": visit,
            "measurement_source_value": _codes(m, source),
            "measurement_source_concept_id": source,
            "unit_source_value": _codes(m, unit),
        }

    def specimens(self, p: np.ndarray, day: np.ndarray, visit: np.ndarray) -> None:
        """Half of the blood draws behind the measurements (rows sorted by person, day, visit) are recorded as a
        specimen; and a biopsy at the diagnosis of lung, colon and breast cancer, of a third of COPD cases and a
        quarter of pneumonia admissions (bronchial), whose specimen type the hospital codes locally (concept 0)
        but whose site and malignancy are mapped."""
        rng, n = self.rng, len(p)
        draw = np.ones(n, dtype=bool)
        draw[1:] = (p[1:] != p[:-1]) | (day[1:] != day[:-1]) | (visit[1:] != visit[:-1])
        draw &= rng.random(n) < 0.5
        bp, bday = p[draw], day[draw]
        nb = len(bp)
        quantity = np.where(rng.random(nb) < 0.1, np.nan, np.where(rng.random(nb) < 0.7, 5.0, 10.0))
        cancer = [CHRONIC_INDEX[k] for k in ("lung_ca", "colon_ca", "breast_ca", "copd")]
        seen = self.has[:, cancer] & (self.onset[:, cancer] >= self.obs_start[:, None])
        seen[:, 3] &= rng.random(self.n) < 1 / 3
        xp, xc = np.nonzero(seen)
        xday = self.onset[xp, np.array(cancer)[xc]]
        # A quarter of the pneumonia admissions have a bronchoscopy with a bronchial specimen (like COPD's).
        pneumonia = next(v for spec, v in self.acute if spec.key == "pneumonia")
        washed = rng.random(len(pneumonia["person"])) < 0.25
        xp = np.concatenate([xp, pneumonia["person"][washed]])
        xday = np.concatenate([xday, pneumonia["day"][washed]])
        xc = np.concatenate([xc, np.full(washed.sum(), 3)])
        site = np.where(np.isin(xc, (0, 3)), SITE_LUNG, -1)
        status = np.where(xc < 3, STATUS_MALIGNANT, -1)
        person = np.concatenate([bp, xp])
        when = np.concatenate([bday, xday])
        kind = np.concatenate([np.zeros(nb, dtype=np.int64), np.where(np.isin(xc, (0, 3)), 1, 2)])
        o = np.lexsort((kind, when, person))
        concept = np.concatenate([np.array(SPECIMENS)[np.searchsorted([0.6, 0.9], rng.random(nb))], np.zeros(len(xp))])
        quantity = np.concatenate([quantity, np.full(len(xp), np.nan)])
        unit = np.where(np.isnan(quantity), -1, UNIT_ML)
        section = np.concatenate([rng.integers(0, 2, nb), np.full(len(xp), 2)])
        site = np.concatenate([np.full(nb, -1), site])
        status = np.concatenate([np.full(nb, -1), status])
        ids = self.ids.take("specimen", len(person))
        self.out["specimen"] = {
            "specimen_id": ids,
            "person_id": self.person_id[person[o]],
            "specimen_concept_id": concept[o].astype(np.int64),
            "specimen_type_concept_id": np.full(len(o), pop.TYPE_LAB),
            "specimen_date": when[o],
            "specimen_datetime": when[o],
            "quantity": quantity[o],
            "unit_concept_id": unit[o],
            "anatomic_site_concept_id": site[o],
            "disease_status_concept_id": status[o],
            "specimen_source_id": Coded(section[o], SPECIMEN_SECTIONS),
            "specimen_source_value": Coded(kind[o], SPECIMEN_SOURCES),
            "unit_source_value": Coded(np.where(unit[o] < 0, -1, 0), ("mL",)),
        }

    def observations(self) -> None:
        """At screening visits: smoking status (a daily smoker's answer is a concept, the others text), the
        AUDIT-C alcohol score for two in five, and obesity noted for the obese."""
        rng = self.rng
        smoker = rng.random(self.n) < np.where(self.female, 0.05, 0.3)
        former = ~smoker & (rng.random(self.n) < 0.2)
        obese = rng.random(self.n) < 0.08
        parts = []
        for v in self._visits:
            if v["source"].size == 0 or v["source"][0] != _VISIT_SOURCE["screening"]:
                continue
            p, day, visit, provider = v["person"], v["day"], v["id"], v["provider"]
            k = len(p)
            smoke = np.where(smoker[p], 2, np.where(former[p], 1, 0))
            parts.append((p, day, visit, provider, np.full(k, SMOKING_STATUS), np.full(k, np.nan),
                          np.where(smoke == 2, SMOKES_DAILY, -1), smoke))  # fmt: skip
            a = rng.random(k) < 0.4
            score = np.minimum(rng.poisson(np.where(smoker[p[a]], 4.0, 1.5)), 12).astype(np.float64)
            parts.append((p[a], day[a], visit[a], provider[a], np.full(a.sum(), AUDIT_C), score,
                          np.full(a.sum(), -1), np.full(a.sum(), -1)))  # fmt: skip
            b = obese[p]
            parts.append((p[b], day[b], visit[b], provider[b], np.full(b.sum(), OBESITY), np.full(b.sum(), np.nan),
                          np.full(b.sum(), -1), np.full(b.sum(), -1)))  # fmt: skip
        empty = np.zeros(0, dtype=np.int64)
        cols = [np.concatenate(x) for x in zip(*parts, strict=True)] if parts else [empty] * 8
        o = np.lexsort((cols[4], cols[2], cols[1], cols[0]))
        p, day, visit, provider, concept, number, value_concept, text = (a[o] for a in cols)
        self.out["observation"] = {
            "observation_id": self.ids.take("observation", len(p)),
            "person_id": self.person_id[p],
            "observation_concept_id": concept,
            "observation_date": day,
            "observation_datetime": day,
            "observation_type_concept_id": np.full(len(p), pop.TYPE_EHR),
            "value_as_number": number.astype(np.float64),
            "value_as_string": Coded(np.where(concept == SMOKING_STATUS, text, -1), SMOKING_TEXT),
            "value_as_concept_id": value_concept,
            "provider_id": provider,
            "visit_occurrence_id": visit,
            "observation_source_value": _codes(self.m, concept),
            "observation_source_concept_id": concept,
        }

    def devices(self) -> None:
        """Face masks handed out at respiratory infection visits from 2020; a coronary stent for most heart
        attacks and a defibrillator for some heart failure admissions; implants carry a device identifier."""
        rng = self.rng
        parts = []
        mask_from = int(np.datetime64("2020-01-01", "D").astype(np.int64))
        for spec, v in self.acute:
            p, day, visit, provider = v["person"], v["day"], v["id"], v["provider"]
            k = len(p)
            if spec.key in RESPIRATORY_EVENTS:
                sel = (day >= mask_from) & (rng.random(k) < 0.5)
                # A fifth of the boxes handed out were scanned, with the box's device identifier.
                udi = np.where(rng.random(sel.sum()) < 0.2, rng.integers(0, len(DEVICE_UDIS), sel.sum()), -1)
                parts.append((p[sel], day[sel], visit[sel], provider[sel], np.full(sel.sum(), FACE_MASK),
                              np.where(rng.random(sel.sum()) < 0.5, 5, 10), udi))  # fmt: skip
            elif spec.key in ("mi", "hf_exacerbation"):
                sel = rng.random(k) < (0.6 if spec.key == "mi" else 0.1)
                concept = CORONARY_STENT if spec.key == "mi" else DEFIBRILLATOR
                count = np.where(rng.random(sel.sum()) < 0.2, 2, 1) if spec.key == "mi" else np.ones(sel.sum(), int)
                parts.append((p[sel], day[sel], visit[sel], provider[sel], np.full(sel.sum(), concept), count,
                              rng.integers(0, len(DEVICE_UDIS), sel.sum())))  # fmt: skip
        empty = np.zeros(0, dtype=np.int64)
        cols = [np.concatenate(x) for x in zip(*parts, strict=True)] if parts else [empty] * 7
        o = np.lexsort((cols[4], cols[2], cols[1], cols[0]))
        p, day, visit, provider, concept, quantity, udi = (a[o] for a in cols)
        implant = concept != FACE_MASK
        self.out["device_exposure"] = {
            "device_exposure_id": self.ids.take("device_exposure", len(p)),
            "person_id": self.person_id[p],
            "device_concept_id": concept,
            "device_exposure_start_date": day,
            "device_exposure_start_datetime": day,
            "device_exposure_end_date": np.where(implant, NULL_DAY, day),
            "device_exposure_end_datetime": np.where(implant, NULL_DAY, day),
            "device_type_concept_id": np.full(len(p), pop.TYPE_EHR),
            "unique_device_id": Coded(udi, DEVICE_UDIS),
            "quantity": quantity,
            "provider_id": provider,
            "visit_occurrence_id": visit,
            "device_source_value": _codes(self.m, concept),
            "device_source_concept_id": concept,
        }

    def qualitative_labs(self) -> None:
        """Urine test strips: leukocyte esterase at urinary infection visits (mostly positive), glucose at a
        fifth of the diabetic follow-ups (positive when the diabetes is untreated, often)."""
        rng = self.rng
        self._qual: list[tuple[np.ndarray, ...]] = []
        for spec, v in self.acute:
            if spec.key in ("uti", "cystitis"):
                k = len(v["person"])
                result = np.where(rng.random(k) < 0.85, VALUE_POSITIVE, VALUE_NEGATIVE)
                self._qual.append((v["person"], v["day"], v["id"], v["provider"],
                                   np.full(k, URINE_LEUKOCYTE_ESTERASE), result))  # fmt: skip
        t2dm = CHRONIC_INDEX["t2dm"]
        for v in self._visits:
            if v["source"].size == 0 or v["source"][0] != _VISIT_SOURCE["follow-up"]:
                continue
            p, day = v["person"], v["day"]
            sel = (self.onset[p, t2dm] <= day) & (rng.random(len(p)) < 0.2)
            positive = rng.random(sel.sum()) < np.where(self.treated[p[sel], t2dm], 0.2, 0.6)
            result = np.where(positive, VALUE_POSITIVE, VALUE_NEGATIVE)
            self._qual.append((p[sel], day[sel], v["id"][sel], v["provider"][sel],
                               np.full(sel.sum(), URINE_GLUCOSE), result))  # fmt: skip

    def build(self) -> Tables:
        self.persons()
        self.chronic()
        self.death()
        self.follow_up_visits()
        self.screening_visits()
        self.acute_events()
        self.number_visits()
        self.chronic_records()
        self.acute_records()
        self.qualitative_labs()
        self.observations()
        self.devices()
        self.person_tables()
        self.event_tables()
        return self.out


def _codes(model: Model, concept_ids: np.ndarray) -> Coded:
    """Source values: the concept code of each concept (NULL for none), as the hospital system would store it."""
    pos = np.clip(np.searchsorted(model.code_ids, concept_ids), 0, len(model.code_ids) - 1)
    index = np.where(model.code_ids[pos] == concept_ids, pos, -1)
    return Coded(index, model.code_labels)


def _eras(counters: Counters, table: str, p: np.ndarray, concept: np.ndarray, start: np.ndarray, end: np.ndarray,
          gap: int, person_id: np.ndarray, gap_days: bool = False) -> dict[str, np.ndarray]:  # fmt: skip
    """Collapse intervals into eras per (person, concept): a new era starts when an interval begins more than
    ``gap`` days after every earlier interval of the same group has ended (the OHDSI era logic)."""
    keep = concept >= 0
    p, concept, start, end = p[keep], concept[keep], start[keep], end[keep]
    o = np.lexsort((end, start, concept, p))
    p, concept, start, end = p[o], concept[o], start[o], end[o]
    n = len(p)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        cols = {f"{table}_id": empty, "person_id": empty}
        return cols
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = (p[1:] != p[:-1]) | (concept[1:] != concept[:-1])
    group = np.cumsum(new_group) - 1
    # Running max of end within a group: offset every group far above the previous one so one global
    # maximum.accumulate never carries a value across groups.
    big = np.int64(1 << 20)
    running = np.maximum.accumulate(end + group * big) - group * big
    new_era = new_group.copy()
    new_era[1:] |= start[1:] > running[:-1] + gap
    era = np.cumsum(new_era) - 1
    first = np.nonzero(new_era)[0]
    era_start = start[first]
    era_end = np.maximum.reduceat(end, first)
    count = np.diff(np.append(first, n))
    ids = counters.take(table, len(first))
    if table == "condition_era":
        return {
            "condition_era_id": ids,
            "person_id": person_id[p[first]],
            "condition_concept_id": concept[first],
            "condition_era_start_date": era_start,
            "condition_era_end_date": era_end,
            "condition_occurrence_count": count,
        }
    # Gap days as the OHDSI drug era script counts them: exposures that overlap or touch merge into
    # sub-exposures; gap = (era end - era start) - sum over sub-exposures of (end - start).
    new_sub = new_era.copy()
    new_sub[1:] |= start[1:] > running[:-1]
    sub_first = np.nonzero(new_sub)[0]
    sub_days = np.maximum.reduceat(end, sub_first) - start[sub_first]
    exposed = np.bincount(era[sub_first], weights=sub_days, minlength=len(first)).astype(np.int64)
    if table == "dose_era":
        return {"dose_era_id": ids, "person_id": person_id[p[first]], "dose_era_start_date": era_start,
                "dose_era_end_date": era_end, "_group": concept[first]}  # fmt: skip
    return {
        "drug_era_id": ids,
        "person_id": person_id[p[first]],
        "drug_concept_id": concept[first],
        "drug_era_start_date": era_start,
        "drug_era_end_date": era_end,
        "drug_exposure_count": count,
        "gap_days": (era_end - era_start) - exposed,
    }


def _dose_eras(counters: Counters, p: np.ndarray, ingredient: np.ndarray, dose: np.ndarray, start: np.ndarray,
               end: np.ndarray, person_id: np.ndarray) -> dict[str, np.ndarray]:  # fmt: skip
    """Dose eras as the OHDSI script builds them: per person, ingredient, unit (mg here) and daily dose, exposures
    collapsed with the 30-day persistence window."""
    doses, dose_index = np.unique(dose, return_inverse=True)
    group = ingredient * len(doses) + dose_index if len(doses) else ingredient
    eras = _eras(counters, "dose_era", p, group, start, end, DRUG_ERA_GAP, person_id, gap_days=True)
    if "_group" not in eras:
        return eras
    group = eras.pop("_group")
    return {
        "dose_era_id": eras["dose_era_id"],
        "person_id": eras["person_id"],
        "drug_concept_id": group // len(doses),
        "unit_concept_id": np.full(len(group), UNIT_MG),
        "dose_value": doses[group % len(doses)],
        "dose_era_start_date": eras["dose_era_start_date"],
        "dose_era_end_date": eras["dose_era_end_date"],
    }


def chunk_sizes(persons: int, chunk_size: int) -> Iterator[tuple[int, int, int]]:
    """(chunk_index, first_person_id, size) for every chunk."""
    index, first = 0, 1
    while first <= persons:
        size = min(chunk_size, persons - first + 1)
        yield index, first, size
        index += 1
        first += size


def build_chunk(model: Model, seed: int, index: int, first_person: int, size: int) -> tuple[Tables, dict[str, int]]:
    """The tables of chunk ``index`` (persons ``first_person`` ..) with ids from 1, and the ids used per table.

    A pure function of its arguments: the chunk's random stream is ``SeedSequence([seed, index])``, so any
    process can build any chunk and get the same arrays.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    counters = Counters()
    tables = ChunkBuilder(model, rng, counters, first_person, size).build()
    return tables, counters.counts()


def shift_ids(tables: Tables, offsets: dict[str, int]) -> None:
    """Move a chunk's ids up by ``offsets`` (rows of earlier chunks per table), in every column that holds them."""
    for data in tables.values():
        for table, offset in offsets.items():
            column = f"{table}_id"
            values = data.get(column)
            if offset and isinstance(values, np.ndarray):
                data[column] = np.where(values >= 0, values + offset, values)


def generate(persons: int, seed: int, chunk_size: int = 10_000) -> Iterator[Tables]:
    """Yield the event tables of each chunk of ``persons`` in order, in one process (see ``parallel`` for more)."""
    model = Model()
    offsets = dict.fromkeys(ID_TABLES, 0)
    for index, first, size in chunk_sizes(persons, chunk_size):
        tables, counts = build_chunk(model, seed, index, first, size)
        shift_ids(tables, offsets)
        offsets = {table: offsets[table] + counts[table] for table in ID_TABLES}
        yield tables
