"""A CDM in a Spark catalog as a site's own ETL leaves it: Parquet tables made by plain SQL (the CDM DDL), no
``soyang_load`` and no statistics (never analyzed), a few of them filled from the shared GiBleed CSVs.

Kept to few statements (each costs a Spark job): the counted tables are created empty but for ``person`` and
``cdm_source``, which are what the attach report reads rows of.
"""

from __future__ import annotations

from pathlib import Path

from warehouse.engines import connect, quote_ident
from warehouse.omop_ddl import cdm_tables, create_table_sql
from warehouse.tests.plain_cdm import PLAIN_TABLES

#: Tables filled with GiBleed's rows.
FILLED = ("person", "cdm_source")


def plain_spark_cdm(url: str, data: Path, schema: str, *, tables: tuple[str, ...] = PLAIN_TABLES) -> None:
    """(Re)create ``schema`` in the Spark catalog at ``url`` with ``tables`` (CDM 5.3), as described above."""
    with connect("spark", url) as engine:
        engine.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
        engine.execute(f"CREATE SCHEMA {quote_ident(schema)}")
        for table in tables:
            engine.execute(create_table_sql("spark", schema, table, "5.3"))
            if table in FILLED:
                columns = [c.name for c in cdm_tables("5.3")[table]]
                engine.copy_from_csv(
                    f"{quote_ident(schema)}.{quote_ident(table)}", data / f"{table}.csv.gz", columns, delimiter=","
                )
