"""The Spark engine keeps the engine contract: bound values, clear errors, cancel and timeout, private temp views,
and the same rows whether the server reads a CSV file itself or receives it from the worker."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from warehouse.engines import EngineError, QueryCancelled, QueryTimeout, TransientEngineError, connect
from warehouse.spark_engine import SparkEngine, spark_url_parts, split_statements, translate_placeholders

#: A query that keeps two cores busy for minutes: what cancel and the timeout must stop.
ENDLESS = "SELECT COUNT(*) FROM range(0, 1000000000000) a WHERE a.id % 7 = 3"


def test_placeholders_become_spark_parameters_and_percent_signs_stay_literal() -> None:
    sql, bound = translate_placeholders(
        "SELECT %(a)s WHERE x LIKE 'a%%' AND y = %(b)s", {"a": 1, "b": (2, 3), "unused": 4}
    )
    assert sql == "SELECT :a WHERE x LIKE 'a%' AND y = :b"
    assert bound == {"a": 1, "b": [2, 3]}
    with pytest.raises(EngineError, match="no value for the SQL parameter"):
        translate_placeholders("SELECT %(missing)s", {})


def test_scripts_split_on_semicolons_outside_quotes_and_comments() -> None:
    script = "CREATE SCHEMA a; -- a comment; still a comment\nSELECT 'x;y' AS \"a;b\";\n\n"
    assert split_statements(script) == ["CREATE SCHEMA a", "SELECT 'x;y' AS \"a;b\""]


@pytest.mark.parametrize(
    ("url", "expected"),
    [("sc://spark.hospital.example:443", ("spark.hospital.example", 443)), ("sc://127.0.0.1", ("127.0.0.1", 15002))],
)
def test_a_spark_url_names_host_and_port(url: str, expected: tuple[str, int]) -> None:
    assert spark_url_parts(url) == expected


@pytest.mark.parametrize(
    "url", ["sc://host:15002/;token=secret", "spark://host:7077", "sc://host:99999", "http://host", ""]
)
def test_a_spark_url_with_a_token_options_or_another_scheme_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="Spark Connect URL"):
        spark_url_parts(url)


def test_an_unreachable_cluster_is_a_transient_error_within_seconds() -> None:
    started = time.monotonic()
    with pytest.raises(TransientEngineError, match="cannot connect to Spark at 127.0.0.1:9"):
        connect("spark", "sc://127.0.0.1:9")
    assert time.monotonic() - started < 30


def test_values_travel_as_parameters_and_come_back_typed(spark_url: str) -> None:
    with connect("spark", spark_url) as engine:
        rows = engine.fetchall(
            "SELECT %(d)s + 1, array_contains(CAST(%(ids)s AS ARRAY<BIGINT>), 5), %(text)s",
            {"d": date(2024, 2, 28), "ids": [3, 5], "text": "x'); DROP TABLE t; --"},
        )
        assert rows == [(date(2024, 2, 29), True, "x'); DROP TABLE t; --")]


def test_a_bad_statement_is_an_engine_error_and_the_session_stays_usable(spark_url: str) -> None:
    with connect("spark", spark_url) as engine:
        with pytest.raises(EngineError) as raised:
            engine.fetchall("SELECT FROM WHERE")
        assert not isinstance(raised.value, TransientEngineError)
        assert "JVM stacktrace" not in str(raised.value)
        assert engine.fetchone("SELECT 41 + 1") == (42,)


def test_temp_views_belong_to_one_engine(spark_url: str) -> None:
    with connect("spark", spark_url) as first, connect("spark", spark_url) as second:
        first.execute("CACHE TABLE soyang_private AS SELECT %(v)s AS v", {"v": 7})
        assert first.fetchall("SELECT v FROM soyang_private") == [(7,)]
        with pytest.raises(EngineError, match="TABLE_OR_VIEW_NOT_FOUND"):
            second.fetchall("SELECT v FROM soyang_private")
        first.execute("DROP VIEW IF EXISTS soyang_private")


def test_rows_cached_by_a_run_that_never_cleaned_up_are_freed_when_its_engine_closes(spark_url: str) -> None:
    """The cluster's cache is keyed by plan and shared by every session: a generation that fails or is cancelled
    before dropping its cached views must not leave their rows in the cluster's memory after its session ends."""
    query = "SELECT id * 7 AS v FROM range(0, 1000)"
    abandoned = connect("spark", spark_url)
    abandoned.execute(f"CACHE TABLE soyang_abandoned AS {query}")
    abandoned.close()  # no DROP VIEW: as after a failed statement
    with connect("spark", spark_url) as engine:
        engine.execute(f"CREATE TEMPORARY VIEW soyang_abandoned AS {query}")
        assert not engine.session.catalog.isCached("soyang_abandoned")  # looked up by plan: the same rows
        engine.execute("DROP VIEW IF EXISTS soyang_abandoned")


