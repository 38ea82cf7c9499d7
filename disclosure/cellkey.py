"""The arithmetic of the cell-key method: record keys, cell keys, and the released count.

- Every person of a site has a record key 1..255, derived at the site from a secret of that site (HMAC-SHA256 of
  the person id). Nothing outside the site can recompute it: without the secret, keys look uniformly random.
- A cell's key is the sum of the record keys of the persons it counts, modulo 256. It is computed in the same
  query that counts the cell (``count_and_cell_key_sql``), so only (count, cell key) leaves the site, never a
  person id. The same set of persons always has the same cell key, hence the same released number: repeating or
  rephrasing a query gains nothing. Sets that differ by even one person have unrelated cell keys (the person's
  record key shifts the sum), so their noises are independent and a difference no longer reveals who differs.
- ``perturb`` looks the (true count, cell key) up in the site's ptable (``disclosure.ptable``).

In SQL, record keys come from a table of (person_id, record_key) that the worker fills at the site
(``record_key_table_build``): the keys are computed in Python beside the secret and bulk-loaded, so the secret is
never part of any SQL text, parameter or server log. Both PostgreSQL and DuckDB compute the cell key with the
same fragment (``cell_key_sql``).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from disclosure.ptable import KEYS, Ptable, PtableError
from warehouse.engines import Engine, quote_ident


def record_key(secret: bytes, person_id: int) -> int:
    """The record key (1..255) of a person at the site whose secret this is.

    The first 8 bytes of HMAC-SHA256(secret, decimal person id), modulo 255, plus 1: uniform on 1..255 to within
    2^-56. Zero is left out, as in the statistical offices' scheme, so that a single person never has key 0.
    """
    if not secret:
        raise ValueError("a record-key secret must not be empty")
    digest = hmac.new(secret, str(int(person_id)).encode("ascii"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") % (KEYS - 1) + 1


def cell_key(record_keys: Iterable[int]) -> int:
    """The cell key of a cell: the sum of its persons' record keys modulo 256 (0 for an empty cell)."""
    return sum(record_keys) % KEYS


def perturb(true_count: int, cell_key: int, ptable: Ptable) -> int | None:
    """The count to release for a cell: the true count plus the ptable's adjustment of (count, cell key).

    0 stays 0; counts from 1 to the threshold minus one are withheld (None: the caller shows "<k", never a
    number); any other result is at least the threshold and within ``max_adjustment`` of the truth.
    """
    if not 0 <= cell_key < KEYS:
        raise PtableError(f"a cell key is 0..{KEYS - 1}, not {cell_key}")
    adjustments = ptable.adjustments(true_count)
    if adjustments is None:
        return None
    return true_count + adjustments[cell_key]


# ---------------------------------------------------------------------------------------------------------------
# SQL, at the site
# ---------------------------------------------------------------------------------------------------------------


def cell_key_sql(record_key_column: str) -> str:
    """The SQL expression of a cell's key over one row per person (PostgreSQL and DuckDB alike). It must be
    aggregated over distinct persons, as the count is: a person counted once contributes its key once."""
    return f"MOD(SUM({record_key_column}), {KEYS})"


def count_and_cell_key_sql(*, persons_sql: str, key_table: str, group_by: tuple[str, ...] = ()) -> str:
    """A query that counts persons and computes the cell key of each group in one pass.

    ``persons_sql`` selects one row per person of the cell (a ``person_id`` column and the ``group_by`` columns);
    ``key_table`` is the record-key table (SQL text, e.g. built with ``quote_ident``). The query returns the
    ``group_by`` columns, then ``n`` (the true count), ``cell_key`` and ``unkeyed`` (persons without a record key:
    a key table older than the CDM; the caller must refuse a non-zero value rather than release a wrong key).
    """
    groups = ", ".join(f"p.{quote_ident(column)}" for column in group_by)
    select_groups = f"{groups}, " if groups else ""
    group_clause = f" GROUP BY {groups}" if groups else ""
    # SQL text from the caller's compiled query and quoted identifiers only; no value is ever spliced in.
    key = cell_key_sql("COALESCE(k.record_key, 0)")
    unkeyed = "SUM(CASE WHEN k.record_key IS NULL THEN 1 ELSE 0 END)"
    source = f"({persons_sql}) AS p LEFT JOIN {key_table} AS k ON k.person_id = p.person_id"
    return f"SELECT {select_groups}COUNT(*) AS n, {key} AS cell_key, {unkeyed} AS unkeyed FROM {source}{group_clause}"  # noqa: S608


def record_key_table_build(
    engine: Engine, *, secret: bytes, person_table: str, table: str, temporary: bool = False
) -> int:
    """Fill ``table`` (SQL text; created here, replaced if it exists) with the record key of every person of
    ``person_table``; return the number of persons.

    Runs at the site only: the person ids are read and the keys computed in this process, then bulk-loaded
    through a private temporary file that is removed before returning. The secret itself never reaches the
    database. ``temporary`` keys live as long as the connection (``table`` then unqualified); otherwise keep them
    in the site's results schema and rebuild them whenever the CDM is reloaded.
    """
    # Table names are SQL text built by the caller with quote_ident (as for the engine's copy_from_csv).
    ids = [int(row[0]) for row in engine.fetchall(f"SELECT person_id FROM {person_table}")]  # noqa: S608
    engine.execute(f"DROP TABLE IF EXISTS {table}")
    kind = "TEMPORARY TABLE" if temporary else "TABLE"
    engine.execute(f"CREATE {kind} {table} (person_id BIGINT PRIMARY KEY, record_key INTEGER NOT NULL)")
    descriptor, name = tempfile.mkstemp(prefix="record_keys_", suffix=".csv")
    path = Path(name)
    try:
        with os.fdopen(descriptor, "w", newline="", encoding="ascii") as handle:
            writer = csv.writer(handle)
            writer.writerow(["person_id", "record_key"])
            writer.writerows((person_id, record_key(secret, person_id)) for person_id in ids)
        engine.copy_from_csv(table, path, ["person_id", "record_key"], header=True)
    finally:
        path.unlink(missing_ok=True)
    return len(ids)
