"""Reads of a cohort comparison as its requester may see it: who may see it, its protected result, its CSV.

Access: a comparison is its requester's own. They see it only while they may view and run every one of its
definitions, and only on the sites where they may still count every one of them today
(``count_rights_for_user``, the rule a count's result follows); with no such site it is answered 404, as for a
comparison that does not exist (and so for anybody else's).

Disclosure: each site's union, cohort totals and combinations are protected by the site's own rule for the
reader (``disclosure.overlaps.protect_overlap``: the combinations as a breakdown of the union, checked against
every shown total). Merged across sites, each number is a federated one (``protect_federated``): released as a
number only when every site shows its part, else "visible sites + <10", where a site's part hidden by its own
suppression stays hidden. A merged number is then the perturbed sum of parts every site already shows, so it adds
no equation about a hidden cell that the sites' own numbers did not give. No merged combination is shown unless
the merged union is shown and every answering site released its combinations.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Mapping
from typing import Any

from django.http import Http404

from accounts.models import User
from accounts.permissions import account_is_usable
from audit.spreadsheet_guard import spreadsheet_safe_cell
from cohorts.runs.models import Comparison, ComparisonCohort, ComparisonRun
from cohorts.runs.overlap import all_masks
from cohorts.runs.selectors import _definitions_counted_by, count_rights_for_user
from disclosure.overlaps import protect_overlap
from disclosure.rules import Cell, PrivacyRule, ProtectedCount, protect_federated, strictest
from disclosure.selectors import exact_grants_for, rule_for
from jobs.choices import ACTIVE_STATES, JobState

#: Letters naming the compared cohorts in labels, the chart and the CSV (cohort 1 is A, its bit 1).
LETTERS = "ABCD"


#: A site's answer as the merge needs it: its raw result, its rule, its union and cells as the site shows them.
_Answer = tuple[dict[str, Any], PrivacyRule, ProtectedCount, list[ProtectedCount] | None]


def combination_label(mask: int, cohorts: int) -> str:
    """ "A ∩ B": the persons in exactly these cohorts (and in none of the others)."""
    return " ∩ ".join(LETTERS[i] for i in range(cohorts) if mask & (1 << i))


def comparison_sites_for_user(user: User, comparison: Comparison) -> frozenset[int]:
    """The sources of ``comparison`` the user may see now (see the module): empty for anyone but its requester."""
    if comparison.requested_by_id != user.pk or not account_is_usable(user):
        return frozenset()
    definitions = [c.version.definition for c in comparison.ordered_cohorts()]
    counted = set(_definitions_counted_by(user).filter(pk__in=[d.pk for d in definitions]).values_list("pk", flat=True))
    if len(counted) != len(definitions):
        return frozenset()
    rights = count_rights_for_user(user)
    return frozenset(
        source_id
        for source_id in comparison.runs.values_list("source_id", flat=True)
        if all(rights.allows(d.project_id, source_id) for d in definitions)
    )


def comparison_get_for_user(user: User, pk: int) -> Comparison:
    """The comparison ``pk`` if the user may see at least one of its sites now; Http404 otherwise."""
    comparison = Comparison.objects.filter(pk=pk).first() if account_is_usable(user) else None
    if comparison is None or not comparison_sites_for_user(user, comparison):
        raise Http404("No such comparison.")
    return comparison


def _grants(user: User, cohorts: list[ComparisonCohort]) -> dict[int, int]:
    """Sites where a grant makes the reader's counts exact for every compared definition (a grant is a project's:
    every definition's project must have one there); elsewhere counts are perturbed."""
    per_definition = [exact_grants_for(user=user, project_id=c.version.definition.project_id) for c in cohorts]
    common = set(per_definition[0]).intersection(*per_definition[1:]) if per_definition else set()
    return {source_id: per_definition[0][source_id] for source_id in common}


def _cell(item: Mapping[str, Any]) -> Cell:
    return int(item.get("persons", 0)), (None if item.get("key") is None else int(item["key"]))


def _percent(part: ProtectedCount | dict[str, Any], whole: ProtectedCount | dict[str, Any]) -> float | None:
    value = part["value"] if isinstance(part, dict) else part.value
    total = whole["value"] if isinstance(whole, dict) else whole.value
    if value is None or not total:
        return None
    return round(100.0 * value / total, 1)


