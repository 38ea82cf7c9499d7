"""Every CSV that leaves the portal (run tables, the audit log export, dataset extracts) writes its cells through
one guard: text a spreadsheet could run as a formula — starting with = + - @, a tab or a carriage return, or with
spaces before = — gets a leading ', and a genuine number, negative ones included, is written as that number."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from audit.services import audit_record
from audit.spreadsheet_guard import spreadsheet_safe_cell
from cohorts.runs.selectors import run_result_csv
from datasets.extraction import _write_csv

PAYLOADS = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "\r=1+1", " =1+1", "  @cmd"]


def _read(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def _read_file(path: Path) -> list[list[str]]:
    # newline="": a carriage return inside a quoted cell stays one.
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_each_formula_start_is_quoted_and_numbers_stay_numbers() -> None:
    for payload in PAYLOADS:
        assert spreadsheet_safe_cell(payload) == "'" + payload
    for number in (-12, -0.5, Decimal("-3.25"), "-12", "-0.5", "-1e3", "-.5", "12", "0"):
        assert spreadsheet_safe_cell(number) == str(number)
    for text in ("-5+cmd", "-", "+82 10 1234", "-1e3+1", "--1"):
        assert spreadsheet_safe_cell(text) == "'" + text
    assert spreadsheet_safe_cell(None) == ""
    assert spreadsheet_safe_cell(True) == "True"
    assert spreadsheet_safe_cell("Type 2 diabetes") == "Type 2 diabetes"


def test_a_run_table_export_quotes_formula_cells() -> None:
    conditions = [
        {"concept_id": index, "name": payload, "persons": {"display": "<10"}} for index, payload in enumerate(PAYLOADS)
    ]
    result = {
        "sites": [
            {
                "source": "syuh",
                "privacy": {"description": "counts under 10 hidden"},
                "demographics": {"top_at_index": {"conditions": conditions}},
            }
        ],
        "merged_demographics": None,
    }
    rows = _read(run_result_csv(result, "top_conditions"))
    assert [row[2] for row in rows[1:]] == ["'" + payload for payload in PAYLOADS]
    assert [row[1] for row in rows[1:]] == [str(index) for index in range(len(PAYLOADS))]
    assert {row[3] for row in rows[1:]} == {"<10"}


@pytest.mark.django_db
def test_the_audit_log_export_quotes_formula_cells(admin: Any) -> None:
    for payload in PAYLOADS:
        audit_record(action="note", source_key=payload)
    client = Client()
    client.force_login(admin)
    response = client.get("/audit/export.csv", {"action": "note"})
    assert response.status_code == 200
    rows = _read(b"".join(response.streaming_content).decode())
    column = rows[0].index("source_key")
    assert sorted(row[column] for row in rows[1:]) == sorted("'" + payload for payload in PAYLOADS)


def test_a_dataset_extract_quotes_formula_cells_and_keeps_negative_measurements(tmp_path: Path) -> None:
    rows = [[payload, "-1.5", "3"] for payload in PAYLOADS]
    delivered = tmp_path / "measurement.csv"
    _write_csv(delivered, ["age_group", "value_as_number", "unit_concept_id"], rows)
    written = _read_file(delivered)
    assert written[1:] == [["'" + payload, "-1.5", "3"] for payload in PAYLOADS]
    # The intermediate CSV of a Parquet extract keeps the values as they are (Parquet is not a spreadsheet).
    typed = tmp_path / "typed.csv"
    _write_csv(typed, ["age_group", "value_as_number", "unit_concept_id"], rows, for_spreadsheets=False)
    assert _read_file(typed)[1:] == rows
