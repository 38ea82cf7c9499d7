"""Loading again replaces the CDM (no duplicate rows) and gives it a new fingerprint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from warehouse.engines import connect
from warehouse.loader import load_cdm_directory

SCHEMA = "w_reload"


def test_second_load_does_not_duplicate_and_changes_the_fingerprint(
    warehouse_url: tuple[str, str], make_mini_export: Callable[..., Path]
) -> None:
    kind, url = warehouse_url
    export = make_mini_export()
    with connect(kind, url) as engine:
        first = load_cdm_directory(engine, export, cdm_schema=SCHEMA)
        second = load_cdm_directory(engine, export, cdm_schema=SCHEMA)
        assert second.rows == first.rows
        assert engine.fetchone(f"SELECT COUNT(*) FROM {SCHEMA}.person") == (first.rows["person"],)
        assert engine.fetchone(f"SELECT COUNT(*) FROM {SCHEMA}.concept") == (444,)
        assert second.fingerprint != first.fingerprint
        assert engine.fetchall(f"SELECT fingerprint, cdm_version FROM {SCHEMA}.soyang_load") == [
            (second.fingerprint, second.cdm_version)
        ]


def test_upper_case_and_tab_separated_files_load(
    warehouse_url: tuple[str, str], make_mini_export: Callable[..., Path]
) -> None:
    """Athena vocabulary downloads: upper-case names, TAB-separated though named .csv, unquoted, YYYYMMDD dates."""
    kind, url = warehouse_url

    def athena_style(folder: Path) -> None:
        (folder / "person.csv").rename(folder / "PERSON.csv")
        (folder / "CONCEPT_CLASS.csv").write_text(
            "concept_class_id\tconcept_class_name\tconcept_class_concept_id\n"
            'Clinical Drug\tClinical Drug "quoted"\t44819000\n',
            encoding="utf-8",
        )
        (folder / "CONCEPT_RELATIONSHIP.csv").write_text(
            "concept_id_1\tconcept_id_2\trelationship_id\tvalid_start_date\tvalid_end_date\tinvalid_reason\n"
            "1\t2\tMaps to\t19700101\t20991231\t\n",
            encoding="utf-8",
        )

    with connect(kind, url) as engine:
        report = load_cdm_directory(engine, make_mini_export(athena_style), cdm_schema=SCHEMA)
        assert report.rows["person"] == 40
        assert engine.fetchall(f"SELECT concept_class_name FROM {SCHEMA}.concept_class") == [
            ('Clinical Drug "quoted"',)
        ]
        row = engine.fetchone(
            f"SELECT valid_start_date, valid_end_date, invalid_reason FROM {SCHEMA}.concept_relationship"
        )
        assert (str(row[0]), str(row[1]), row[2]) == ("1970-01-01", "2099-12-31", None)