def comparison_result(
    *, comparison: Comparison, role: str, sites: Collection[int] | None = None, grants: Mapping[int, int] | None = None
) -> dict[str, Any]:
    """The comparison's result as a reader of ``role`` may see it over the sources ``sites`` only (None: all)."""
    grants = grants or {}
    cohorts = comparison.ordered_cohorts()
    k = len(cohorts)
    masks = all_masks(k)
    runs = [
        run
        for run in comparison.runs.select_related("source").order_by("source__key")
        if sites is None or run.source_id in sites
    ]
    site_rows: list[dict[str, Any]] = []
    answered: list[_Answer] = []
    for run in runs:
        rule = rule_for(source=run.source, role=role, grant=grants.get(run.source_id))
        site: dict[str, Any] = {
            "run": run.pk,
            "source": run.source.key,
            "site": run.source.name,
            "state": run.state,
            "progress": {"step": run.progress_step, "total": run.progress_total, "label": run.progress_label},
            "error": run.error.splitlines()[0] if run.error else "",
            "privacy": rule.as_dict(),
        }
        if run.state == JobState.SUCCEEDED and run.result is not None:
            result = run.result
            cells = {int(item["mask"]): _cell(item) for item in result["combinations"]}
            union, totals, protected = protect_overlap(
                _cell(result["union"]),
                [cells.get(mask, (0, 0)) for mask in masks],
                masks,
                [_cell(item) for item in result["cohorts"]],
                rule,
            )
            site["union"] = union.as_dict()
            site["cohorts"] = [total.as_dict() for total in totals]
            site["breakdown_withheld"] = protected is None
            site["combinations"] = (
                []
                if protected is None
                else [
                    {"mask": mask, **shown.as_dict(), "percent": _percent(shown, union)}
                    for mask, shown in zip(masks, protected, strict=True)
                ]
            )
            answered.append((result, rule, union, protected))
        site_rows.append(site)
    states = {run.state for run in runs}
    finished = all(run.is_final for run in runs)
    out: dict[str, Any] = {
        "comparison": comparison.pk,
        "cohorts": [
            {
                "letter": LETTERS[c.position],
                "position": c.position,
                "definition": c.version.definition_id,
                "name": c.version.definition.name,
                "version": c.version.number,
            }
            for c in cohorts
        ],
        "combinations": [
            {"mask": mask, "label": combination_label(mask, k), "members": [i for i in range(k) if mask & (1 << i)]}
            for mask in masks
        ],
        "finished": finished,
        "state": "finished" if finished else ("running" if JobState.RUNNING in states else "queued"),
        "cancelled": comparison.cancelled_at is not None,
        "sites": site_rows,
        "sites_answered": len(answered),
    }
    if len(answered) >= 2:
        out["merged"] = _merged(answered, masks, k)
    return out


def _merged(answered: list[_Answer], masks: list[int], k: int) -> dict[str, Any]:
    """Every site's numbers added up, each as a federated number (see the module). A site's union withheld by its
    own suppression stays out of the merged union's number, like a small one."""
    rules = [rule for _, rule, _, _ in answered]
    union, _ = protect_federated(
        [_cell(result["union"]) for result, _, _, _ in answered], rules, [union for _, _, union, _ in answered]
    )
    totals = [
        protect_federated([_cell(result["cohorts"][i]) for result, _, _, _ in answered], rules)[0].as_dict()
        for i in range(k)
    ]
    merged: dict[str, Any] = {
        "union": union.as_dict(),
        "cohorts": totals,
        "privacy": strictest(rules).as_dict(),
        "breakdown_withheld": union.hidden or any(protected is None for _, _, _, protected in answered),
        "combinations": [],
    }
    if merged["breakdown_withheld"]:
        return merged
    for index, mask in enumerate(masks):
        cells = []
        for result, _, _, _ in answered:
            by_mask = {int(item["mask"]): _cell(item) for item in result["combinations"]}
            cells.append(by_mask.get(mask, (0, 0)))
        parts = [protected[index] for _, _, _, protected in answered if protected is not None]
        federated, _ = protect_federated(cells, rules, parts)
        shown = federated.as_dict()
        merged["combinations"].append({"mask": mask, **shown, "percent": _percent(shown, merged["union"])})
    return merged


def comparison_result_for_user(user: User, comparison: Comparison) -> dict[str, Any]:
    """The result of ``comparison`` as ``user`` may see it now (their role's rules, their grants, their sites)."""
    sites = comparison_sites_for_user(user, comparison)
    if not sites:
        raise Http404("No such comparison.")
    grants = _grants(user, comparison.ordered_cohorts())
    result = comparison_result(comparison=comparison, role=user.role, sites=sites, grants=grants)
    result["can_cancel"] = not (result["finished"] or result["cancelled"])
    return result


