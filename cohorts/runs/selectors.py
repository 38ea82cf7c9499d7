"""Reads of counts as a user may see them: a request's result under each site's privacy rule, its tables
and CSV, the latest counts of definitions, the health of the sites."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from accounts.permissions import (
    account_is_usable,
    filter_by_permission,
    is_admin,
    projects_for_user,
    user_can,
)
from audit.spreadsheet_guard import spreadsheet_safe_cell
from cohorts.definitions.models import CohortDefinition
from cohorts.definitions.selectors import RUN, VIEW
from cohorts.runs.attrition import CSV_HEADER as ATTRITION_CSV_HEADER
from cohorts.runs.attrition import attrition_csv_rows, merged_attrition, protected_attrition
from cohorts.runs.breakdowns import fixed_buckets
from cohorts.runs.category_names import result_with_names_translated
from cohorts.runs.choices import RunKind
from cohorts.runs.models import CohortRun, CountStoreSync, RunRequest
from cohorts.runs.stores import can_sync_count_store
from disclosure.rules import (
    Cell,
    FederatedTotal,
    PrivacyRule,
    ProtectedCount,
    protect,
    protect_breakdown,
    protect_cell,
    protect_federated,
    strictest,
)
from disclosure.selectors import exact_grants_for, exact_grants_for_user, rule_for
from jobs.choices import ACTIVE_STATES, JobState
from warehouse.choices import EngineKind
from warehouse.models import Source


def _run_state(run: CohortRun) -> dict[str, Any]:
    return {
        "run": run.pk,
        "source": run.source.key,
        "site": run.source.name,
        "state": run.state,
        "progress": {"step": run.progress_step, "total": run.progress_total, "label": run.progress_label},
        "queued_at": run.queued_at.isoformat() if run.queued_at else None,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "database_seconds": run.database_seconds,
        # The traceback stays for admins in the run record; users see the first line.
        "error": run.error.splitlines()[0] if run.error else "",
        # What answered (the site's count store or its database) and, when the store did not, why.
        "engine": (run.result or {}).get("engine", ""),
        "engine_note": (run.result or {}).get("engine_note", ""),
    }


def _key(value: Any) -> int | None:
    return None if value is None else int(value)


def _protected_steps(steps: list[dict[str, Any]], rule: PrivacyRule) -> list[dict[str, Any]]:
    return [{"name": s["name"], **protect(int(s["persons"]), rule, _key(s.get("key"))).as_dict()} for s in steps]


def _total_cell(result: dict[str, Any]) -> Cell:
    """The cell of a site's total (a run's result, or its demographics): persons and their cell key."""
    return int(result.get("persons", 0)), _key(result.get("persons_key"))


#: What a site or the merged result says when its breakdown is withheld (CSV; the pages word it themselves).
BREAKDOWN_WITHHELD = "No breakdown: the cohort's count is under the site's threshold"
MERGED_BREAKDOWN_WITHHELD = "No breakdown of all sites together: a site's count is under its threshold"

#: A released bucket: its labels, its true cell (count and cell key), and the count as it may be shown.
_Cell = tuple[dict[str, Any], Cell, ProtectedCount]


def _breakdown_cells(demo: dict[str, Any], rule: PrivacyRule) -> dict[str, list[_Cell]] | None:
    """A site's demographics in the fixed categories (``cohorts.runs.breakdowns``), each table protected under
    the site's total (``disclosure.rules.protect_breakdown``); None when the total is hidden: no breakdown."""
    total = _total_cell(demo)
    out: dict[str, list[_Cell]] = {}
    for key, buckets in fixed_buckets(demo).items():
        protected = protect_breakdown(total, [cell for _, cell in buckets], rule)
        if protected is None:
            return None
        out[key] = [(labels, cell, p) for (labels, cell), p in zip(buckets, protected, strict=True)]
    return out


def _shown_top(demo: dict[str, Any], rule: PrivacyRule) -> dict[str, list[_Cell]]:
    """The top concepts at index whose count is shown, in the site's order. The list itself tells which concepts
    occur, so a concept whose count is hidden is left out rather than shown as "<10". Top concepts are not a
    partition of the total (a person has many), so each is protected on its own."""
    out: dict[str, list[_Cell]] = {}
    for label, rows in demo.get("top_at_index", {}).items():
        cells = [
            (
                {k: v for k, v in row.items() if k not in ("persons", "key")},
                (int(row["persons"]), _key(row.get("key"))),
                protect(int(row["persons"]), rule, _key(row.get("key"))),
            )
            for row in rows
        ]
        out[label] = [cell for cell in cells if not cell[2].hidden and cell[1][0] > 0]
    return out


#: The breakdowns that have the site's population beside them (its age groups by sex, and sex).
POPULATION_TABLES = ("age_pyramid", "gender")


@dataclass(frozen=True)
class _Population:
    """A site's population as it may be released: its total (shown: a hidden total releases no population at
    all), its buckets of ``POPULATION_TABLES`` protected under it, and each listed concept's cell and count."""

    total: Cell
    shown_total: ProtectedCount
    buckets: dict[str, list[tuple[Cell, ProtectedCount]]]
    top: dict[str, dict[int, tuple[Cell, ProtectedCount]]]