def test_closing_one_engine_leaves_the_other_engines_of_the_thread_working(spark_url: str) -> None:
    """A worker thread serves several sites: one engine closed must not take another's statements with it (pyspark
    asks the thread's "active" session for settings while it builds a datetime parameter)."""
    first = connect("spark", spark_url)
    with connect("spark", spark_url) as second:
        assert first.fetchone("SELECT 1") == (1,)
        first.close()
        stamp = datetime(2024, 2, 29, 12, 30, tzinfo=UTC).replace(tzinfo=None)  # naive UTC, as the loader binds
        assert second.fetchone("SELECT %(t)s", {"t": stamp}) == (stamp,)
    with pytest.raises(EngineError, match="closed"):
        first.fetchone("SELECT 1")


def test_cancel_from_another_thread_stops_the_statement(spark_url: str) -> None:
    with connect("spark", spark_url, statement_timeout_seconds=0) as engine:
        threading.Timer(2.0, engine.cancel).start()
        started = time.monotonic()
        with pytest.raises(QueryCancelled):
            engine.fetchall(ENDLESS)
        assert time.monotonic() - started < 60
        assert engine.fetchone("SELECT 1") == (1,)


def test_the_statement_timeout_stops_a_long_statement(spark_url: str) -> None:
    with connect("spark", spark_url, statement_timeout_seconds=2) as engine:
        with pytest.raises(QueryTimeout, match="longer than 2 s"):
            engine.fetchall(ENDLESS)
        assert engine.fetchone("SELECT 1") == (1,)


def test_a_csv_file_loads_the_same_read_by_the_server_or_sent_by_the_worker(spark_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "vocabulary.csv"
    csv_file.write_text(
        'vocabulary_id,vocabulary_name,vocabulary_concept_id,valid\n"A","with, a comma",1,2020-01-02\nB,,2,\n',
        encoding="utf-8",
    )
    loaded = []
    for server_reads_files in (True, False):
        engine = SparkEngine(
            spark_url, token=None, statement_timeout_seconds=60, read_only=False, server_reads_files=server_reads_files
        )
        with engine:
            engine.execute("CREATE SCHEMA IF NOT EXISTS spark_csv")
            engine.execute("DROP TABLE IF EXISTS spark_csv.v")
            engine.execute(
                "CREATE TABLE spark_csv.v (vocabulary_id STRING, vocabulary_name STRING, "
                "vocabulary_concept_id INTEGER, valid DATE) USING parquet"
            )
            count = engine.copy_from_csv(
                '"spark_csv"."v"',
                csv_file,
                ["vocabulary_id", "vocabulary_name", "vocabulary_concept_id", "valid"],
                empty_as_text=["vocabulary_name"],
            )
            loaded.append((count, engine.fetchall("SELECT * FROM spark_csv.v ORDER BY vocabulary_id")))
    assert loaded[0] == loaded[1] == (2, [("A", "with, a comma", 1, date(2020, 1, 2)), ("B", "", 2, None)])


def test_a_value_that_does_not_fit_its_column_fails_the_load_with_the_column_named(
    spark_url: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("person_id,year_of_birth\n1,1970\n2,nineteen\n", encoding="utf-8")
    with connect("spark", spark_url) as engine:
        engine.execute("CREATE SCHEMA IF NOT EXISTS spark_csv")
        engine.execute("DROP TABLE IF EXISTS spark_csv.p")
        engine.execute("CREATE TABLE spark_csv.p (person_id BIGINT, year_of_birth INTEGER) USING parquet")
        with pytest.raises(EngineError, match="nineteen"):
            engine.copy_from_csv('"spark_csv"."p"', csv_file, ["person_id", "year_of_birth"])
