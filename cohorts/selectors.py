"""Reads of the cohorts app. Results leave through here, with the privacy rules applied."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from accounts.permissions import (
    account_is_usable,
    filter_by_permission,
    is_admin,
    project_sources_for_user,
    projects_for_user,
    user_can,
)
from cohorts.choices import RunState
from cohorts.models import CohortDefinition, CohortRun, RunRequest
from cohorts.privacy import (
    FederatedTotal,
    PrivacyRule,
    ProtectedCount,
    protect,
    protect_federated,
    protect_group,
    rule_for,
    strictest,
)
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
    }


def _protected_steps(steps: list[dict[str, Any]], rule: PrivacyRule) -> list[dict[str, Any]]:
    return [{"name": s["name"], **protect(int(s["persons"]), rule).as_dict()} for s in steps]


def _protected_demographics(demo: dict[str, Any], rule: PrivacyRule) -> dict[str, Any]:
    total = int(demo.get("persons", 0))
    out: dict[str, Any] = {"persons": protect(total, rule).as_dict()}
    for key in ("age_pyramid", "gender", "race", "ethnicity", "index_year"):
        cells = demo.get(key, [])
        _, protected = protect_group(total, [int(c["persons"]) for c in cells], rule)
        out[key] = [
            {**{k: v for k, v in c.items() if k != "persons"}, "persons": p.as_dict()}
            for c, p in zip(cells, protected, strict=True)
        ]
    # Top concepts are not a partition of the total (a person has many), each is protected on its own.
    out["top_at_index"] = {
        label: [
            {**{k: v for k, v in c.items() if k != "persons"}, "persons": protect(int(c["persons"]), rule).as_dict()}
            for c in rows
        ]
        for label, rows in demo.get("top_at_index", {}).items()
    }
    out["index_lookback_days"] = demo.get("index_lookback_days")
    return out


def run_request_result(*, request: RunRequest, role: str) -> dict[str, Any]:
    """The merged result of a request as a user of ``role`` may see it.

    Each site's own rule is applied to its numbers before merging; the merged total is protected with the
    strictest of the rules and, when a site's count is hidden, shown as "the visible sites + <10" — never as a
    number from which the hidden site could be recovered (privacy.protect_federated). A site that failed or was
    cancelled is shown as such; the others still answer.
    """
    runs = list(request.runs.select_related("source").order_by("source__key"))
    sites: list[dict[str, Any]] = []
    succeeded: list[tuple[CohortRun, PrivacyRule]] = []
    for run in runs:
        rule = rule_for(source=run.source, role=role)
        site = _run_state(run)
        site["privacy"] = rule.as_dict()
        if run.state == RunState.SUCCEEDED and run.result is not None:
            succeeded.append((run, rule))
        sites.append(site)
    merged_rule = strictest(rule for _, rule in succeeded)
    raw_counts = [int(run.result["persons"]) for run, _ in succeeded]
    total: FederatedTotal | None = None
    site_counts: list[ProtectedCount] = []
    if succeeded:
        total, site_counts = protect_federated(raw_counts, [rule for _, rule in succeeded])
    by_run = {run.pk: (run, count) for (run, _), count in zip(succeeded, site_counts, strict=True)}
    for site in sites:
        if site["run"] in by_run:
            run, protected_count = by_run[site["run"]]
            own_rule = rule_for(source=run.source, role=role)
            site["persons"] = protected_count.as_dict()
            site["inclusion_rules"] = _protected_steps(run.result.get("inclusion_rules", []), own_rule)
            site["attrition"] = _protected_steps(run.result.get("attrition", []), own_rule)
            if "demographics" in run.result:
                site["demographics"] = _protected_demographics(run.result["demographics"], own_rule)
    states = {run.state for run in runs}
    finished = all(run.is_final for run in runs)
    return {
        "request": request.pk,
        "kind": request.kind,
        "definition": request.version.definition_id,
        "version": request.version.number,
        "finished": finished,
        "state": "finished" if finished else ("running" if RunState.RUNNING in states else "queued"),
        "cancelled": request.cancelled_at is not None,
        "total": total.as_dict() if total is not None else None,
        "total_privacy": merged_rule.as_dict(),
        "sites_answered": len(succeeded),
        "sites": sites,
    }


# ---------------------------------------------------------------------------------------------------------------
# Access to definitions, requests and sources for the browser portal. One access function per object kind: an
# object the user may not see raises Http404 exactly like a missing one (never 403), so ids reveal nothing.
# ---------------------------------------------------------------------------------------------------------------

VIEW = "view_cohortdefinition"
RUN = "run_cohortdefinition"


def definition_create_allowed(user: Any) -> bool:
    """Researchers, stewards and admins write definitions; pharma partners only use those shared with them."""
    return account_is_usable(user) and user.role != "partner"


def definitions_for_user(user: Any, *, project: Any = None, search: str = "") -> QuerySet[CohortDefinition]:
    """The definitions the user may view (own, shared with them, or shared with a running project of theirs),
    newest first; narrowed to one project and to a name containing ``search`` when given."""
    queryset = filter_by_permission(queryset=CohortDefinition.objects.select_related("owner"), user=user, codename=VIEW)
    if project is not None:
        queryset = queryset.filter(project=project)
    if search.strip():
        queryset = queryset.filter(Q(name__icontains=search.strip()) | Q(description__icontains=search.strip()))
    return queryset.order_by("-updated_at", "-id")


def definition_get_for_user(user: Any, pk: int, codename: str = VIEW) -> CohortDefinition:
    """The definition ``pk`` if the user holds ``codename`` on it; Http404 otherwise, as for a missing one."""
    queryset = filter_by_permission(queryset=CohortDefinition.objects.all(), user=user, codename=codename)
    definition = queryset.select_related("owner").filter(pk=pk).first()
    if definition is None:
        raise Http404("No such cohort definition.")
    return definition


def run_request_get_for_user(user: Any, pk: int) -> RunRequest:
    """The run request ``pk`` if the user made it or may view its definition; Http404 otherwise.

    Its requester keeps access to their own request only while they may still view the definition too: a
    definition unshared from somebody takes its results with it.
    """
    request = (
        RunRequest.objects.select_related("version__definition", "requested_by").filter(pk=pk).first()
        if account_is_usable(user)
        else None
    )
    if request is None or not user_can(user, VIEW, request.version.definition):
        raise Http404("No such count.")
    return request


def run_requests_for_user(user: Any, *, definition: CohortDefinition | None = None) -> QuerySet[RunRequest]:
    """Requests the user made (on definitions they may still view), newest first; of one definition if given."""
    visible = definitions_for_user(user).values("pk")
    queryset = RunRequest.objects.filter(requested_by=user, version__definition__in=visible)
    if definition is not None:
        queryset = queryset.filter(version__definition=definition)
    return queryset.select_related("version__definition").prefetch_related("runs").order_by("-created_at", "-id")


def sources_for_user_and_definition(user: Any, definition: CohortDefinition) -> QuerySet[Source]:
    """The sites the user may count this definition on (active and loaded ones only).

    The rule: a definition lives in a project, and is counted on that project's sources while the user works in
    the project (``project_sources_for_user``). A definition without a project (imported before projects, or
    made by a command) is counted on the sources of any running project of the user — the approval each source
    needs is the project, never the definition. Admins may count on every active, loaded source. Running also
    needs ``run_cohortdefinition`` on the definition: without it, no source.
    """
    ready = Source.objects.filter(is_active=True).exclude(fingerprint="")
    if not user_can(user, RUN, definition):
        return ready.none()
    if is_admin(user):
        return ready.order_by("key")
    if definition.project_id is not None:
        allowed = project_sources_for_user(user, definition.project).values("pk")
    else:
        allowed = Source.objects.filter(projects__in=projects_for_user(user)).values("pk")
    return ready.filter(pk__in=allowed).order_by("key")


# --- CSV of results: the protected numbers only, exactly as the page shows them ----------------------------------

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
    "top_measurements",
)


def _cell(protected: dict[str, Any]) -> str:
    # "<10" stays "<10": a hidden count is never written as a number, not even as an empty one that sums.
    return protected["display"]


def run_result_table(result: dict[str, Any], table: str) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of one table of a protected result (``run_request_result``'s output) for CSV."""
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
        header = ["site", "step", "rule", "persons", "privacy rule"]
        for site in result["sites"]:
            for step, item in enumerate(site.get("attrition", []), start=1):
                rows.append([site["source"], step, item["name"], _cell(item), site["privacy"]["description"]])
        return header, rows
    if table.startswith("top_"):
        label = table.removeprefix("top_")
        header = ["site", "concept_id", "name", "persons", "privacy rule"]
        for site in result["sites"]:
            for item in site.get("demographics", {}).get("top_at_index", {}).get(label, []):
                rows.append(
                    [
                        site["source"],
                        item.get("concept_id"),
                        item.get("name"),
                        _cell(item["persons"]),
                        site["privacy"]["description"],
                    ]
                )
        return header, rows
    columns = {
        "age_pyramid": ["age_group", "gender"],
        "gender": ["concept_id", "name"],
        "race": ["concept_id", "name"],
        "ethnicity": ["concept_id", "name"],
        "index_year": ["year"],
    }[table]
    header = ["site", *columns, "persons", "privacy rule"]
    for site in result["sites"]:
        for item in site.get("demographics", {}).get(table, []):
            rows.append(
                [
                    site["source"],
                    *[item.get(c) for c in columns],
                    _cell(item["persons"]),
                    site["privacy"]["description"],
                ]
            )
    return header, rows


def run_result_csv(result: dict[str, Any], table: str) -> str:
    """One table of a protected result as CSV text."""
    header, rows = run_result_table(result, table)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        # Cells starting with = + - @ would be formulas in a spreadsheet: prefix them (CSV injection).
        writer.writerow([f"'{v}" if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v for v in row])
    return buffer.getvalue()
