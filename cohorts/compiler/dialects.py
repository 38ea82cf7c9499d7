"""The SQL that differs between PostgreSQL, DuckDB and Spark, in one small class per engine.

Everything else the compiler writes is the common subset of the two (CTEs, window functions, CREATE TEMP TABLE AS,
``date + integer``). Dates are DATE columns in both CDMs, so day arithmetic stays in whole days.
"""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")

#: PostgreSQL work_mem for a generation's transaction (at least; a larger server setting is kept).
WORK_MEM_BYTES = 64 * 2**20


class Dialect:
    """The PostgreSQL/DuckDB common ground; subclasses override what differs."""

    name = "generic"
    #: Whether "an event in the window exists" is best written as a correlated EXISTS (a semi-join that stops at
    #: the first match) or as a join on the person followed by DISTINCT (EXCEPT for "none").
    correlated_exists = True
    #: Whether the entry events are written to a temp table of their own before they meet the observation
    #: periods, so that the planner knows how many there are (see ``PostgresDialect``).
    stage_entry_events = False
    #: Whether a generation resolves the concept sets first and compiles them in as bound arrays, so that the
    #: planner estimates each criterion's rows from the column statistics (see ``PostgresDialect``).
    inline_codesets = False
    #: The CTE keyword that asks for a CTE to be expanded where it is used instead of computed once.
    not_materialized = ""
    #: Whether a count runs as one statement of materialized CTEs rather than temp tables (see ``DuckDBDialect``).
    counts_in_one_statement = False
    #: Whether every CTE of a temp table's query becomes a temp table of its own, created first (see
    #: ``SparkDialect``).
    stage_ctes = False
    #: Whether a temp table's select may hold bound parameters (concept sets resolved beforehand and bound as
    #: arrays); where not, the concept sets are resolved in SQL by the statements themselves (see ``SparkDialect``).
    parameters_in_temp_tables = True
    #: Whether rows can be added to a temp table with INSERT (Spark's cached views take none: each batch of rows
    #: is then a temp table of its own, read together as a UNION ALL).
    inserts_into_temp_tables = True

    def quote_schema(self, name: str) -> str:
        """A schema name from the Source (never from a definition), validated then quoted; ``db.schema`` allowed."""
        parts = name.split(".")
        if not name or not all(_IDENTIFIER.match(part) for part in parts):
            raise ValueError(f"invalid schema name: {name!r}")
        return ".".join('"' + part + '"' for part in parts)

    def date_add(self, expr: str, days: int | str) -> str:
        """``expr`` (a DATE) plus ``days``: a validated integer, or SQL of an integer column."""
        if isinstance(days, int):
            if days == 0:
                return expr
            return f"({expr} + {days})" if days > 0 else f"({expr} - {-days})"
        # CDM integer columns may be BIGINT; both engines add only INTEGER days to a DATE.
        return f"({expr} + CAST({days} AS INTEGER))"

    def days_between(self, start: str, end: str) -> str:
        """Whole days from ``start`` to ``end`` (Circe's ``DATEDIFF(d, start, end)``)."""
        return f"({end} - {start})"

    def year(self, expr: str) -> str:
        """The calendar year of a date, as an integer."""
        return f"CAST(EXTRACT(YEAR FROM {expr}) AS INTEGER)"

    def ratio(self, numerator: str, denominator: str) -> str:
        """Real (never integer) division, NULL when the denominator is zero (Circe's NULLIF)."""
        return f"(CAST({numerator} AS NUMERIC) / NULLIF(CAST({denominator} AS NUMERIC), 0))"

    def in_codeset(self, column: str, codeset_id: str, codesets: str) -> str:
        """``column`` is a concept of codeset ``codeset_id`` (a validated literal) of table ``codesets``."""
        return self.in_select(column, f"SELECT concept_id FROM {codesets} WHERE codeset_id = {codeset_id}")

    def in_select(self, column: str, select: str) -> str:
        """``column`` is one of the values of the one-column query ``select`` (a semi-join)."""
        return f"{column} IN ({select})"

    def in_array(self, column: str, array: str) -> str:
        """``column`` is one of the ids of ``array``, a placeholder bound to a list of integers."""
        return f"{column} = ANY({array})"

    def unnest_ids(self, array: str) -> str:
        """One row per id of ``array`` (a placeholder bound to a list of integers), as BIGINT."""
        return f"unnest(CAST({array} AS BIGINT[]))"

    #: Whether the rows of one cohort id in a results table are replaced by overwriting its partition (Spark,
    #: which cannot DELETE from Parquet tables) rather than by DELETE then INSERT.
    writes_by_partition = False

    def results_table(self, schema: str, name: str, columns: str) -> str:
        """``CREATE TABLE IF NOT EXISTS`` of results table ``name`` of quoted ``schema``."""
        return f"CREATE TABLE IF NOT EXISTS {schema}.{name} ({columns})"

    def replace_rows(self, table: str, cohort_id: str, columns: str, select: str) -> list[str]:
        """Statements replacing the rows of ``cohort_id`` (a validated literal) in results ``table`` by the rows of
        ``select``, whose columns are ``cohort_definition_id`` then ``columns``."""
        return [
            f"DELETE FROM {table} WHERE cohort_definition_id = {cohort_id}",
            f"INSERT INTO {table} (cohort_definition_id, {columns})\n{select}",
        ]

    def delete_cohort_rows(self, table: str, cohort_id: str) -> list[str]:
        """Statements deleting every row of ``cohort_id`` (a validated literal) from results ``table`` (a prune)."""
        return [f"DELETE FROM {table} WHERE cohort_definition_id = {cohort_id}"]

    def cohort_id_column(self, cohort_id: str) -> str:
        """The leading ``cohort_definition_id`` column of a ``replace_rows`` select ('' where the partition says it)."""
        return f"CAST({cohort_id} AS BIGINT), "

    def transaction_settings(self) -> list[str]:
        """Statements run first in the generation's transaction (planner settings local to it)."""
        return []

    def create_temp_table_as(self, name: str, select: str) -> str:
        return f"CREATE TEMPORARY TABLE {name} AS\n{select}"

    def drop_temp_table(self, name: str) -> str:
        return f"DROP TABLE IF EXISTS {name}"

    def drop_temp_tables(self, names: tuple[str, ...]) -> list[str]:
        """Statements dropping every temp table of a generation (left over by an earlier run)."""
        return [self.drop_temp_table(name) for name in names]

    def cleanup_temp_tables(self, names: tuple[str, ...]) -> list[str]:
        """Statements run at the end of the generation's transaction to drop its temp tables."""
        return self.drop_temp_tables(names)

    def analyze(self, name: str, columns: tuple[str, ...]) -> list[str]:
        """Statements that give the planner statistics of a fresh temp table (none where not needed): its row
        count and the statistics of ``columns`` (compiler constants), the keys it is joined on."""
        return []

    def nested_loops(self, allowed: bool) -> list[str]:
        """Statements that allow or forbid nested-loop joins for the following statements of the transaction."""
        return []

    def results_indexes(self, schema: str) -> list[str]:
        """``CREATE INDEX IF NOT EXISTS`` statements for the results tables of quoted ``schema``."""
        return []

    def create_schema(self, schema: str) -> str:
        """Create quoted ``schema`` when it is missing."""
        return f"CREATE SCHEMA IF NOT EXISTS {schema}"

    def results_present(self, schema: str) -> str | None:
        """A query of one row and column, true when every results table and index of quoted ``schema`` exists
        (a generation then skips the DDL and its commit); None where the DDL is always run (cheap there)."""
        return None

    def keep_temp_tables_apart(self) -> list[str]:
        """Statements after which a temp table made from other temp tables keeps its own rows when those are
        dropped or made again under the same names (each cohort of a comparison builds the same temp tables)."""
        return []

    def lock_cohort(self, cohort_id: int) -> list[str]:
        """Statements that serialize two generations of the same cohort id until commit (none where the engine
        already refuses conflicting writers)."""
        return []


