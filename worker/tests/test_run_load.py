"""Bounded load on loopback: 200 count requests from 20 concurrent clients, 3 sites, 2 worker processes.

Asserts correctness only (every run ends in a final state, none lost, none duplicated); it prints the
throughput and latency figures that docs/performance.md reports. Reproduce with
``.venv/bin/pytest worker/tests/test_run_load.py -s``.
"""

from __future__ import annotations

import json
import statistics
import threading
import time

import pytest
from django.db import connection
from django.db.models import Count

from cohorts.definitions.services import definition_create
from cohorts.runs.choices import RunKind
from cohorts.runs.models import CohortRun, RunRequest
from cohorts.runs.services import run_request_create, site_queue
from jobs.choices import JobState
from worker.tests.helpers import make_source, make_user, wait_final

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 20
REQUESTS = 200


def test_200_requests_from_20_clients_on_3_sites_and_2_workers_all_end_once(
    start_worker, cdm_gibleed_pg, oracle_dir
) -> None:
    sources = [make_source(cdm_gibleed_pg) for _ in range(3)]
    manifest = json.loads((oracle_dir / "manifest.json").read_text())
    names = [entry["name"] for entry in manifest if entry["dataset"] == "gibleed"]
    owner = make_user()
    versions = [
        definition_create(
            owner=owner, name=name, expression=json.loads((oracle_dir / "cohorts" / f"{name}.json").read_text())
        ).latest_version()
        for name in names
    ]
    users = [make_user() for _ in range(CLIENTS)]
    queues = ",".join(site_queue(s.key) for s in sources)
    for _ in range(2):
        start_worker(queues, concurrency=2)

    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    per_client = REQUESTS // CLIENTS

    def client(index: int) -> None:
        try:
            for k in range(per_client):
                n = index * per_client + k
                version = versions[n % len(versions)]
                kind = (RunKind.COUNT, RunKind.ATTRITION)[n % 2]
                chosen = [sources[(n + j) % 3] for j in range(1 + n % 3)]
                started = time.monotonic()
                request = run_request_create(user=users[index], version=version, sources=chosen, kind=kind)
                wait_final(request, timeout=240)
                with lock:
                    latencies.append(time.monotonic() - started)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    assert not errors, errors[0]
    assert RunRequest.objects.count() == REQUESTS
    assert not CohortRun.objects.exclude(state__in=[JobState.SUCCEEDED]).exists()
    duplicated = CohortRun.objects.values("cache_key").annotate(n=Count("id")).filter(n__gt=1)
    assert not duplicated.exists()
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        f"\nload: {REQUESTS} requests, {CLIENTS} clients, 3 sites, 2 workers: {elapsed:.1f} s, "
        f"{REQUESTS / elapsed:.1f} requests/s, {CohortRun.objects.count()} runs executed, "
        f"latency p50 {statistics.median(latencies):.2f} s p95 {p95:.2f} s"
    )
