"""What the attacker asks the sites, generated once per session: the families of definitions the attacks share.

Every family is built around small groups of GiBleed persons: one age at index within a condition's first
diagnosis (of one sex, or both), which holds 1 to 9 persons. The ages are picked from the engine's truth so that
each instance is a genuinely small group; the attacker's arithmetic never sees the truth.

- ``Chain``: a condition's first diagnosis (``base``, with demographics), and the same with one rule "not aged a"
  per small age group (``chain``): per-rule counts and attrition steps differ from their neighbours by one group.
- ``Pair``: two definitions, a condition's first diagnosis in one sex (``larger``) and the same without one age
  (``smaller``): subtraction between definitions, and the federated attack at two sites.
- ``Tracker``: a condition whose youngest persons (fewer than 10, under ``age``) are the target; rule 1 is "aged
  ``age`` or more", each further rule "aged ``age`` or more, or ever took drug X".
- ``Variants``: one ``Chain`` asked again, with its rules in reverse order, and written otherwise (the concept set
  listed concept by concept, "not aged a" as "younger than a or older than a").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from cohorts.runs.choices import RunKind
from disclosure.ptable import DEFAULT_THRESHOLD
from disclosure.tests.attacks.definitions import (
    FEMALE,
    MALE,
    SEXES,
    aged_at_least,
    aged_at_least_or_took,
    first_diagnosis,
    not_aged,
    not_aged_written_otherwise,
    sex_is,
)
from disclosure.tests.attacks.site import Generated, Site, Warehouse, small_ages

#: The sites use the default disclosure policy: counts under 10 hidden.
THRESHOLD = DEFAULT_THRESHOLD

#: Conditions of GiBleed with many ages held by 1-9 persons at first diagnosis (fractures, lacerations, sprains,
#: strokes, coronary arteriosclerosis, sinusitis, otitis media, concussion).
CONDITIONS = (4278672, 4113008, 317576, 381316, 4294548, 4218389, 78272, 257012, 372328, 378001)
RULES_PER_CHAIN = 24

#: Subtraction between definitions: ages per (condition, sex), and how many conditions the federated attack uses.
AGES_PER_PAIR_FAMILY = 3
FEDERATED_CONDITIONS = CONDITIONS[:4]

#: Conditions whose first diagnosis is broken down (beside those of ``CONDITIONS``) for the margins attack:
#: lacerations, fractures, urinary tract infection, sore throat, sprain of ankle.
MARGIN_CONDITIONS = (4156265, 4155034, 4152936, 4237458, 4109685, 4134304, 4059173, 4116491, 28060, 81151)

#: The drugs the tracker asks about: the 20 most common in GiBleed (vaccines, analgesics, antibiotics).
TRACKER_DRUGS = (
    40213227, 1127433, 40213160, 1713671, 19059056, 1118084, 40213296, 40213306, 1127078, 40229134,
    19078461, 19133873, 40213260, 1115171, 19133905, 1124300, 19006318, 40213201, 920300, 40236824,
)  # fmt: skip
TRACKER_CONDITIONS = CONDITIONS[:8]

#: Concepts with descendants in GiBleed's data: concussion injury of brain, traumatic brain injury, sinusitis.
VARIANT_CONDITIONS = (4001336, 4132546, 4283893)


@dataclass(frozen=True)
class Chain:
    condition: int
    base: Generated
    chain: Generated
    ages: tuple[int, ...]


@dataclass(frozen=True)
class Pair:
    larger: Generated
    smaller: Generated


@dataclass(frozen=True)
class Tracker:
    condition: int
    base: Generated
    age: int
    drugs: tuple[int, ...]
    generated: Generated


@dataclass(frozen=True)
class Variants:
    condition: int
    bases: tuple[Generated, ...]  # asked, asked again, concept set listed
    chains: tuple[Generated, ...]  # asked, rules reversed, written otherwise


def base_of(site: Site, condition: int) -> Generated:
    return site.generate(f"first {condition}", first_diagnosis(condition), kind=RunKind.DEMOGRAPHICS)


def chain_of(site: Site, warehouse: Warehouse, condition: int) -> Chain:
    base = base_of(site, condition)
    ages = tuple(small_ages(warehouse.ages(base), threshold=THRESHOLD, most=RULES_PER_CHAIN))
    chain = site.generate(
        f"first {condition}, not aged {','.join(map(str, ages))}",
        first_diagnosis(condition, [not_aged(age) for age in ages]),
    )
    return Chain(condition, base, chain, ages)


def pairs_of(site: Site, warehouse: Warehouse, condition: int, sex: int) -> list[Pair]:
    larger = site.generate(f"first {condition}, {SEXES[sex]}", first_diagnosis(condition, [sex_is(sex)]))
    ages = small_ages(warehouse.ages(larger), threshold=THRESHOLD, most=AGES_PER_PAIR_FAMILY)
    return [
        Pair(
            larger,
            site.generate(
                f"first {condition}, {SEXES[sex]}, not aged {age}",
                first_diagnosis(condition, [sex_is(sex), not_aged(age)]),
            ),
        )
        for age in ages
    ]


def all_pairs(site: Site, warehouse: Warehouse, conditions: tuple[int, ...]) -> list[Pair]:
    return [
        pair for condition in conditions for sex in (MALE, FEMALE) for pair in pairs_of(site, warehouse, condition, sex)
    ]


def youngest_group_age(ages: Counter[int], *, threshold: int) -> int:
    """The age under which a condition's youngest persons are a small group (1 to ``threshold`` - 1 persons):
    the largest such age."""
    found, below = None, 0
    for age in sorted(ages):
        if 0 < below < threshold:
            found = age
        below += ages[age]
        if below >= threshold:
            break
    assert found is not None, "no small group of youngest persons"
    return found


def tracker_of(site: Site, warehouse: Warehouse, condition: int) -> Tracker:
    base = base_of(site, condition)
    age = youngest_group_age(warehouse.ages(base), threshold=THRESHOLD)
    rules = [aged_at_least(age)] + [aged_at_least_or_took(age, i) for i in range(1, len(TRACKER_DRUGS) + 1)]
    generated = site.generate(
        f"first {condition}, tracker of those under {age}", first_diagnosis(condition, rules, drugs=TRACKER_DRUGS)
    )
    return Tracker(condition, base, age, TRACKER_DRUGS, generated)


def variants_of(site: Site, warehouse: Warehouse, condition: int) -> Variants:
    chain = chain_of(site, warehouse, condition)
    listed = warehouse.descendants(condition)
    assert len(listed) > 1, f"{condition} has no descendants to list"
    demographics = RunKind.DEMOGRAPHICS
    bases = (
        chain.base,
        site.generate(f"first {condition}, asked again", first_diagnosis(condition), kind=demographics),
        site.generate(f"first {condition}, listed", first_diagnosis(condition, listed=listed), kind=demographics),
    )
    ages = chain.ages
    chains = (
        chain.chain,
        site.generate(
            f"first {condition}, not aged {','.join(map(str, reversed(ages)))}",
            first_diagnosis(condition, [not_aged(age) for age in reversed(ages)]),
        ),
        site.generate(
            f"first {condition}, listed, younger or older than {','.join(map(str, ages))}",
            first_diagnosis(condition, [not_aged_written_otherwise(age) for age in ages], listed=listed),
        ),
    )
    return Variants(condition, bases, chains)