class PostgresDialect(Dialect):
    """PostgreSQL: autovacuum never analyzes temporary tables, so the compiler asks for statistics itself."""

    name = "postgresql"

    #: The entry events in a temp table of their own, analyzed: the statement that joins them to the observation
    #: periods then runs with nested loops allowed and an exact row count, so a few hundred events are looked up
    #: through the observation-period index instead of hashing every period of the warehouse (100,000 periods
    #: at 100,000 persons: 50 ms, also when no event matched at all). Many events still get the hash join.
    stage_entry_events = True
    #: ``x = ANY(ARRAY(SELECT ... codesets))`` is an InitPlan the planner cannot see into: it guessed 73,851
    #: measurements for a concept set of 1,370 and started two parallel workers for them (15 ms each, twice in
    #: pl_20766), and hashed whole tables where a few index look-ups would do. With the ids as a constant array
    #: the estimate comes from the column's statistics.
    inline_codesets = True
    not_materialized = "NOT MATERIALIZED "

    def analyze(self, name: str, columns: tuple[str, ...]) -> list[str]:
        # The row count and the join keys' statistics are what the plans need; a full ANALYZE also builds
        # histograms of every date column, 35-57 ms of h06's and h12's 26,000 events against 3-5 ms for two keys.
        return [f"ANALYZE {name} ({', '.join(columns)})"]

    def nested_loops(self, allowed: bool) -> list[str]:
        # With nested loops the planner also weighs index look-ups against one hash of the whole table by
        # random_page_cost: the server default (4) prices a look-up as a disk seek, which made it hash 53,000
        # observation periods for 1,370 events (13.6 ms against 6.4 ms for the look-ups). Warehouse indexes
        # are read from memory or SSD; 1.1 for this statement only (never raised), the server's value after.
        # The value in force is kept in a custom setting of the transaction and put back afterwards.
        if allowed:
            return [
                "SELECT set_config('enable_nestloop', 'on', true), "
                "set_config('soyang.random_page_cost', current_setting('random_page_cost'), true), "
                "set_config('random_page_cost', "
                "CAST(LEAST(CAST(current_setting('random_page_cost') AS FLOAT8), 1.1) AS TEXT), true)"
            ]
        return [
            "SELECT set_config('enable_nestloop', 'off', true), "
            "set_config('random_page_cost', current_setting('soyang.random_page_cost'), true)"
        ]

    def create_temp_table_as(self, name: str, select: str) -> str:
        # Dropped by the COMMIT (or the ROLLBACK) of the generation's transaction: no cleanup statements.
        return f"CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS\n{select}"

    def drop_temp_tables(self, names: tuple[str, ...]) -> list[str]:
        # Every temp table of a generation goes with its transaction's COMMIT or ROLLBACK, so none is left at
        # the start of the next one on the same connection: nothing to drop first.
        return []

    def cleanup_temp_tables(self, names: tuple[str, ...]) -> list[str]:
        return []

    def in_select(self, column: str, select: str) -> str:
        # The array is an InitPlan computed once, so ``column = ANY($0)`` is an index condition on the table's
        # index (domain concept, vocabulary): no join, hence no nested loop needed to reach the index.
        return f"{column} = ANY(ARRAY({select}))"

    def transaction_settings(self) -> list[str]:
        # One statement, transaction-local (``is_local``): JIT compiles large plans for 100s of ms, more than
        # these queries run; and the row estimates after ``ordinal = 1`` / HAVING filters are often 1, which
        # makes the planner nest loops over CTEs that hold thousands of rows (quadratic). Hash joins everywhere.
        # work_mem: the sorts of First/limit ordinals and the hashes of criteria spill to disk at the default 4 MB
        # from ~100,000 events on (GiBleed x10); raised for this transaction only, never lowered.
        return [
            "SELECT set_config('jit', 'off', true), set_config('enable_nestloop', 'off', true), "
            "set_config('max_parallel_workers_per_gather', '0', true), "
            f"set_config('work_mem', CASE WHEN pg_size_bytes(current_setting('work_mem')) < {WORK_MEM_BYTES} "
            f"THEN '{WORK_MEM_BYTES // 2**20}MB' ELSE current_setting('work_mem') END, true)"
        ]

    def results_indexes(self, schema: str) -> list[str]:
        # Every generation deletes its cohort id's rows from tables that hold every cohort of the site, and the
        # demographics and dataset extraction read one id's rows. A BRIN index serves them because the rows of
        # one generation are written together and run ids only grow: a range of 16 pages covers few ids (the
        # multi-minmax summary keeps the far-apart ids of dataset cohorts from widening a range to all ids). A
        # b-tree cost about 1.2 us per written row (GiBleed x10: 30-50 ms of h01's 18,000 and h12's 26,940 rows,
        # a third of the generation) where the BRIN costs about a fifth of that; ranges not yet summarized are
        # scanned, so a DELETE of a new id reads only the tail written since the last summary. The catalog is
        # looked up first because CREATE INDEX takes a SHARE lock on the table even when the index exists,
        # which would make this generation wait for another one's uncommitted insert. The b-tree of earlier
        # versions is dropped once, by the first generation that finds the BRIN missing.
        return [
            f"DO $$ BEGIN IF to_regclass('{schema}.brin_{table}_definition') IS NULL THEN "
            f"CREATE INDEX IF NOT EXISTS brin_{table}_definition ON {schema}.{table} "
            "USING brin (cohort_definition_id int8_minmax_multi_ops) WITH (pages_per_range = 16, autosummarize = on); "
            f"DROP INDEX IF EXISTS {schema}.ix_{table}_definition; "
            "END IF; END $$"
            for table in ("cohort", "cohort_inclusion_result")
        ]

    def create_schema(self, schema: str) -> str:
        # PostgreSQL checks the right to create schemas in the database before it looks at IF NOT EXISTS: a site's
        # role that may write its existing results schema but not create schemas (the usual grant to Soyang at a
        # hospital) would fail. The schema is a validated, quoted name (no quote inside), so it may be a literal.
        return f"DO $$BEGIN IF to_regnamespace('{schema}') IS NULL THEN CREATE SCHEMA {schema}; END IF; END$$"

    def results_present(self, schema: str) -> str | None:
        # to_regclass of a validated, quoted schema and compiler constants: NULL when the relation is missing.
        names = [f"{schema}.{table}" for table in ("cohort", "cohort_inclusion_result")]
        names += [f"{schema}.brin_{table}_definition" for table in ("cohort", "cohort_inclusion_result")]
        return "SELECT " + " AND ".join(f"to_regclass('{name}') IS NOT NULL" for name in names)

    def lock_cohort(self, cohort_id: int) -> list[str]:
        # Under READ COMMITTED two concurrent delete-then-insert of one id would both insert; a transaction-level
        # advisory lock makes the second wait and then delete the first one's committed rows. Key space 0x534f59
        # ("SOY"); ids that share the low 31 bits merely wait for each other.
        return [f"SELECT pg_advisory_xact_lock({0x534F59}, {int(cohort_id) % 2**31})"]


