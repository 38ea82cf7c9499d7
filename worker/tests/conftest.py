"""Real Celery worker processes for the tests: no eager mode.

Workers run ``celery -A worker worker`` in subprocesses against the test database (so tests that use them
are transactional: the worker must see committed rows) and the Redis broker of the test settings. Each test
uses source keys of its own, so its queues are its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from conftest import REPO_ROOT


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a power cut would: no clean-up, no acknowledgement."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def _database_url() -> str:
    s = connection.settings_dict
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s.get('USER') or 'postgres'}{password}@{host}:{port}/{s['NAME']}"


@pytest.fixture
def start_worker(transactional_db, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start a worker consuming the given queues; returns once it is ready to take tasks."""
    workers: list[WorkerProcess] = []

    def start(queues: str, *, concurrency: int = 1, env: dict[str, str] | None = None) -> WorkerProcess:
        name = f"w{len(workers)}-{uuid.uuid4().hex[:6]}@test"
        log_path = tmp_path / f"{name.split('@')[0]}.log"
        environment = dict(os.environ)
        environment.update(
            {
                "DJANGO_SETTINGS_MODULE": "portal.settings.test",
                "DATABASE_URL": _database_url(),
                "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
                "SOYANG_RUN_LEASE_SECONDS": str(settings.SOYANG_RUN_LEASE_SECONDS),
                "CELERY_VISIBILITY_TIMEOUT": "6",
                "CELERY_RESTORE_INTERVAL": "1",
            }
        )
        environment.update(env or {})
        pool = ["--pool", "solo"] if concurrency == 1 else ["--pool", "threads", "--concurrency", str(concurrency)]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "worker",
                    "worker",
                    "-Q",
                    queues,
                    "-n",
                    name,
                    *pool,
                    "--loglevel",
                    "INFO",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=REPO_ROOT,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(name=name, process=process, log_path=log_path)
        workers.append(worker)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if " ready." in worker.log():
                return worker
            if process.poll() is not None:
                raise AssertionError(f"worker {name} exited at start:\n{worker.log()}")
            time.sleep(0.2)
        raise AssertionError(f"worker {name} not ready within 60 s:\n{worker.log()}")

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def cdm_gibleed_duckdb_private(shared_data_dir: Path, tmp_path: Path):
    """GiBleed in a DuckDB file no other process holds open: a worker process must be able to open it
    read-write (DuckDB lets one process write a file at a time)."""
    from conftest import _load_test_cdm

    path = tmp_path / "site.duckdb"
    return _load_test_cdm(
        "duckdb", f"duckdb:///{path}", shared_data_dir / "omop" / "gibleed", "gibleed", "gibleed_results"
    )
