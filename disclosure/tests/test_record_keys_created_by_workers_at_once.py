"""Several workers starting a site's first counts at the same moment all get its record keys: PostgreSQL's
``CREATE ... IF NOT EXISTS`` is not atomic, and the losers of that race must go on with the winner's table."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from disclosure.record_keys import record_key_secret_variable, record_keys_ensure
from warehouse.engines import connect


def test_three_workers_keying_a_new_site_at_once_all_succeed(test_cdm_pg_url: str, monkeypatch: Any) -> None:
    monkeypatch.setenv(record_key_secret_variable("race"), "r" * 32)
    site = SimpleNamespace(key="race", results_schema="race_results", cdm_schema="race_cdm")

    def engine() -> Any:
        return connect("postgresql", test_cdm_pg_url, password=None, statement_timeout_seconds=0, read_only=False)

    setup = engine()
    try:
        setup.execute_script(
            "DROP SCHEMA IF EXISTS race_cdm CASCADE; DROP SCHEMA IF EXISTS race_results CASCADE; "
            "CREATE SCHEMA race_cdm; "
            "CREATE TABLE race_cdm.person AS SELECT g AS person_id FROM generate_series(1, 5000) g"
        )
        for _ in range(5):
            setup.execute_script("DROP SCHEMA IF EXISTS race_results CASCADE")
            barrier = threading.Barrier(3)
            failures: list[BaseException] = []

            def worker(barrier: threading.Barrier = barrier, failures: list[BaseException] = failures) -> None:
                own = engine()
                try:
                    barrier.wait()
                    record_keys_ensure(own, source=site)
                except BaseException as exc:  # reported below
                    failures.append(exc)
                finally:
                    own.close()

            threads = [threading.Thread(target=worker) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not failures, failures[0]
            keyed = setup.fetchone("SELECT COUNT(*) FROM race_results.soyang_record_key_race")
            assert keyed == (5000,)
    finally:
        setup.execute_script("DROP SCHEMA IF EXISTS race_results CASCADE; DROP SCHEMA IF EXISTS race_cdm CASCADE")
        setup.close()