#: The most comparisons the list shows (newest first).
LISTED_COMPARISONS = 100


def comparisons_for_user(user: User) -> list[dict[str, Any]]:
    """The user's own comparisons they may still see (the rule of ``comparison_sites_for_user``), newest first:
    each with its cohorts (letter and definition name), its sites' keys and a one-word state. A fixed number of
    queries: the user's rights and counted definitions are read once for the whole list."""
    if not account_is_usable(user):
        return []
    comparisons = list(
        Comparison.objects.filter(requested_by=user)
        .prefetch_related("cohorts__version__definition", "runs__source")
        .order_by("-created_at", "-id")[:LISTED_COMPARISONS]
    )
    definition_ids = {c.version.definition_id for comparison in comparisons for c in comparison.cohorts.all()}
    counted = set(_definitions_counted_by(user).filter(pk__in=definition_ids).values_list("pk", flat=True))
    rights = count_rights_for_user(user)
    rows = []
    for comparison in comparisons:
        cohorts = sorted(comparison.cohorts.all(), key=lambda c: c.position)
        definitions = [c.version.definition for c in cohorts]
        if any(d.pk not in counted for d in definitions):
            continue
        runs = [
            run for run in comparison.runs.all() if all(rights.allows(d.project_id, run.source_id) for d in definitions)
        ]
        if not runs:
            continue
        states = {run.state for run in runs}
        if comparison.cancelled_at is not None:
            state = "cancelled"
        elif states & set(ACTIVE_STATES):
            state = "running" if JobState.RUNNING in states else "queued"
        else:
            state = "finished" if JobState.SUCCEEDED in states else "failed"
        rows.append(
            {
                "comparison": comparison,
                "cohorts": [(LETTERS[c.position], c.version.definition.name) for c in cohorts],
                "sites": sorted(run.source.key for run in runs),
                "state": state,
            }
        )
    return rows


def comparison_active(comparison: Comparison) -> bool:
    return ComparisonRun.objects.filter(comparison=comparison, state__in=ACTIVE_STATES).exists()


#: The "site" column of the merged rows in the CSV.
MERGED_SOURCE = "all sites"


def _value(shown: Mapping[str, Any]) -> int | str:
    """A released count as a number; a hidden or partial one as its text ("<10", "60 + <10"), never a number."""
    return int(shown["value"]) if shown.get("value") is not None else str(shown["display"])


def comparison_csv(result: dict[str, Any]) -> str:
    """The protected result as CSV: per site and merged, each cohort's total, the union, then every combination
    with a 1/0 column per cohort; counts as numbers, hidden ones as their text, % of the union as a number."""
    letters = [c["letter"] for c in result["cohorts"]]
    header = ["site", "row", "combination", *letters, "persons", "percent of union", "privacy rule"]
    rows: list[list[Any]] = []
    blocks = [(site["source"], site, site["privacy"]["description"]) for site in result["sites"]]
    if "merged" in result:
        merged = result["merged"]
        blocks.append((MERGED_SOURCE, merged, f"{merged['privacy']['description']} (strictest of the sites' rules)"))
    labels = {c["mask"]: (c["label"], c["members"]) for c in result["combinations"]}
    for source, block, rule in blocks:
        if "union" not in block:
            rows.append([source, "state", "", *[""] * len(letters), "", "", block.get("state", "")])
            continue
        for cohort, total in zip(result["cohorts"], block["cohorts"], strict=True):
            flags = [1 if c["letter"] == cohort["letter"] else "" for c in result["cohorts"]]
            rows.append([source, "cohort", f"{cohort['letter']}: {cohort['name']}", *flags, _value(total), "", rule])
        rows.append([source, "union", " ∪ ".join(letters), *[""] * len(letters), _value(block["union"]), 100.0, rule])
        if block["breakdown_withheld"]:
            rows.append([source, "combination", "", *[""] * len(letters), "", "", f"No combinations shown: {rule}"])
        for item in block["combinations"]:
            label, members = labels[item["mask"]]
            flags = [1 if i in members else 0 for i in range(len(letters))]
            percent = item["percent"] if item["percent"] is not None else ""
            rows.append([source, "combination", label, *flags, _value(item), percent, rule])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([spreadsheet_safe_cell(v) for v in row])
    return buffer.getvalue()
