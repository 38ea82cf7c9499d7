"""A long statement stops on cancel() from another thread (QueryCancelled) or at the statement timeout
(QueryTimeout), on both engines, and the connection stays usable."""

from __future__ import annotations

import threading
import time

import pytest

from warehouse.engines import QueryCancelled, QueryTimeout, connect

# Minutes of work on either engine: a big cross join that cannot finish within the test.
LONG_QUERY = {
    "postgresql": "SELECT COUNT(*) FROM generate_series(1, 100000000) a, generate_series(1, 100000) b",
    "duckdb": "SELECT COUNT(*) FROM range(100000000) a, range(100000) b WHERE a.range + b.range = -1",
}


def test_cancel_from_another_thread_stops_a_long_query_within_two_seconds(warehouse_url: tuple[str, str]) -> None:
    kind, url = warehouse_url
    with connect(kind, url) as engine:
        timer = threading.Timer(0.3, engine.cancel)
        started = time.monotonic()
        timer.start()
        with pytest.raises(QueryCancelled):
            engine.fetchall(LONG_QUERY[kind])
        assert time.monotonic() - started < 2.3
        assert engine.fetchone("SELECT 1") == (1,)


def test_statement_timeout_raises_query_timeout(warehouse_url: tuple[str, str]) -> None:
    kind, url = warehouse_url
    with connect(kind, url, statement_timeout_seconds=1) as engine:
        started = time.monotonic()
        with pytest.raises(QueryTimeout):
            engine.fetchall(LONG_QUERY[kind])
        assert time.monotonic() - started < 3
        engine.set_statement_timeout(0)
        assert engine.fetchone("SELECT 1") == (1,)