def _population(demo: dict[str, Any], rule: PrivacyRule) -> _Population | None:
    """The site's population of a demographics result (``cohorts.runs.demographics``), protected by the site's
    rule like the cohort's figures: the total and each concept on its own, the buckets as a breakdown of the
    total (fixed categories, complementary suppression). None for results stored before the sites computed it,
    and when the population's total is hidden."""
    raw = demo.get("population")
    if not raw:
        return None
    total = _total_cell(raw)
    shown_total = protect_cell(total, rule)
    if shown_total.hidden:
        return None
    buckets: dict[str, list[tuple[Cell, ProtectedCount]]] = {}
    fixed = fixed_buckets(raw)
    for key in POPULATION_TABLES:
        cells = [cell for _, cell in fixed[key]]
        protected = protect_breakdown(total, cells, rule)
        if protected is None:
            return None
        buckets[key] = list(zip(cells, protected, strict=True))
    top = {
        label: {
            int(row["concept_id"]): (
                (int(row["persons"]), _key(row.get("key"))),
                protect(int(row["persons"]), rule, _key(row.get("key"))),
            )
            for row in rows
        }
        for label, rows in raw.get("top", {}).items()
    }
    return _Population(total, shown_total, buckets, top)


def _released_value(persons: dict[str, Any]) -> int | None:
    """The number of a released count (``ProtectedCount``/``FederatedTotal`` as a dict), None when any part of it
    is hidden: a percentage or a difference is computed from released numbers only, never around a hidden one."""
    if persons.get("hidden") or persons.get("value") is None:
        return None
    return int(persons["value"])


def _share(persons: dict[str, Any], total: dict[str, Any] | None) -> float | None:
    """``persons`` as a share (0 to 1) of ``total``, both as released; None when either is hidden or the total is
    0. Perturbation may make a released part exceed its released total: the share is capped at 1."""
    part, whole = _released_value(persons), _released_value(total) if total is not None else None
    if part is None or not whole:
        return None
    return min(part / whole, 1.0)


def standardized_difference(p1: float, p2: float) -> float:
    """The standardized difference of two proportions (binary SMD): (p1 - p2) / sqrt((p1(1-p1) + p2(1-p2)) / 2),
    0 when both are 0 or both are 1 (no spread, no difference)."""
    spread = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 2)
    if spread == 0:
        return 0.0 if p1 == p2 else math.copysign(math.inf, p1 - p2)
    return (p1 - p2) / spread


