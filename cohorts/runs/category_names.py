"""The names of the fixed demographic categories (``cohorts.runs.breakdowns``) in the reader's language, by concept
id: 8507 reads 남성 in Korean whatever a site's vocabulary calls it (MALE, Male, …).

Only pages get them (``selectors.run_request_status_for_user``): the API, the CSV downloads and the stored results
keep the English names of ``breakdowns``, which scripts and spreadsheets may match on.
"""

from __future__ import annotations

from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from cohorts.runs.breakdowns import OTHER

NAMES: dict[int, Promise] = {
    8507: pgettext_lazy("gender", "Male"),
    8532: pgettext_lazy("gender", "Female"),
    8527: _("White"),
    8516: _("Black or African American"),
    8515: _("Asian"),
    38003563: _("Hispanic or Latino"),
    38003564: _("Not Hispanic or Latino"),
    OTHER: _("Other or unknown"),
}
#: The breakdown tables whose rows are concepts named in ``name``; the age pyramid names its sex in ``gender``.
CONCEPT_TABLES = ("gender", "race", "ethnicity")


def _name(concept_id: Any, fallback: Any) -> Any:
    name = NAMES.get(int(concept_id or 0))
    return fallback if name is None else str(name)


def demographics_with_names_translated(demographics: dict[str, Any]) -> dict[str, Any]:
    """A copy of released demographics whose fixed categories carry their names in the active language; the
    counts, concept ids and everything else are untouched (top concepts keep their vocabulary names: data)."""
    out = dict(demographics)
    if isinstance(out.get("age_pyramid"), list):
        out["age_pyramid"] = [
            {**cell, "gender": _name(cell.get("gender_concept_id"), cell.get("gender"))} for cell in out["age_pyramid"]
        ]
    for table in CONCEPT_TABLES:
        if isinstance(out.get(table), list):
            out[table] = [{**cell, "name": _name(cell.get("concept_id"), cell.get("name"))} for cell in out[table]]
    return out


def result_with_names_translated(result: dict[str, Any]) -> dict[str, Any]:
    """A run result (``selectors.run_request_result``) with every site's and the merged demographics' category
    names in the active language."""
    out = dict(result)
    if isinstance(out.get("sites"), list):
        out["sites"] = [
            {**site, "demographics": demographics_with_names_translated(site["demographics"])}
            if isinstance(site.get("demographics"), dict)
            else site
            for site in out["sites"]
        ]
    if isinstance(out.get("merged_demographics"), dict):
        out["merged_demographics"] = demographics_with_names_translated(out["merged_demographics"])
    return out
