"""The overlap of two to four cohorts at a site: persons in each combination, computed in one counting transaction.

Each cohort is found by the count path (``cohorts.runs.generation.count_cohort``: the statements the oracle proves,
nothing written to the results schema), one after the other inside one outer warehouse transaction. While a
cohort's temp tables exist, its persons are added to a membership temp table with the cohort's bit; its temp tables
are then dropped so that the next cohort can build its own. One last statement groups the members by person into
a membership mask (bit i set: the person is in cohort i) and counts persons and their cell key per mask. Where a temp
table takes no INSERT (Spark's cached views), each cohort's persons are a temp table of their own instead, read
together by that last statement.

Only aggregates leave this module: per mask the persons and cell key, per cohort its persons and cell key (the same
numbers its own count releases: the same persons, hence the same cell key and the same perturbed count). Every
mask from 1 to 2^k - 1 is reported, zeros included, so the list of combinations says nothing of which are empty.

No Django import here (like ``generation``): the worker calls it with the engine that counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cohorts.compiler.context import TEMP_TABLES
from cohorts.compiler.dialects import dialect_for
from cohorts.expression import CohortExpression
from cohorts.runs.generation import Engine, count_cohort
from disclosure.ptable import KEYS

#: The most cohorts one comparison holds: 4 cohorts make 15 combinations, as many as a chart and a table can show.
MAX_COHORTS = 4
MIN_COHORTS = 2
#: The temp table of (person, cohort bit) rows, one per person and cohort, within the comparison's transaction.
MEMBERS = "soyang_compare_members"


@dataclass(frozen=True)
class Overlap:
    """What a site releases of a comparison: per cohort (in order) its persons and cell key; per combination
    (``mask`` 1 .. 2^k - 1, every one) its persons and cell key; the persons without a record key."""

    cohorts: list[tuple[int, int]]
    combinations: dict[int, tuple[int, int]]
    seconds: float = 0.0
    unkeyed: int = 0

    def as_result(self) -> dict[str, Any]:
        return {
            "cohorts": [{"persons": n, "key": key} for n, key in self.cohorts],
            "combinations": [
                {"mask": mask, "persons": n, "key": key} for mask, (n, key) in sorted(self.combinations.items())
            ],
            "union": {"persons": sum(n for n, _ in self.combinations.values()), "key": self.union_key()},
            "seconds": self.seconds,
        }

    def union_key(self) -> int:
        """The union's cell key: the combinations partition it, so its key is the sum of theirs."""
        return sum(key for _, key in self.combinations.values()) % KEYS


def all_masks(cohorts: int) -> list[int]:
    """Every combination of ``cohorts`` cohorts, as masks in a fixed order (by number of cohorts, then mask)."""
    return sorted(range(1, 1 << cohorts), key=lambda mask: (bin(mask).count("1"), mask))


