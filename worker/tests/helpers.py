"""Helpers of the worker tests: sources on the test warehouses, definitions, waiting for runs."""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
import uuid
from pathlib import Path
from typing import Any

from django.utils import timezone

from accounts.choices import Role
from accounts.services import account_create_approved, organisation_get_or_create, project_create
from cohorts.definitions.services import definition_create
from cohorts.runs.generation import generate_cohort
from cohorts.runs.models import CohortRun, RunRequest
from disclosure.cellkey import record_key
from disclosure.ptable import KEYS
from disclosure.record_keys import record_key_secret, record_keys_ensure
from disclosure.rules import protect, strictest
from disclosure.selectors import rule_for
from warehouse.fingerprint import cdm_fingerprint
from warehouse.models import Source

PASSWORD = "a long test password 1"


def make_user(username: str | None = None, role: str = Role.RESEARCHER) -> Any:
    username = username or f"u{uuid.uuid4().hex[:8]}"
    return account_create_approved(
        username=username,
        email=f"{username}@example.org",
        password=PASSWORD,
        role=role,
        organisation=organisation_get_or_create(name="Test Hospital"),
    )


def make_source(cdm: Any, *, key: str | None = None, **fields: Any) -> Source:
    """A Source row (in the portal test database) pointing at a loaded test warehouse."""
    key = key or f"t{uuid.uuid4().hex[:8]}"
    engine = cdm.connect()
    try:
        # The fingerprint the site's worker will read before counting (warehouse.fingerprint).
        fingerprint = cdm_fingerprint(engine, cdm)
    finally:
        engine.close()
    values: dict[str, Any] = {
        "key": key,
        "name": f"Test site {key}",
        "engine": cdm.kind,
        "url": cdm.url,
        "cdm_schema": cdm.cdm_schema,
        "vocabulary_schema": cdm.vocabulary_schema,
        "results_schema": cdm.results_schema,
        "cdm_version": cdm.cdm_version,
        "fingerprint": fingerprint,
    }
    values.update(fields)
    return Source.objects.create(**values)


def make_running_project(
    *,
    investigator: Any,
    sources: list[Source],
    title: str,
    purpose: str = "test",
    approval_number: str = "IRB-1",
    created_by: Any = None,
) -> Any:
    """A project running today (started yesterday, for thirty days) on the given sites, created by an admin."""
    today = timezone.localdate()
    return project_create(
        title=title,
        purpose=purpose,
        approval_number=approval_number,
        principal_investigator=investigator,
        starts_on=today - dt.timedelta(days=1),
        expires_on=today + dt.timedelta(days=30),
        sources=sources,
        created_by=created_by or make_user(role=Role.ADMIN),
    )


def oracle_definition(oracle_dir: Path, name: str, owner: Any) -> Any:
    expression = json.loads((oracle_dir / "cohorts" / f"{name}.json").read_text())
    return definition_create(owner=owner, name=name, expression=expression)


def oracle_expected(oracle_dir: Path, name: str) -> dict[str, Any]:
    return json.loads((oracle_dir / "expected" / f"{name}.json").read_text())


def oracle_persons(oracle_dir: Path, name: str) -> set[int]:
    """The persons of an oracle cohort (its rows' subjects)."""
    with (oracle_dir / "expected" / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
        return {int(row["subject_id"]) for row in csv.DictReader(handle)}


def oracle_released(oracle_dir: Path, name: str, *sources: Any, role: str = "researcher") -> int:
    """The count the portal releases for the oracle cohort ``name`` counted on ``sources`` together (each a site
    on the same data): the truth from the oracle, its cell key from each site's record keys as the test process
    recomputes them from the site's secret (the workers read the same), perturbed by the sites' rule."""
    persons = oracle_persons(oracle_dir, name)
    key = sum(record_key(record_key_secret(source.key), pid) for source in sources for pid in persons) % KEYS
    rule = strictest(rule_for(source=source, role=role) for source in sources)
    released = protect(len(persons) * len(sources), rule, key)
    assert released.value is not None
    return released.value


def generated_released(engine: Any, expression: Any, cdm: Any, source: Any, *, cohort_id: int) -> tuple[int, int]:
    """Generate ``expression`` on ``cdm`` here, with the site's record keys (the worker keys its persons with the
    same secret), and return its true persons and the count the portal releases for them to a researcher."""
    generated = generate_cohort(
        engine,
        expression,
        cdm_schema=cdm.cdm_schema,
        vocabulary_schema=cdm.vocabulary_schema,
        results_schema=cdm.results_schema,
        cohort_id=cohort_id,
        record_keys=record_keys_ensure(engine, source=source),
    )
    released = protect(generated.persons, rule_for(source=source, role="researcher"), generated.persons_key)
    assert released.value is not None, "the cohort is under the threshold: nothing to compare"
    return generated.persons, released.value


def wait_for(predicate: Any, *, timeout: float = 60.0, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_final(request: RunRequest, *, timeout: float = 90.0) -> list[CohortRun]:
    def done() -> list[CohortRun] | None:
        runs = list(request.runs.all())
        return runs if runs and all(r.is_final for r in runs) else None

    return wait_for(done, timeout=timeout, what=f"request {request.pk} to finish")