def _compared(
    row: dict[str, Any],
    total: dict[str, Any],
    population: dict[str, Any] | None = None,
    population_total: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A released row with its percentage of the cohort and, when the population is given, the population's
    count and percentage and the standardized difference: every figure from released numbers only (none where a
    number it needs is hidden)."""
    share = _share(row["persons"], total)
    row["percent"] = None if share is None else round(100 * share, 1)
    if population is not None:
        population_share = _share(population, population_total)
        row["population"] = population
        row["population_percent"] = None if population_share is None else round(100 * population_share, 1)
        smd = None
        if share is not None and population_share is not None:
            difference = standardized_difference(share, population_share)
            smd = round(difference, 2) if math.isfinite(difference) else None
        row["smd"] = smd
    return row


def _protected_demographics(demo: dict[str, Any], rule: PrivacyRule) -> dict[str, Any] | None:
    """A site's demographics as they may be released; None when its total is hidden (no breakdown at all). Each
    row has its percentage of the cohort; the age groups, sexes and top concepts have the site's population beside
    them when the result has it (``_population``): its count, percentage and the standardized difference."""
    cells = _breakdown_cells(demo, rule)
    if cells is None:
        return None
    total = protect_cell(_total_cell(demo), rule).as_dict()
    population = _population(demo, rule)
    population_total = population.shown_total.as_dict() if population is not None else None
    out: dict[str, Any] = {"persons": total}
    for key, rows in cells.items():
        compared = population.buckets.get(key) if population is not None else None
        out[key] = [
            _compared(
                {**labels, "persons": shown.as_dict()},
                total,
                compared[i][1].as_dict() if compared is not None else None,
                population_total,
            )
            for i, (labels, _, shown) in enumerate(rows)
        ]
    out["top_at_index"] = {}
    for label, rows in _shown_top(demo, rule).items():
        concepts = population.top.get(label, {}) if population is not None else {}
        out["top_at_index"][label] = [
            _compared(
                {**concept, "persons": shown.as_dict()},
                total,
                concepts[int(concept["concept_id"])][1].as_dict() if int(concept["concept_id"]) in concepts else None,
                population_total,
            )
            for concept, _, shown in rows
        ]
    out["index_lookback_days"] = demo.get("index_lookback_days")
    if population is not None:
        out["population"] = _population_summary(demo["population"], population_total)
    return out


def _population_summary(raw: dict[str, Any], persons: dict[str, Any] | None) -> dict[str, Any]:
    """What a released result says of the population it compares with: its released total and its definition."""
    return {
        "persons": persons,
        "definition": raw.get("definition", ""),
        "window_days": raw.get("window_days"),
    }


def merged_demographics(parts: list[tuple[dict[str, Any], PrivacyRule]]) -> dict[str, Any] | None:
    """The demographics of several sites summed bucket by bucket, protected so that no hidden value returns; None
    when the merged total is hidden (a site's total is), as no breakdown is released without a shown total.

    Each site's buckets are first protected as that site shows them (its rule, complementary suppression in its
    breakdown); a bucket hidden at a site stays out of the merged number, which is then "visible sites + <10". So
    the merged bucket minus the other sites' shown buckets is the hidden site's shown value — never its hidden one
    (disclosure.rules.protect_federated). The buckets are the fixed categories at every site, so a "+ <10" says
    nothing of which categories a site has members in.
    """
    rules = [rule for _, rule in parts]
    merged_rule = strictest(rules)
    persons, _ = protect_federated([_total_cell(demo) for demo, _ in parts], rules)
    if persons.hidden:
        return None
    site_cells = [_breakdown_cells(demo, rule) for demo, rule in parts]
    shown_cells = [cells for cells in site_cells if cells is not None]
    if len(shown_cells) != len(parts):
        return None
    total = persons.as_dict()
    out: dict[str, Any] = {"persons": total}
    # The population beside the merged cohort is that of the same sites, merged the same way; left out unless
    # every site released its own (results stored before the sites computed it have none).
    populations = [_population(demo, rule) for demo, rule in parts]
    population_total: dict[str, Any] | None = None
    if all(p is not None for p in populations):
        merged_population, _ = protect_federated(
            [p.total for p in populations if p], rules, [p.shown_total for p in populations if p]
        )
        population_total = None if merged_population.hidden else merged_population.as_dict()
    site_populations = [p for p in populations if p is not None] if population_total is not None else []
    for key in ("age_pyramid", "gender", "race", "ethnicity", "index_year"):
        rows = []
        for i, bucket in enumerate(zip(*(cells[key] for cells in shown_cells), strict=True)):
            federated, _ = protect_federated([cell for _, cell, _ in bucket], rules, [shown for _, _, shown in bucket])
            population = None
            if site_populations and key in POPULATION_TABLES:
                site_buckets = [p.buckets[key][i] for p in site_populations]
                population = protect_federated(
                    [cell for cell, _ in site_buckets], rules, [shown for _, shown in site_buckets]
                )[0].as_dict()
            rows.append(
                _compared({**bucket[0][0], "persons": federated.as_dict()}, total, population, population_total)
            )
        out[key] = rows
    out["top_at_index"] = {}
    tops = [_shown_top(demo, rule) for demo, rule in parts]
    for label in sorted({label for top in tops for label in top}):
        names: dict[int, dict[str, Any]] = {}
        listed: list[dict[int, Cell]] = []
        for top in tops:
            own_top: dict[int, Cell] = {}
            for concept, cell_at_site, _ in top.get(label, []):
                names.setdefault(int(concept["concept_id"]), concept)
                own_top[int(concept["concept_id"])] = cell_at_site
            listed.append(own_top)
        top_rows = []
        for concept_id, concept in names.items():
            # A site lists only its top concepts whose count it shows: where this one is missing its count is
            # unknown, not zero, so the merged number covers the listing sites only and says how many it leaves
            # out.
            at = [i for i, own_top in enumerate(listed) if concept_id in own_top]
            federated, _ = protect_federated([listed[i][concept_id] for i in at], [rules[i] for i in at])
            persons_dict = federated.as_dict()
            missing = len(parts) - len(at)
            if missing:
                persons_dict.update(
                    value=None,
                    display=f"{persons_dict['display']} + {missing} × not in top",
                    partial_sites=missing,
                )
            population = None
            if not missing and site_populations and all(concept_id in p.top.get(label, {}) for p in site_populations):
                site_concepts = [p.top[label][concept_id] for p in site_populations]
                population = protect_federated(
                    [cell for cell, _ in site_concepts], rules, [shown for _, shown in site_concepts]
                )[0].as_dict()
            top_rows.append(_compared({**concept, "persons": persons_dict}, total, population, population_total))
        top_rows.sort(key=lambda row: (-(row["persons"]["lower_bound"] or 0), row.get("concept_id") or 0))
        out["top_at_index"][label] = top_rows
    out["index_lookback_days"] = parts[0][0].get("index_lookback_days")
    if population_total is not None:
        out["population"] = _population_summary(parts[0][0]["population"], population_total)
    out["privacy"] = merged_rule.as_dict()
    return out


def run_request_result(
    *,
    request: RunRequest,
    role: str,
    sites: Collection[int] | None = None,
    grants: Mapping[int, int] | None = None,
) -> dict[str, Any]:
    """The merged result of a request as a user of ``role`` may see it, over the sources ``sites`` only.

    Each site's own rule is applied to its numbers before merging; the merged total is protected with the
    strictest of the rules and, when a site's count is hidden, shown as "the visible sites + <10" — never as a
    number from which the hidden site could be recovered (disclosure.rules.protect_federated). A site that failed or was
    cancelled is shown as such; the others still answer.

    No breakdown without a shown total: a site whose count is hidden gets no per-rule counts, no attrition steps
    and no demographics (``breakdown_withheld``), and the merged demographics are left out when the merged total
    is hidden (``merged_breakdown_withheld``). Breakdowns list fixed categories (``cohorts.runs.breakdowns``).

    A source left out of ``sites`` is absent, not hidden: the total, the counts of answering sites and the merged
    demographics are computed over the shown sites alone, so nothing of a left-out site reaches the reader, not
    even through a difference. Pages and the API pass what ``run_request_sites_for_user`` allows (through
    ``run_request_result_for_user``); ``None`` (every site) is for callers that show the result to nobody in
    particular (workers, commands).

    ``grants``: the exact-count grants reaching the reader for this request's definition, by source id
    (``disclosure.selectors.exact_grants_for``); a site named there releases its counts exact, still thresholded,
    and says so ("exact by grant #…"). None (the default) perturbs every site, as for nobody in particular.
    """
    grants = grants or {}
    runs = [
        run
        for run in request.runs.select_related("source").order_by("source__key")
        if sites is None or run.source_id in sites
    ]
    sites: list[dict[str, Any]] = []
    succeeded: list[tuple[CohortRun, PrivacyRule]] = []
    for run in runs:
        rule = rule_for(source=run.source, role=role, grant=grants.get(run.source_id))
        site = _run_state(run)
        site["privacy"] = rule.as_dict()
        if run.state == JobState.SUCCEEDED and run.result is not None:
            succeeded.append((run, rule))
        sites.append(site)
    merged_rule = strictest(rule for _, rule in succeeded)
    raw_counts = [_total_cell(run.result) for run, _ in succeeded]
    total: FederatedTotal | None = None
    site_counts: list[ProtectedCount] = []
    if succeeded:
        total, site_counts = protect_federated(raw_counts, [rule for _, rule in succeeded])
    by_run = {run.pk: (run, count) for (run, _), count in zip(succeeded, site_counts, strict=True)}
    for site in sites:
        if site["run"] in by_run:
            run, protected_count = by_run[site["run"]]
            own_rule = rule_for(source=run.source, role=role, grant=grants.get(run.source_id))
            site["persons"] = protected_count.as_dict()
            released = None
            if not protected_count.hidden and "demographics" in run.result:
                released = _protected_demographics(run.result["demographics"], own_rule)
            withheld = protected_count.hidden or ("demographics" in run.result and released is None)
            site["breakdown_withheld"] = withheld
            site["inclusion_rules"] = (
                [] if withheld else _protected_steps(run.result.get("inclusion_rules", []), own_rule)
            )
            site["attrition"] = [] if withheld else _protected_steps(run.result.get("attrition", []), own_rule)
            # The attrition as ATLAS shows it (initial row, kept, lost, %, each rule alone; by person and event).
            site["attrition_table"] = None if withheld else protected_attrition(run.result, own_rule)
            if released is not None:
                site["demographics"] = released
    with_demographics = [(run.result["demographics"], rule) for run, rule in succeeded if "demographics" in run.result]
    states = {run.state for run in runs}
    finished = all(run.is_final for run in runs)
    result: dict[str, Any] = {
        "request": request.pk,
        "kind": request.kind,
        "definition": request.definition_id,
        # A count of the builder's unsaved draft has no version number.
        "version": request.version.number if request.version is not None else None,
        "draft": request.is_draft,
        "finished": finished,
        "state": "finished" if finished else ("running" if JobState.RUNNING in states else "queued"),
        "cancelled": request.cancelled_at is not None,
        "total": total.as_dict() if total is not None else None,
        "total_privacy": merged_rule.as_dict(),
        "sites_answered": len(succeeded),
        "sites": sites,
    }
    # The attrition of the shown sites together, only when every one shows its own (so the merged total is shown).
    attrition_parts = [(run.result, rule) for run, rule in succeeded]
    shown_attrition = all(not site.get("breakdown_withheld") for site in sites if site["run"] in by_run)
    merged_steps = merged_attrition(attrition_parts) if len(attrition_parts) >= 2 and shown_attrition else None
    # Withheld (and said so) only when a site's count is hidden; steps that do not line up (results stored by
    # different versions of the worker) are simply not merged.
    result["merged_attrition_withheld"] = len(attrition_parts) >= 2 and not shown_attrition
    if merged_steps is not None:
        result["merged_attrition"] = merged_steps
    merged = merged_demographics(with_demographics) if len(with_demographics) >= 2 else None
    result["merged_breakdown_withheld"] = len(with_demographics) >= 2 and merged is None
    if merged is not None:
        result["merged_demographics"] = merged
    return result


@dataclass(frozen=True)
class CountRights:
    """Where a user may count today, by the project of a definition.

    ``by_project[p]`` holds the sources a definition of project ``p`` is counted on (those of ``p`` while the
    user works in it); ``by_project[None]`` those a definition without a project is counted on (the sources of
    every running project of the user's). ``every_site``: an admin, who may count everywhere. Running a
    definition also needs ``run_cohortdefinition`` on it, checked beside these rights.
    """

    every_site: bool
    by_project: dict[int | None, frozenset[int]]

    def sites(self, project_id: int | None) -> frozenset[int] | None:
        """The sources a definition of ``project_id`` is counted on; None for every source (admins)."""
        if self.every_site:
            return None
        return self.by_project.get(project_id, frozenset())

    def allows(self, project_id: int | None, source_id: int) -> bool:
        sites = self.sites(project_id)
        return sites is None or source_id in sites


def count_rights_for_user(user: User) -> CountRights:
    """The one rule of where a user may count, read now (one query): a definition lives in a project, and is
    counted on that project's sources while the user works in the project (an approved membership of a running
    project, ``projects_for_user``). A definition without a project (imported before projects, or made by a
    command) is counted on the sources of any running project of the user — the approval each source needs is
    the project, never the definition. Admins may count on every source; unusable accounts nowhere.

    Starting a count (``sources_for_user_and_definition``) and seeing one (``run_request_sites_for_user``,
    ``run_requests_for_user``, ``latest_counts``) all read these rights, so a revoked or expired membership ends
    both at once: nothing is cached between requests.
    """
    if is_admin(user):
        return CountRights(every_site=True, by_project={})
    by_project: dict[int | None, set[int]] = {None: set()}
    if account_is_usable(user):
        pairs = Source.projects.through.objects.filter(project__in=projects_for_user(user)).values_list(
            "project_id", "source_id"
        )
        for project_id, source_id in pairs:
            by_project.setdefault(project_id, set()).add(source_id)
            by_project[None].add(source_id)
    return CountRights(every_site=False, by_project={k: frozenset(v) for k, v in by_project.items()})


def _definitions_counted_by(user: User) -> QuerySet[CohortDefinition]:
    """Definitions the user may both view and run: what seeing any of their counts needs besides the site."""
    viewable = filter_by_permission(queryset=CohortDefinition.objects.all(), user=user, codename=VIEW)
    return filter_by_permission(queryset=viewable, user=user, codename=RUN)


def _shows_a_site(rights: CountRights, **run_filter: Any) -> Q:
    """For a RunRequest queryset: the request has a run (matching ``run_filter``) on a source the user may count
    its definition on — the rights of ``count_rights_for_user``, as SQL."""
    runs = CohortRun.objects.filter(requests=OuterRef("pk"), **run_filter)
    if rights.every_site:
        return Q(Exists(runs))
    shown = Q(pk__in=[])
    for project_id, sources in rights.by_project.items():
        on_site = Exists(runs.filter(source_id__in=sources))
        if project_id is None:
            shown |= Q(on_site, definition__project__isnull=True)
        else:
            shown |= Q(on_site, definition__project_id=project_id)
    return shown


def run_request_sites_for_user(user: User, request: RunRequest) -> frozenset[int]:
    """The sources of ``request`` whose results the user may see now: they may view and run its definition, and
    may count it on that source today (``count_rights_for_user``). Every page and API answer showing a result
    goes through here: a source left out is absent from what the user sees, and a request with no source left is
    answered as missing (``run_request_get_for_user``).

    Making the request gives no right of its own: a requester whose membership ended, or whose definition was
    unshared from them, loses its results with it. A count of an unsaved draft is its requester's alone: the draft
    is what they are editing, not what the definition's readers were given.
    """
    definition = request.definition
    if request.is_draft and request.requested_by_id != user.pk:
        return frozenset()
    if not account_is_usable(user) or not _definitions_counted_by(user).filter(pk=definition.pk).exists():
        return frozenset()
    rights = count_rights_for_user(user)
    source_ids = request.runs.values_list("source_id", flat=True)
    return frozenset(source_id for source_id in source_ids if rights.allows(definition.project_id, source_id))


def run_request_get_for_user(user: User, pk: int) -> RunRequest:
    """The run request ``pk`` if the user may see at least one of its sites now (``run_request_sites_for_user``);
    Http404 otherwise — the same answer as for a request that does not exist, so walking the sequential ids
    tells a stranger nothing."""
    request = (
        RunRequest.objects.select_related("definition", "version", "requested_by").filter(pk=pk).first()
        if account_is_usable(user)
        else None
    )
    if request is None or not run_request_sites_for_user(user, request):
        raise Http404("No such count.")
    return request


def run_request_result_for_user(user: User, request: RunRequest) -> dict[str, Any]:
    """The result of ``request`` as ``user`` may see it now: their role's privacy rules, exact at the sites where
    a grant for the definition's project reaches them today (``exact_grants_for``), over the sources they may
    see only (``run_request_sites_for_user``). Http404 when none is left (access ended since the request was
    fetched)."""
    sites = run_request_sites_for_user(user, request)
    if not sites:
        raise Http404("No such count.")
    grants = exact_grants_for(user=user, project_id=request.definition.project_id)
    return run_request_result(request=request, role=user.role, sites=sites, grants=grants)


def run_request_active(request: RunRequest) -> bool:
    """Whether a site of the request is still queued or running: one indexed look-up, for the status wait."""
    return CohortRun.objects.filter(requests=request, state__in=ACTIVE_STATES).exists()


def run_request_status_for_user(user: User, request: RunRequest) -> dict[str, Any]:
    """What a page following a count shows: its result as ``user`` may see it (``run_request_result_for_user``)
    and whether they may still cancel it (their own count, not yet over)."""
    # A page shows the fixed categories' names (sex, race, ethnicity) in the reader's language; the API and CSV don't.
    result = result_with_names_translated(run_request_result_for_user(user, request))
    result["can_cancel"] = request.requested_by_id == user.pk and not (result["finished"] or result["cancelled"])
    return result


def run_requests_for_user(user: User, *, definition: CohortDefinition | None = None) -> QuerySet[RunRequest]:
    """Requests the user made that they may still see (a definition they may view and run, a source they may
    count it on today), newest first; of one definition if given. Counts of saved versions only: the builder's
    draft counts (one per pause in typing) are its scratch, followed in the builder and not listed."""
    queryset = RunRequest.objects.filter(
        _shows_a_site(count_rights_for_user(user)),
        requested_by=user,
        version__isnull=False,
        definition__in=_definitions_counted_by(user).values("pk"),
    )
    if definition is not None:
        queryset = queryset.filter(definition=definition)
    return queryset.select_related("definition", "version").prefetch_related("runs").order_by("-created_at", "-id")


def sources_for_user_and_definition(user: User, definition: CohortDefinition) -> QuerySet[Source]:
    """The sites the user may count this definition on (active and loaded ones only): the rights of
    ``count_rights_for_user``, and ``run_cohortdefinition`` on the definition — without it, no source."""
    ready = Source.objects.filter(is_active=True).exclude(fingerprint="")
    if not user_can(user, RUN, definition):
        return ready.none()
    sites = count_rights_for_user(user).sites(definition.project_id)
    if sites is None:
        return ready.order_by("key")
    return ready.filter(pk__in=sites).order_by("key")


def sources_for_user_and_definitions(user: User, definitions: Sequence[CohortDefinition]) -> QuerySet[Source]:
    """The sites the user may count every one of ``definitions`` on (a set counted together)."""
    sources = Source.objects.filter(is_active=True).exclude(fingerprint="").order_by("key")
    for definition in definitions:
        sources = sources.filter(pk__in=sources_for_user_and_definition(user, definition).values("pk"))
    return sources


#: Tables of a result that can be downloaded as CSV.
RESULT_TABLES = (
    "sites",
    "attrition",
    "age_pyramid",
    "gender",
    "race",
    "ethnicity",
    "index_year",
    "top_conditions",
    "top_drugs",
    "top_procedures",
    "top_measurements",
)

#: The columns of a characterization table after "persons": the percentage of the cohort always; the population's
#: persons and percentage and the standardized difference in the tables compared with it.
PERCENT_COLUMNS = ["% of cohort"]
COMPARED_COLUMNS = ["% of cohort", "population persons", "% of population", "standardized difference"]


#: The "site" column of merged rows in CSV tables.
MERGED_SOURCE = "all sites"


def _merged_rule(result: dict[str, Any]) -> str:
    return f"{result['merged_demographics']['privacy']['description']} (strictest of the sites' rules)"


def _cell(protected: dict[str, Any]) -> int | str:
    """A released count as a number (spreadsheets sum it; "1,001" would be text); "<10" stays "<10" and a
    partial total ("60 + <10") stays text: a hidden count is never written as a number, not even an empty one."""
    value = protected.get("value")
    return int(value) if value is not None else protected["display"]


def _withheld(site: dict[str, Any], table: str, kind: str) -> bool:
    """Whether ``table`` of the result lists ``site`` as "no breakdown": its count is hidden, and the request asked
    for that table (attrition steps come with every count, demographics with demographics requests only)."""
    return bool(site.get("breakdown_withheld")) and (table == "attrition" or kind == RunKind.DEMOGRAPHICS)


def run_result_table(result: dict[str, Any], table: str) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of one table of a protected result (``run_request_result``'s output) for CSV. A site (or
    the merged total) whose breakdown is withheld has one row saying so, with no number in it."""
    if table not in RESULT_TABLES:
        raise Http404("No such table.")
    rows: list[list[Any]] = []
    if table == "sites":
        header = ["site", "state", "persons", "privacy rule", "error"]
        for site in result["sites"]:
            persons = _cell(site["persons"]) if "persons" in site else ""
            rows.append([site["source"], site["state"], persons, site["privacy"]["description"], site["error"]])
        if result.get("total"):
            rows.append(["total", result["state"], _cell(result["total"]), result["total_privacy"]["description"], ""])
        return header, rows
    if table == "attrition":
        header = list(ATTRITION_CSV_HEADER)
        for site in result["sites"]:
            if _withheld(site, table, result.get("kind", "")):
                withheld = f"{BREAKDOWN_WITHHELD} ({site['privacy']['description']})"
                rows.append([site["source"], *[""] * (len(header) - 2), withheld])
            if site.get("attrition_table"):
                rows += attrition_csv_rows(site["source"], site["attrition_table"], site["privacy"]["description"])
        if result.get("merged_attrition_withheld"):
            rows.append([MERGED_SOURCE, *[""] * (len(header) - 2), MERGED_BREAKDOWN_WITHHELD])
        if result.get("merged_attrition"):
            merged_rule = f"{result['merged_attrition']['privacy']['description']} (strictest of the sites' rules)"
            rows += attrition_csv_rows(MERGED_SOURCE, result["merged_attrition"], merged_rule)
        return header, rows
    top = table.removeprefix("top_") if table.startswith("top_") else None
    columns = {
        "age_pyramid": ["age_group", "gender"],
        "gender": ["concept_id", "name"],
        "race": ["concept_id", "name"],
        "ethnicity": ["concept_id", "name"],
        "index_year": ["year"],
    }.get(table, ["concept_id", "name"])
    compared = top is not None or table in POPULATION_TABLES
    extra = COMPARED_COLUMNS if compared else PERCENT_COLUMNS
    header = ["site", *columns, "persons", *extra, "privacy rule"]
    blank = [""] * len(columns)
    no_figures = [""] * (1 + len(extra))

    def items(demographics: dict[str, Any]) -> list[dict[str, Any]]:
        return demographics.get("top_at_index", {}).get(top, []) if top else demographics.get(table, [])

    def figures(item: dict[str, Any]) -> list[Any]:
        # Numbers as numbers; a percentage or difference that a hidden count would need is left empty, and a
        # population count (released like any) is written like the cohort's.
        out: list[Any] = [_cell(item["persons"]), _number(item.get("percent"))]
        if compared:
            population = item.get("population")
            out += [
                _cell(population) if population else "",
                _number(item.get("population_percent")),
                _number(item.get("smd")),
            ]
        return out

    for site in result["sites"]:
        if _withheld(site, table, result.get("kind", "")):
            rows.append(
                [site["source"], *blank, *no_figures, f"{BREAKDOWN_WITHHELD} ({site['privacy']['description']})"]
            )
        for item in items(site.get("demographics", {})):
            rows.append(
                [site["source"], *[item.get(c) for c in columns], *figures(item), site["privacy"]["description"]]
            )
    if result.get("merged_breakdown_withheld"):
        rows.append([MERGED_SOURCE, *blank, *no_figures, MERGED_BREAKDOWN_WITHHELD])
    for item in items(result.get("merged_demographics") or {}):
        rows.append([MERGED_SOURCE, *[item.get(c) for c in columns], *figures(item), _merged_rule(result)])
    return header, rows


def _number(value: Any) -> float | str:
    """A percentage or a standardized difference for CSV: the number, or empty when it is not shown."""
    return "" if value is None else float(value)


def run_result_csv(result: dict[str, Any], table: str) -> str:
    """One table of a protected result as CSV text."""
    header, rows = run_result_table(result, table)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([spreadsheet_safe_cell(v) for v in row])
    return buffer.getvalue()


def latest_counts(definition_ids: list[int], *, user: User) -> dict[int, dict[str, Any]]:
    """The latest finished count of each definition, as ``user`` may see it now and exactly as its result page
    would show it: over the sources they may see (``count_rights_for_user``; the newest request with a succeeded
    run on one of them), each site's rule for their role (exact where a grant of the definition's project reaches
    them, ``exact_grants_for_user``), then the federated total of the shown sites only:
    ``{definition id: {"display", "rule", "short", "at", "request", "sites"}}`` (``rule``: the rule the number was
    released under, ``short`` the same in a few characters, to show beside it).

    A fixed number of queries for any number of definitions (the user's rights, the definitions they may view
    and run, the newest count request per definition, the persons of its succeeded runs, their sources, the
    grants reaching the user);
    portable SQL, so the SQLite demo database answers it too.
    """
    if not definition_ids:
        return {}
    rights = count_rights_for_user(user)
    projects = dict(_definitions_counted_by(user).filter(pk__in=definition_ids).values_list("pk", "project_id"))
    newest = (
        RunRequest.objects.filter(
            _shows_a_site(rights, state=JobState.SUCCEEDED),
            definition=OuterRef("pk"),
            version__isnull=False,
            kind=RunKind.COUNT,
            cancelled_at__isnull=True,
        )
        .order_by("-created_at", "-id")
        .values("pk")[:1]
    )
    pairs = dict(
        CohortDefinition.objects.filter(pk__in=list(projects))
        .annotate(request_id=Subquery(newest))
        .exclude(request_id=None)
        .values_list("request_id", "pk")
    )
    # Only the columns needed, without building model instances: this runs for every row of a list page.
    runs = CohortRun.objects.filter(requests__in=list(pairs), state=JobState.SUCCEEDED).values_list(
        "requests__id", "source_id", "result__persons", "result__persons_key", "finished_at"
    )
    by_request: dict[int, list[tuple[int, Cell, Any]]] = {}
    for request_id, source_id, persons, key, finished_at in runs:
        if persons is not None and rights.allows(projects[pairs[request_id]], source_id):
            by_request.setdefault(request_id, []).append((source_id, (int(persons), _key(key)), finished_at))
    sources = Source.objects.in_bulk({source_id for rows in by_request.values() for source_id, _, _ in rows})
    grants = exact_grants_for_user(user) if by_request else {}
    counts: dict[int, dict[str, Any]] = {}
    for request_id, rows in by_request.items():
        project_id = projects[pairs[request_id]]
        rules = [
            rule_for(source=sources[source_id], role=user.role, grant=grants.get((project_id, source_id)))
            for source_id, _, _ in rows
        ]
        total, _ = protect_federated([persons for _, persons, _ in rows], rules)
        merged = strictest(rules)
        counts[pairs[request_id]] = {
            "display": total.as_dict()["display"],
            "rule": merged.describe(),
            "short": merged.short(),
            "at": max((at for _, _, at in rows if at), default=None),
            "request": request_id,
            "sites": len(rows),
        }
    return counts


def latest_counts_per_site(definition: CohortDefinition, *, user: User) -> list[dict[str, Any]]:
    """For the printable summary: per source ``user`` may see now (``count_rights_for_user``, and view and run on
    the definition), the latest succeeded count of the definition's latest version (or of an earlier version if
    the latest was never counted there), protected by the site's rule for their role (exact where a grant of the
    definition's project reaches them). Read through the counts of the definition's saved versions: a run they
    reused (one of a draft or of another definition with the same expression) counts, a draft's own does not."""
    if not _definitions_counted_by(user).filter(pk=definition.pk).exists():
        return []
    runs = (
        CohortRun.objects.filter(
            requests__definition=definition,
            requests__version__isnull=False,
            kind=RunKind.COUNT,
            state=JobState.SUCCEEDED,
        )
        .annotate(version_number=F("requests__version__number"))
        .select_related("source")
        .order_by("source__key", "-version_number", "-finished_at", "-id")
    )
    sites = count_rights_for_user(user).sites(definition.project_id)
    if sites is not None:
        runs = runs.filter(source_id__in=sites)
    grants = exact_grants_for(user=user, project_id=definition.project_id)
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    for run in runs:
        if run.source_id in seen:
            continue
        seen.add(run.source_id)
        rule = rule_for(source=run.source, role=user.role, grant=grants.get(run.source_id))
        rows.append(
            {
                "source": run.source,
                "version": run.version_number,
                "persons": protect_cell(_total_cell(run.result or {}), rule).as_dict(),
                "privacy": rule.describe(),
                "finished_at": run.finished_at,
            }
        )
    return rows


def run_request_state(request: RunRequest) -> str:
    """One word for a request's progress, from its (prefetched) runs: cancelled, running, queued, failed (every
    site failed), partial (some sites failed) or finished."""
    if request.cancelled_at is not None:
        return "cancelled"
    states = [run.state for run in request.runs.all()]
    if JobState.RUNNING in states:
        return "running"
    if JobState.QUEUED in states:
        return "queued"
    failed = sum(1 for state in states if state in (JobState.FAILED, JobState.CANCELLED))
    if states and failed == len(states):
        return "failed"
    return "partial" if failed else "finished"


def source_for_store_sync(user: User, pk: int) -> Source | None:
    """The site ``pk`` when ``user`` may rebuild its count store, else None (the page answers 404 either way)."""
    source = Source.objects.filter(pk=pk).first()
    return source if source is not None and can_sync_count_store(user, source) else None


def site_health(user: User, *, hours: int = 24) -> list[dict[str, Any]]:
    """For admins (every source) and stewards (their organisation's): each site's engine, CDM version, last load,
    fingerprint, statement timeout, privacy rule, and its runs and failures of the last ``hours``. Nothing for
    anybody else. Aggregated in one query, whatever the number of runs."""
    if is_admin(user):
        sources = Source.objects.all()
    elif account_is_usable(user) and user.role == "steward" and user.organisation_id is not None:
        sources = Source.objects.filter(organisation_id=user.organisation_id)
    else:
        return []
    since = timezone.now() - timedelta(hours=hours)
    synced = CountStoreSync.objects.filter(source=OuterRef("pk"), state=JobState.SUCCEEDED).order_by("-finished_at")
    active = CountStoreSync.objects.filter(source=OuterRef("pk"), state__in=ACTIVE_STATES)
    failed = CountStoreSync.objects.filter(source=OuterRef("pk")).exclude(state__in=ACTIVE_STATES)
    sources = sources.annotate(
        runs_recent=Count("runs", filter=Q(runs__queued_at__gte=since)),
        failures_recent=Count("runs", filter=Q(runs__queued_at__gte=since, runs__state=JobState.FAILED)),
        store_synced_at=Subquery(synced.values("finished_at")[:1]),
        store_bytes=Subquery(synced.values("bytes")[:1]),
        store_seconds=Subquery(synced.values("seconds")[:1]),
        store_active=Subquery(active.values("state")[:1]),
        store_last_state=Subquery(failed.order_by("-finished_at").values("state")[:1]),
        store_last_error=Subquery(failed.order_by("-finished_at").values("error")[:1]),
    ).order_by("key")
    rows = []
    for source in sources:
        researcher_rule = rule_for(source=source, role="researcher")
        partner_rule = rule_for(source=source, role="partner")
        rows.append(
            {
                "source": source,
                "fingerprint": (source.fingerprint or "")[:12],
                "privacy": researcher_rule.describe(),
                "partner_privacy": partner_rule.describe(),
                "runs": source.runs_recent,
                "failures": source.failures_recent,
                "count_store": _count_store_row(user, source),
            }
        )
    return rows


def _count_store_row(user: User, source: Source) -> dict[str, Any] | None:
    """What the site page shows of a PostgreSQL site's count store (None for other engines): on or off, what the
    site found at its last check, the last successful sync (when, how long, size), a sync under way or the last
    one's failure, and whether this user may ask for a rebuild."""
    if source.engine != EngineKind.POSTGRESQL:
        return None
    return {
        "on": source.count_store,
        "state": source.count_store_state or ("off" if not source.count_store else "unknown"),
        "checked_at": source.count_store_checked_at,
        "synced_at": source.store_synced_at,
        "bytes": source.store_bytes,
        "seconds": source.store_seconds,
        "active": source.store_active,
        "error": source.store_last_error if source.store_last_state == JobState.FAILED else "",
        "can_sync": can_sync_count_store(user, source),
    }
