"""The fixed categories of a released breakdown, and a site's demographics summed into them.

A site reports the buckets its cohort has members in (``cohorts.runs.demographics``). Released as such, the list
itself is a profile: which age groups, sexes, races and years occur. So what is released lists every category of a
fixed scheme, in a fixed order, whether or not it has members (``disclosure.rules.protect_breakdown`` then shows an
empty one like any hidden cell):

- age group: ten-year bands from 0-9 to the open top band (the bands the sites compute);
- sex: the OMOP gender concepts the portal shows, male (8507) and female (8532), and everything else as one
  "other or unknown" bucket (concept 0);
- race: the OMOP race concepts of the synthetic warehouse and of GiBleed (White 8527, Black or African American
  8516, Asian 8515), and everything else as "other or unknown";
- ethnicity: Hispanic or Latino (38003563), Not Hispanic or Latino (38003564), and "other or unknown";
- year of the index date: five-year periods from ``INDEX_YEAR_FIRST`` to ``INDEX_YEAR_LAST``, with an open period
  before and after. The years a site's data covers are not known to the portal, and a scheme that followed the
  cohort's own years would tell them; a fixed range clips the cohort's years into it instead.

The labels are fixed too (not the site's vocabulary names), so that two sites' buckets merge by position.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cohorts.runs.demographics import AGE_BAND_YEARS
from disclosure.rules import Cell, cell_sum

#: The top age band is open: "90+" with ten-year bands (the sites compute the same bands).
TOP_AGE_BAND = 9
AGE_GROUPS: tuple[str, ...] = tuple(
    f"{band * AGE_BAND_YEARS}+" if band == TOP_AGE_BAND else f"{band * AGE_BAND_YEARS}-{band * AGE_BAND_YEARS + 9}"
    for band in range(TOP_AGE_BAND + 1)
)

#: The bucket of every concept a fixed list does not name.
OTHER = 0
OTHER_NAME = "Other or unknown"

GENDERS: tuple[tuple[int, str], ...] = ((8507, "Male"), (8532, "Female"), (OTHER, OTHER_NAME))
RACES: tuple[tuple[int, str], ...] = (
    (8527, "White"),
    (8516, "Black or African American"),
    (8515, "Asian"),
    (OTHER, OTHER_NAME),
)
ETHNICITIES: tuple[tuple[int, str], ...] = (
    (38003563, "Hispanic or Latino"),
    (38003564, "Not Hispanic or Latino"),
    (OTHER, OTHER_NAME),
)

INDEX_YEAR_FIRST = 1980
INDEX_YEAR_LAST = 2029
INDEX_YEAR_SPAN = 5
INDEX_YEARS: tuple[str, ...] = (
    f"<{INDEX_YEAR_FIRST}",
    *(f"{start}-{start + INDEX_YEAR_SPAN - 1}" for start in range(INDEX_YEAR_FIRST, INDEX_YEAR_LAST, INDEX_YEAR_SPAN)),
    f"{INDEX_YEAR_LAST + 1}+",
)

#: A bucket as released: its labels (without the count) and its cell: the persons it holds and their cell key
#: (the sum of the site's cells summed into it, ``disclosure.rules.cell_sum``; None when a site cell had none).
Bucket = tuple[dict[str, Any], Cell]


class _Summed:
    """Cells summed into one bucket: counts add, cell keys add modulo 256."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[Cell] = []

    def add(self, site_cell: dict[str, Any]) -> None:
        key = site_cell.get("key")
        self.parts.append((int(site_cell["persons"]), None if key is None else int(key)))

    def cell(self) -> Cell:
        return cell_sum(self.parts) if self.parts else (0, 0)


def _age_band(age_group: str) -> int:
    """The band of a site's age group label ("40-49", "90+"): its lower bound, in bands, clipped to the top."""
    lower = int(str(age_group).split("-")[0].rstrip("+"))
    return min(max(lower, 0) // AGE_BAND_YEARS, TOP_AGE_BAND)


def _year_bucket(year: int) -> int:
    if year < INDEX_YEAR_FIRST:
        return 0
    if year > INDEX_YEAR_LAST:
        return len(INDEX_YEARS) - 1
    return 1 + (year - INDEX_YEAR_FIRST) // INDEX_YEAR_SPAN


def _concept_buckets(cells: Iterable[dict[str, Any]], fixed: tuple[tuple[int, str], ...]) -> list[Bucket]:
    named = {concept_id for concept_id, _ in fixed}
    persons = {concept_id: _Summed() for concept_id in named}
    for cell in cells:
        concept_id = int(cell.get("concept_id") or 0)
        persons[concept_id if concept_id in named else OTHER].add(cell)
    return [({"concept_id": concept_id, "name": name}, persons[concept_id].cell()) for concept_id, name in fixed]


def fixed_buckets(demographics: dict[str, Any]) -> dict[str, list[Bucket]]:
    """Each breakdown table of a site's demographics (as its worker stored them) summed into the fixed categories,
    in their fixed order: ``{"age_pyramid" | "gender" | "race" | "ethnicity" | "index_year": [(labels, cell)]}``.
    The age pyramid lists every age group by every sex (age groups first)."""
    genders = {concept_id for concept_id, _ in GENDERS}
    pyramid = {(band, concept_id): _Summed() for band in range(len(AGE_GROUPS)) for concept_id, _ in GENDERS}
    for cell in demographics.get("age_pyramid", []):
        concept_id = int(cell.get("gender_concept_id") or 0)
        pyramid[_age_band(cell["age_group"]), concept_id if concept_id in genders else OTHER].add(cell)
    years = [_Summed() for _ in INDEX_YEARS]
    for cell in demographics.get("index_year", []):
        years[_year_bucket(int(cell["year"]))].add(cell)
    return {
        "age_pyramid": [
            (
                {"age_group": AGE_GROUPS[band], "gender_concept_id": concept_id, "gender": name},
                pyramid[band, concept_id].cell(),
            )
            for band in range(len(AGE_GROUPS))
            for concept_id, name in GENDERS
        ],
        "gender": _concept_buckets(demographics.get("gender", []), GENDERS),
        "race": _concept_buckets(demographics.get("race", []), RACES),
        "ethnicity": _concept_buckets(demographics.get("ethnicity", []), ETHNICITIES),
        "index_year": [({"year": label}, summed.cell()) for label, summed in zip(INDEX_YEARS, years, strict=True)],
    }
