"""The engine contract: pyformat placeholders and %% on both engines, transactions, errors, URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from warehouse.engines import (
    PROJECT_ROOT,
    EngineError,
    TransientEngineError,
    connect,
    duckdb_path,
    quote_ident,
)


def test_named_placeholders_and_literal_percent_mean_the_same_on_both_engines(warehouse_url: tuple[str, str]) -> None:
    kind, url = warehouse_url
    with connect(kind, url) as engine:
        assert engine.fetchall("SELECT %(a)s + %(a)s, 'x%%y' LIKE 'x%%'", {"a": 20, "unused": 1}) == [(40, True)]
        assert engine.fetchone("SELECT '100%%'") == ("100%",)
        assert engine.fetchone("SELECT 1 WHERE 1 = 0") is None


def test_transaction_commits_rolls_back_and_nests(warehouse_url: tuple[str, str]) -> None:
    kind, url = warehouse_url
    with connect(kind, url) as engine:
        engine.execute_script("DROP TABLE IF EXISTS w_tx; CREATE TABLE w_tx (n INTEGER);")
        with engine.transaction():
            engine.execute("INSERT INTO w_tx VALUES (%(n)s)", {"n": 1})
            with engine.transaction():
                engine.execute("INSERT INTO w_tx VALUES (2)")
        with pytest.raises(RuntimeError), engine.transaction():
            engine.execute("INSERT INTO w_tx VALUES (3)")
            raise RuntimeError("roll back")
        assert engine.fetchall("SELECT n FROM w_tx ORDER BY n") == [(1,), (2,)]
        engine.execute("DROP TABLE w_tx")


def test_driver_errors_become_engine_errors_with_the_cause_kept(warehouse_url: tuple[str, str]) -> None:
    kind, url = warehouse_url
    with connect(kind, url) as engine:
        with pytest.raises(EngineError) as raised:
            engine.execute("SELECT * FROM no_such_table_anywhere")
        assert "no_such_table_anywhere" in str(raised.value)
        assert raised.value.__cause__ is not None
        assert engine.fetchone("SELECT 2") == (2,)


def test_unreachable_databases_raise_transient_errors(tmp_path: Path) -> None:
    with pytest.raises(TransientEngineError, match="cannot connect"):
        connect("postgresql", "postgresql://postgres@127.0.0.1:1/nothing")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(TransientEngineError):
        connect("duckdb", f"duckdb:///{blocker}/warehouse.duckdb")


def test_urls_and_identifiers_are_checked() -> None:
    assert duckdb_path("duckdb:////srv/cdm.duckdb") == "/srv/cdm.duckdb"
    assert duckdb_path("duckdb:///var/cdm.duckdb") == str(PROJECT_ROOT / "var" / "cdm.duckdb")
    assert (PROJECT_ROOT / "manage.py").is_file()
    with pytest.raises(ValueError, match="password"):
        connect("postgresql", "postgresql://postgres:secret@127.0.0.1/x")
    with pytest.raises(ValueError, match="unknown engine"):
        connect("oracle", "oracle://x")
    assert quote_ident("cdm_1") == '"cdm_1"'
    for bad in ("Cdm", "1cdm", 'cdm"; DROP', "", "a" * 64):
        with pytest.raises(ValueError):
            quote_ident(bad)
