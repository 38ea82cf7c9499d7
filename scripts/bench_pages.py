"""Time the portal's main pages server-side with 1,000 cohort definitions in a throwaway database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python scripts/bench_pages.py
    .venv/bin/python scripts/bench_pages.py --definitions 1000 --repeat 20 --keep

A fresh database (``--db-name``, default ``soyang_bench_pages``, on the server of ``DATABASE_URL``) is migrated,
filled through the services (so permissions, versions and audit rows are the real ones): one project on two
sites, a researcher who owns half of the definitions and sees the other half shared with the project, a partner
viewer of the project; every definition has two versions and a finished count on both sites. Each page is then
requested ``--repeat`` times with Django's test client after two warm-up requests; the table gives the median
and the slowest wall time, the portal process's CPU time and the number of SQL queries of one request. The
database is dropped at the end unless ``--keep``. Server time only (no browser, no network): what the 300 ms
aim of the definitions list is about.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _setup(db_name: str) -> Any:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
    os.environ["TEST_DATABASE_NAME"] = db_name
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    # The test runner's own machinery: a database created (and migrated) from scratch under db_name.
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    return connection


def _fill(definitions: int) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    from accounts.choices import Role
    from accounts.services import membership_approve, membership_request, project_create
    from accounts.tests.factories import OrganisationFactory, SourceFactory, UserFactory, enroll_totp
    from cohorts.definitions.services import definition_create, definition_save_version, definition_share
    from cohorts.runs.choices import RunKind
    from cohorts.runs.models import CohortRun, RunRequest
    from cohorts.tests.conftest import oracle_definition
    from jobs.choices import JobState

    hospital = OrganisationFactory(name="Bench Hospital")
    admin = UserFactory(username="bench-admin", role=Role.ADMIN, organisation=hospital, is_staff=True)
    enroll_totp(admin)
    steward = UserFactory(username="bench-steward", role=Role.STEWARD, organisation=hospital)
    enroll_totp(steward)
    researcher = UserFactory(username="bench-researcher", organisation=hospital)
    colleague = UserFactory(username="bench-colleague", organisation=hospital)
    partner = UserFactory(username="bench-partner", role=Role.PARTNER, organisation=OrganisationFactory(name="Co"))
    sources = [SourceFactory(key=f"site{n}", organisation=hospital, fingerprint=f"{n}" * 64) for n in (1, 2)]
    today = timezone.localdate()
    project = project_create(
        title="Bench project",
        purpose="page timings",
        approval_number="IRB-BENCH",
        principal_investigator=researcher,
        starts_on=today - dt.timedelta(days=1),
        expires_on=today + dt.timedelta(days=365),
        sources=sources,
        created_by=admin,
    )
    for user in (colleague, partner):
        membership = membership_request(project=project, user=user)
        membership_approve(membership=membership, approver=researcher)
        membership_approve(membership=membership, approver=steward)

    expression = oracle_definition("pl_3385")
    changed = {**expression, "PrimaryCriteria": {**expression["PrimaryCriteria"]}}
    changed["PrimaryCriteria"]["ObservationWindow"] = {"PriorDays": 365, "PostDays": 0}
    started = time.perf_counter()
    first = None
    for n in range(definitions):
        owner = researcher if n % 2 == 0 else colleague
        definition = definition_create(
            owner=owner, name=f"Cohort {n:04d}", expression=expression, project=project, description=f"bench {n}"
        )
        definition_save_version(definition=definition, expression=changed, author=owner, note="second")
        if owner is colleague or n % 4 == 0:
            definition_share(definition=definition, by=owner, to_project=project)
        version = definition.latest_version()
        request = RunRequest.objects.create(
            definition=version.definition, version=version, kind=RunKind.COUNT, requested_by=owner
        )
        runs = CohortRun.objects.bulk_create(
            CohortRun(
                version=version,
                source=source,
                kind=RunKind.COUNT,
                cache_key=f"bench-{definition.pk}-{source.key}",
                source_fingerprint=source.fingerprint,
                requested_by=owner,
                state=JobState.SUCCEEDED,
                finished_at=timezone.now(),
                result={"persons": 100 + n, "rows": 100 + n, "inclusion_rules": [], "attrition": []},
            )
            for source in sources
        )
        request.runs.add(*runs)
        first = first or definition
    print(f"filled {definitions} definitions in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    # What autovacuum does on a live server after a bulk of inserts: without statistics PostgreSQL plans the
    # permission subqueries for tables of a few rows and nests loops over 1,000 × 1,000 rows.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"researcher": researcher, "partner": partner, "steward": steward, "definition": first}


def _time(client: Any, url: str, repeat: int) -> tuple[float, float, float, int]:
    """Median and slowest wall time, median CPU time of the portal process, and SQL queries of one request."""
    from django.db import connection

    for _ in range(2):
        assert client.get(url).status_code == 200, url
    executed = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        executed.append(sql)
        return execute(sql, params, many, context)

    # Counted at the cursor (not from the debug query log, which Django empties when a request starts).
    with connection.execute_wrapper(count):
        client.get(url)
    seconds, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(url)
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        assert response.status_code == 200, url
    return statistics.median(seconds), max(seconds), statistics.median(cpu), len(executed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--definitions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--db-name", default="soyang_bench_pages")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    connection = _setup(args.db_name)
    old_name = connection.settings_dict["NAME"]
    try:
        from django.test import Client
        from django.urls import reverse

        people = _fill(args.definitions)
        pk = people["definition"].pk
        pages = [
            ("researcher", "home", reverse("home")),
            ("researcher", "definitions list, page 1", reverse("cohorts:definition_list")),
            ("researcher", "definitions list, search", reverse("cohorts:definition_list") + "?q=Cohort+01"),
            (
                "researcher",
                "definitions list, page 10 by name",
                reverse("cohorts:definition_list") + "?sort=name&page=10",
            ),
            ("researcher", "definition detail", reverse("cohorts:definition_detail", args=[pk])),
            ("researcher", "versions", reverse("cohorts:definition_versions", args=[pk])),
            ("researcher", "compare v1 → v2", reverse("cohorts:version_compare", args=[pk]) + "?a=1&b=2"),
            ("researcher", "printable summary", reverse("cohorts:definition_summary", args=[pk])),
            ("partner", "home", reverse("home")),
            ("partner", "definitions list, page 1", reverse("cohorts:definition_list")),
            ("steward", "home (queues, site health)", reverse("home")),
        ]
        clients: dict[str, Any] = {}
        print(f"load average before timing: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", file=sys.stderr)
        print(f"| who | page | median | slowest of {args.repeat} | portal CPU (median) | SQL queries |")
        print("|---|---|---|---|---|---|")
        for who, label, url in pages:
            client = clients.get(who)
            if client is None:
                client = clients[who] = Client()
                client.force_login(people[who])
            median, slowest, cpu, queries = _time(client, url, args.repeat)
            print(
                f"| {who} | {label} | {median * 1000:.0f} ms | {slowest * 1000:.0f} ms | {cpu * 1000:.0f} ms "
                f"| {queries} |"
            )
    finally:
        if not args.keep:
            connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
