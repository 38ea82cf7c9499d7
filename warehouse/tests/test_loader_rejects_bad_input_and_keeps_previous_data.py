"""Bad input gives a LoadError naming the file and line, and the previously loaded CDM stays exactly as it was."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from warehouse.engines import connect
from warehouse.loader import LoadError, load_cdm_directory

SCHEMA = "w_bad_input"


def _replace_line(path: Path, line_number: int, transform: Callable[[list[str]], list[str]]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line_number - 1] = ",".join(transform(lines[line_number - 1].split(",")))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _missing_person(folder: Path) -> None:
    (folder / "person.csv").unlink()


def _wrong_header(folder: Path) -> None:
    _replace_line(folder / "person.csv", 1, lambda f: ["persn_id", *f[1:]])


def _extra_field(folder: Path) -> None:
    _replace_line(folder / "observation_period.csv", 5, lambda f: [*f, "42"])


def _non_integer_id(folder: Path) -> None:
    _replace_line(folder / "observation_period.csv", 4, lambda f: ["x17", *f[1:]])


def _bad_date(folder: Path) -> None:
    _replace_line(folder / "observation_period.csv", 3, lambda f: [f[0], f[1], "2010-13-45", *f[3:]])


BAD_INPUTS = {
    "missing person file": (_missing_person, r"required table\(s\) missing: person"),
    "wrong header": (_wrong_header, r"person\.csv, line 1: unknown column 'persn_id'"),
    "row with an extra field": (_extra_field, r"observation_period\.csv, line 5\b"),
    "non-integer id": (_non_integer_id, r"observation_period\.csv, line 4\b.*x17"),
    "bad date": (_bad_date, r"observation_period\.csv, line 3\b.*2010-13-45"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_names_file_and_line_and_changes_nothing(
    case: str, warehouse_url: tuple[str, str], make_mini_export: Callable[..., Path]
) -> None:
    kind, url = warehouse_url
    edit, expected = BAD_INPUTS[case]
    with connect(kind, url) as engine:
        good = load_cdm_directory(engine, make_mini_export(), cdm_schema=SCHEMA)
        with pytest.raises(LoadError) as raised:
            load_cdm_directory(engine, make_mini_export(edit), cdm_schema=SCHEMA)
        assert re.search(expected, str(raised.value)), str(raised.value)
        assert engine.fetchone(f"SELECT fingerprint FROM {SCHEMA}.soyang_load") == (good.fingerprint,)
        assert engine.fetchone(f"SELECT COUNT(*) FROM {SCHEMA}.person") == (good.rows["person"],)
        assert engine.fetchone(f"SELECT COUNT(*) FROM {SCHEMA}.observation_period") == (
            good.rows["observation_period"],
        )
        if kind == "postgresql":
            leftovers = engine.fetchall(
                "SELECT nspname FROM pg_namespace WHERE nspname = %(name)s", {"name": f"{SCHEMA}__staging"}
            )
            assert leftovers == []


def test_unknown_cdm_version_is_refused_before_touching_the_warehouse(
    warehouse_url: tuple[str, str], make_mini_export: Callable[..., Path]
) -> None:
    kind, url = warehouse_url
    with connect(kind, url) as engine:
        good = load_cdm_directory(engine, make_mini_export(), cdm_schema=SCHEMA)
        with pytest.raises(LoadError, match=r"unknown CDM version '6\.0'"):
            load_cdm_directory(engine, make_mini_export(), cdm_schema=SCHEMA, cdm_version="6.0")
        assert engine.fetchone(f"SELECT fingerprint FROM {SCHEMA}.soyang_load") == (good.fingerprint,)


def test_a_table_of_the_other_cdm_version_is_refused(
    warehouse_url: tuple[str, str], make_mini_export: Callable[..., Path]
) -> None:
    kind, url = warehouse_url

    def add_episode(folder: Path) -> None:
        (folder / "episode.csv").write_text("episode_id,person_id\n", encoding="utf-8")

    with (
        connect(kind, url) as engine,
        pytest.raises(LoadError, match=r"episode\.csv: episode is not a table of CDM 5\.3"),
    ):
        load_cdm_directory(engine, make_mini_export(add_episode), cdm_schema=SCHEMA, cdm_version="5.3")
