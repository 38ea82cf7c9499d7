"""What a Spark catalog says of a schema's tables, read with one statement (``SHOW TABLE EXTENDED``).

Spark has no ``information_schema`` (open-source Spark; Databricks has one only under Unity Catalog) and no
``pg_*`` or ``duckdb_*`` functions: the tables of a schema, their columns in order, their type (managed,
external, view), format and statistics come from the catalog's own commands. ``SHOW TABLE EXTENDED IN s LIKE '*'``
answers for every table of the schema at once (about 0.2 s), where ``DESCRIBE TABLE`` would cost a statement per
table. The attach report, the fingerprint and ``list_sources`` read it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from warehouse.engines import Engine, EngineError, quote_ident

_COLUMN_RE = re.compile(r"^ \|-- (?P<name>[^:]+):")
_STATISTICS_RE = re.compile(r"^Statistics: (?P<bytes>\d+) bytes(, (?P<rows>\d+) rows)?")


@dataclass(frozen=True)
class SparkTable:
    """One table or view of a Spark schema, as its catalog describes it."""

    schema: str
    name: str
    #: MANAGED, EXTERNAL or VIEW.
    type: str
    #: parquet, delta, ... (empty for a view).
    provider: str
    columns: tuple[str, ...]
    #: Rows recorded by ``ANALYZE TABLE ... COMPUTE STATISTICS`` (or by Delta); None when never analyzed.
    rows: int | None
    #: The catalog's description without the lines that change when nothing was written (last access).
    information: str

    @property
    def is_view(self) -> bool:
        return self.type.upper() == "VIEW"


def schema_exists(engine: Engine, schema: str) -> bool:
    """Whether ``schema`` exists in the session's catalog."""
    quote_ident(schema)  # a plain lower-case name only: it is written into the LIKE pattern below
    return bool(engine.fetchall(f"SHOW SCHEMAS LIKE '{schema}'"))


def table_names(engine: Engine, schemas: Iterable[str]) -> dict[str, set[str]]:
    """The names of the tables and views of each of ``schemas`` that exists (a missing one is left out), without
    the session's temporary views, which ``SHOW TABLES`` lists with every schema. The schemas are listed first,
    once: ``SHOW TABLES`` of a missing schema is an error. Cheaper than ``schema_tables``: nothing is described."""
    existing = {str(row[0]) for row in engine.fetchall("SHOW SCHEMAS")}
    return {
        schema: {str(row[1]) for row in engine.fetchall(f"SHOW TABLES IN {quote_ident(schema)}") if not row[2]}
        for schema in sorted(set(schemas) & existing)
    }


def schema_tables(engine: Engine, schema: str) -> dict[str, SparkTable] | None:
    """The tables and views of ``schema`` by (lower-case) name; None when the schema does not exist.

    Raises ``WarehouseError`` for anything else (the server unreachable, no right to list the schema)."""
    try:
        rows = engine.fetchall(f"SHOW TABLE EXTENDED IN {quote_ident(schema)} LIKE '*'")
    except EngineError as exc:
        if "SCHEMA_NOT_FOUND" in str(exc):
            return None
        raise
    tables: dict[str, SparkTable] = {}
    for row in rows:
        database, name, is_temporary, information = row[0], row[1], row[2], row[3]
        if is_temporary or str(database).lower() != schema:
            continue  # the session's temporary views are listed with every schema
        tables[str(name).lower()] = _parse(schema, str(name).lower(), str(information or ""))
    return tables


def _parse(schema: str, name: str, information: str) -> SparkTable:
    fields: dict[str, str] = {}
    columns: list[str] = []
    kept: list[str] = []
    rows = None
    for line in information.splitlines():
        if match := _COLUMN_RE.match(line):
            columns.append(match.group("name").strip().lower())
        elif ": " in line and not line.startswith(" "):
            key, value = line.split(": ", 1)
            fields[key] = value
            if key == "Statistics" and (stats := _STATISTICS_RE.match(line)) and stats.group("rows"):
                rows = int(stats.group("rows"))
        if not line.startswith("Last Access:"):
            kept.append(line)
    return SparkTable(
        schema=schema,
        name=name,
        type=fields.get("Type", ""),
        provider=fields.get("Provider", ""),
        columns=tuple(columns),
        rows=rows,
        information="\n".join(kept).strip(),
    )