class DuckDBDialect(Dialect):
    """DuckDB: ``DATE - DATE`` is fine too, but ``date_diff`` says the unit; NUMERIC means DOUBLE-free decimals."""

    name = "duckdb"
    # A temp table is a catalog write and a statement of its own; DuckDB plans materialized CTEs as well as tables
    # it has no statistics of either way, so a count is one statement and one round trip.
    counts_in_one_statement = True
    # DuckDB decorrelates EXISTS by grouping the outer rows on every column the window uses (a hash aggregate of
    # all index events per criterion: 0.45 s at 644,000 events), then a mark join; a plain join does not.
    correlated_exists = False

    def days_between(self, start: str, end: str) -> str:
        return f"date_diff('day', {start}, {end})"

    def year(self, expr: str) -> str:
        return f"year({expr})"

    def create_temp_table_as(self, name: str, select: str) -> str:
        # Replaces a table of the same name left on this connection: no DROP statements before the work.
        return f"CREATE OR REPLACE TEMPORARY TABLE {name} AS\n{select}"

    def drop_temp_tables(self, names: tuple[str, ...]) -> list[str]:
        return []

    def cleanup_temp_tables(self, names: tuple[str, ...]) -> list[str]:
        # The temp tables live as long as the connection: dropped at the end of the generation's transaction.
        return [self.drop_temp_table(name) for name in names]

    def ratio(self, numerator: str, denominator: str) -> str:
        return f"(CAST({numerator} AS DOUBLE) / NULLIF(CAST({denominator} AS DOUBLE), 0))"

    def results_present(self, schema: str) -> str | None:
        # The DDL costs a commit (10-25 ms at 100,000 persons); the catalog says in one query whether it is needed.
        # Names of a validated, quoted schema (no quote can be inside) and compiler constants.
        parts = [part.strip('"') for part in schema.split(".")]
        where = f"table_schema = '{parts[-1]}'" + (f" AND table_catalog = '{parts[0]}'" if len(parts) == 2 else "")
        return (
            "SELECT COUNT(*) = 2 FROM information_schema.tables WHERE "
            f"{where} AND table_name IN ('cohort', 'cohort_inclusion_result')"
        )


