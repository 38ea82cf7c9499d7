"""Reads of the cohorts app. Results leave through here, with the privacy rules applied."""

from __future__ import annotations

from typing import Any

from cohorts.choices import RunState
from cohorts.models import CohortRun, RunRequest
from cohorts.privacy import PrivacyRule, protect, protect_group, rule_for, strictest


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
    strictest of the rules, and complementary suppression keeps a hidden site from being recovered as the
    total minus the others. A site that failed or was cancelled is shown as such; the others still answer.
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
    total, site_counts = protect_group(sum(raw_counts) if succeeded else None, raw_counts, merged_rule)
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