def cohort_overlap(
    engine: Engine,
    expressions: Sequence[CohortExpression],
    *,
    cdm_schema: str,
    vocabulary_schema: str,
    results_schema: str,
    record_keys: str,
    progress: Callable[[int, int, str], None] | None = None,
    resolved: Sequence[dict[int, list[int]] | None] | None = None,
) -> Overlap:
    """Count the persons of each combination of ``expressions``'s cohorts (2 to 4) in one transaction.

    ``record_keys``: the site's record-key table (SQL name); every count comes with its cell key. ``resolved``:
    per expression, its concept sets' ids resolved already (``ConceptSetCache``), or None.
    """
    if not MIN_COHORTS <= len(expressions) <= MAX_COHORTS:
        raise ValueError(f"a comparison holds {MIN_COHORTS} to {MAX_COHORTS} cohorts, not {len(expressions)}")
    dialect = dialect_for(engine.kind)
    k = len(expressions)
    total_steps = k + 1
    cohorts: list[tuple[int, int]] = []
    unkeyed = 0
    started = time.perf_counter()
    # Where a temp table takes no INSERT (Spark), each cohort's members are a temp table of their own.
    appended = dialect.inserts_into_temp_tables
    members = [MEMBERS] if appended else [f"{MEMBERS}_{position}" for position in range(k)]
    with engine.transaction():
        for sql in dialect.keep_temp_tables_apart():
            engine.execute(sql)
        # PostgreSQL: ON COMMIT DROP; DuckDB: replaced if left on the connection, dropped at the end.
        if appended:
            engine.execute(
                dialect.create_temp_table_as(
                    MEMBERS,
                    "SELECT CAST(NULL AS BIGINT) AS person_id, CAST(NULL AS INTEGER) AS cohort_bit WHERE 1 = 0",
                )
            )
        for position, expression in enumerate(expressions):
            bit = 1 << position

            def collect(engine: Engine, cohort: tuple[str, dict[str, Any]], bit: int = bit) -> dict[str, Any]:
                # The cohort's persons, one row each, while its temp tables exist (the count's own transaction).
                # ``bit`` is an int made here (1, 2, 4, 8), never a value of a definition.
                sql, params = cohort
                select = f"SELECT DISTINCT c.subject_id AS person_id, {int(bit)} AS cohort_bit FROM ({sql}) c"  # noqa: S608
                if appended:
                    engine.execute(
                        f"INSERT INTO {MEMBERS} (person_id, cohort_bit) {select}",  # noqa: S608 - constants, compiled
                        params,
                    )
                else:
                    engine.execute(dialect.create_temp_table_as(members[bit.bit_length() - 1], select), params)
                return {}

            def step(done: int, statements: int, label: str, position: int = position) -> None:
                if progress is not None:
                    progress(position + 1, total_steps, f"cohort {position + 1} of {k}: {label}")

            counted = count_cohort(
                engine,
                expression,
                cdm_schema=cdm_schema,
                vocabulary_schema=vocabulary_schema,
                results_schema=results_schema,
                record_keys=record_keys,
                describe=collect,
                progress=step,
                resolved=resolved[position] if resolved is not None else None,
            )
            cohorts.append((counted.persons, int(counted.persons_key or 0)))
            unkeyed += counted.unkeyed
            # The next cohort builds temp tables of the same names: drop this one's (on PostgreSQL they would
            # otherwise live until the outer transaction's commit).
            for name in TEMP_TABLES:
                engine.execute(dialect.drop_temp_table(name))
        if progress is not None:
            progress(total_steps, total_steps, "combinations")
        # Constant names of this module's temp tables.
        everyone = " UNION ALL ".join(f"SELECT person_id, cohort_bit FROM {name}" for name in members)  # noqa: S608
        rows = engine.fetchall(
            f"""WITH membership AS (
                SELECT person_id, SUM(cohort_bit) AS mask FROM ({everyone}) r GROUP BY person_id
            )
            SELECT m.mask, COUNT(*), MOD(SUM(COALESCE(k.record_key, 0)), {KEYS}),
                   SUM(CASE WHEN k.record_key IS NULL THEN 1 ELSE 0 END)
            FROM membership m LEFT JOIN {record_keys} k ON k.person_id = m.person_id
            GROUP BY m.mask"""  # noqa: S608 - constants and the site's key table name (quoted)
        )
        for sql in dialect.cleanup_temp_tables(tuple(members)):
            engine.execute(sql)
    combinations = {mask: (0, 0) for mask in all_masks(k)}
    for mask, n, key, missing in rows:
        combinations[int(mask)] = (int(n), int(key or 0))
        unkeyed += int(missing or 0)
    overlap = Overlap(cohorts, combinations, round(time.perf_counter() - started, 4), unkeyed)
    _check_partition(overlap)
    return overlap


def _check_partition(overlap: Overlap) -> None:
    """Each cohort is exactly the combinations with its bit: persons and cell keys alike. A mismatch (a count and
    its overlap that disagree) is never released."""
    for position, (persons, key) in enumerate(overlap.cohorts):
        bit = 1 << position
        parts = [cell for mask, cell in overlap.combinations.items() if mask & bit]
        if sum(n for n, _ in parts) != persons or sum(k for _, k in parts) % KEYS != key % KEYS:
            raise AssertionError(f"cohort {position + 1}'s combinations do not add up to its count")