class SparkDialect(Dialect):
    """Spark SQL (Spark Connect), with double-quoted identifiers and ANSI mode on (``warehouse.spark_engine``).

    Temp tables are cached temporary views: ``CACHE TABLE name AS select`` computes the rows once, eagerly, and keeps
    them in the executors' memory (spilling to disk) for the statements that follow; the view belongs to the
    engine's Spark session only. Spark cannot DELETE from Parquet tables, so the results tables are partitioned by
    cohort id and a generation overwrites its id's partition: one write that replaces that cohort's rows and no
    other's (also when the cohort is empty), on Parquet and on Delta tables alike.
    """

    name = "spark"
    # Spark turns a correlated EXISTS into a left semi join on the person with the window as the join condition:
    # each index event stops at its first match. The join-then-DISTINCT form made every (index event, match) pair
    # and grouped them (pl_3385 on GiBleed: the qualified events took tens of seconds).
    correlated_exists = True
    writes_by_partition = True
    # Spark plans a statement as one tree: a CTE read in three places is planned three times, with every CTE it
    # reads, and the optimizer's time grows with the tree (pl_3385's qualified events: a plan of 93 exchanges and
    # 25 s of planning for 304 rows on GiBleed, each CTE alone 5-7 s). Cached one by one, each statement reads
    # small cached relations and is planned in a fraction of a second.
    stage_ctes = True
    # Concept sets are resolved by the statements themselves, as a semi-join on the cached codesets that Spark
    # broadcasts, rather than bound as arrays tested row by row with array_contains (the engine could bind them:
    # it turns a CACHE TABLE with parameters into a parameterized view, then caches it).
    parameters_in_temp_tables = False
    # A cached temporary view is a query's result, not a table: INSERT INTO it is refused.
    inserts_into_temp_tables = False

    def days_between(self, start: str, end: str) -> str:
        return f"datediff({end}, {start})"

    def year(self, expr: str) -> str:
        return f"year({expr})"

    def ratio(self, numerator: str, denominator: str) -> str:
        # NUMERIC is DECIMAL(10,0) in Spark: a fraction would be rounded to a whole number.
        return f"(CAST({numerator} AS DOUBLE) / NULLIF(CAST({denominator} AS DOUBLE), 0))"

    def in_array(self, column: str, array: str) -> str:
        return f"array_contains(CAST({array} AS ARRAY<BIGINT>), {column})"

    def unnest_ids(self, array: str) -> str:
        return f"explode(CAST({array} AS ARRAY<BIGINT>))"

    def create_temp_table_as(self, name: str, select: str) -> str:
        return f"CACHE TABLE {name} AS\n{select}"

    def drop_temp_table(self, name: str) -> str:
        # Dropping a cached temporary view also drops its cached rows.
        return f"DROP VIEW IF EXISTS {name}"

    def results_table(self, schema: str, name: str, columns: str) -> str:
        # Partitioned by cohort id (last column of the table, as Spark orders partition columns) for replace_rows.
        # No NOT NULL: Spark checks it on every write, and every column is written from non-null expressions.
        plain = columns.replace(" NOT NULL", "")
        return (
            f"CREATE TABLE IF NOT EXISTS {schema}.{name} ({plain}) USING parquet PARTITIONED BY (cohort_definition_id)"
        )

    def replace_rows(self, table: str, cohort_id: str, columns: str, select: str) -> list[str]:
        return [f"INSERT OVERWRITE TABLE {table} PARTITION (cohort_definition_id = {cohort_id}) ({columns})\n{select}"]

    def cohort_id_column(self, cohort_id: str) -> str:
        return ""

    def delete_cohort_rows(self, table: str, cohort_id: str) -> list[str]:
        # One cohort's rows are one partition: dropped as a whole (a catalog change and its files deleted).
        return [f"ALTER TABLE {table} DROP IF EXISTS PARTITION (cohort_definition_id = {cohort_id})"]

    def keep_temp_tables_apart(self) -> list[str]:
        # A temporary view keeps its SQL text by default and resolves the names in it again at each use: once the
        # temp views it reads are dropped (or replaced by the next cohort's) it fails (or reads the wrong rows).
        # Stored as an analyzed plan it refers to those rows themselves. A setting of this engine's session only.
        return ["SET spark.sql.legacy.storeAnalyzedPlanForView = true"]


DIALECTS: dict[str, Dialect] = {"postgresql": PostgresDialect(), "duckdb": DuckDBDialect(), "spark": SparkDialect()}


def dialect_for(name: str) -> Dialect:
    """The dialect of engine kind ``name`` ("postgresql", "duckdb" or "spark")."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown SQL dialect {name!r}; expected one of {sorted(DIALECTS)}") from None
