"""Expression → the statements of one cohort generation.

The plan, in a handful of statements run in one transaction:

1. ``soyang_codesets``: every concept set resolved once (descendants, mapped, exclusions).
2. ``soyang_qualified_events``: entry events in an observation period, limited, with the additional criteria.
3. ``soyang_inclusion_events``: which qualified event meets which inclusion rule.
4. ``soyang_final_cohort``: included events → exit dates (strategy, observation period end, censoring) → eras.
5. The cohort rows (censor window applied) replace the previous rows of the cohort id in ``<results>.cohort``;
   the inclusion-rule masks per event (mode 0) and per person's best event (mode 1) replace theirs in
   ``<results>.cohort_inclusion_result``, the table Circe/WebAPI use for them.

Semantics follow circe-be's templates; where Circe leaves same-day ties to the database (qualified, included and
best-event orderings), the primary-event ordinal (``event_id``) breaks them, so both engines give one answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cohorts.compiler.codesets import codesets_statement
from cohorts.compiler.context import (
    CODESETS,
    ENTRY_EVENTS,
    FINAL_COHORT,
    INCLUSION_EVENTS,
    QUALIFIED_EVENTS,
    TEMP_TABLES,
    Context,
    WithCtes,
    lit,
    with_ctes,
)
from cohorts.compiler.criteria import (
    concepts_in,
    date_clause,
    domain_sql,
    numeric_clause,
    selection_clause,
)
from cohorts.compiler.dialects import dialect_for
from cohorts.expression import (
    CohortExpression,
    CorrelatedCriteria,
    CriteriaGroup,
    Criterion,
    CustomEraStrategy,
    DateOffsetStrategy,
    DemographicCriteria,
    Endpoint,
    ExpressionError,
    Occurrence,
    parse_expression,
)
from cohorts.expression.domains import COUNT_COLUMNS

Statement = tuple[str, dict[str, Any]]

#: Results tables (created if missing): Circe/WebAPI's names and columns.
RESULTS_TABLES: dict[str, str] = {
    "cohort": "cohort_definition_id BIGINT NOT NULL, subject_id BIGINT NOT NULL, "
    "cohort_start_date DATE NOT NULL, cohort_end_date DATE NOT NULL",
    "cohort_inclusion_result": "cohort_definition_id BIGINT NOT NULL, inclusion_rule_mask BIGINT NOT NULL, "
    "person_count BIGINT NOT NULL, mode_id INTEGER NOT NULL",
}


@dataclass
class CompiledCohort:
    """``statements`` run in order in one transaction; ``cleanup`` drops the temp tables (same connection; empty
    on PostgreSQL, whose temp tables are created ``ON COMMIT DROP``). ``readback``, run in the same transaction
    after ``statements`` and before ``cleanup``, returns ``(0, persons, rows)``, then ``(1, mask, person_count)``
    per by-person inclusion mask (Circe's mode 1) and ``(2, mask, event_count)`` per by-event mask (mode 0), as
    written to ``cohort_inclusion_result``. ``key_readback`` (only when compiled with a record-key table), run at
    the same point, returns the cell keys of those counts: ``(0, 0, cell key, unkeyed)`` for the cohort's persons,
    then ``(1, mask, cell key, unkeyed)`` per by-person mask and ``(2, mask, cell key, unkeyed)`` per by-event
    mask (``unkeyed``: persons, or events of persons, without a record key; see ``event_masks`` for the key of a
    group of events)."""

    statements: list[Statement]
    cleanup: list[Statement]
    setup: list[Statement] = field(default_factory=list)  # results DDL, idempotent; also at the head of statements
    rule_names: list[str] = field(default_factory=list)
    readback: Statement | None = None
    key_readback: Statement | None = None
    #: Compiled with ``count_only``: nothing is written outside the temp tables. ``count_readback`` (run after
    #: ``statements``, before ``cleanup``) returns every count and its cell key in one round trip:
    #: ``(0, 0, persons, key, unkeyed)``, then ``(1, mask, persons, key, unkeyed)`` per by-person inclusion mask
    #: and ``(2, mask, events, key, unkeyed)`` per by-event mask (key NULL and unkeyed 0 without a record-key
    #: table). ``cohort_select`` selects the cohort's rows
    #: (``subject_id, cohort_start_date, cohort_end_date``, censor window applied) from the temp tables, for
    #: aggregates computed in the same transaction (demographics).
    count_only: bool = False
    count_readback: Statement | None = None
    cohort_select: Statement | None = None
    #: The count path in one statement, where the engine needs no temp table for it (DuckDB): the temp tables'
    #: queries as materialized CTEs of ``count_readback``, same rows. None where statements are needed.
    count_statement: Statement | None = None


def results_setup(dialect: str, results_schema: str) -> list[Statement]:
    """``CREATE SCHEMA/TABLE/INDEX IF NOT EXISTS`` for the results tables."""
    sql_dialect = dialect_for(dialect)
    schema = sql_dialect.quote_schema(results_schema)
    out: list[Statement] = [(sql_dialect.create_schema(schema), {})]
    out += [(sql_dialect.results_table(schema, name, cols), {}) for name, cols in RESULTS_TABLES.items()]
    out += [(sql, {}) for sql in sql_dialect.results_indexes(schema)]
    return out


def results_present(dialect: str, results_schema: str) -> Statement | None:
    """A one-row query, true when the results tables (and indexes) of ``results_schema`` exist; None when the
    engine has no such check and ``results_setup`` is simply run."""
    sql_dialect = dialect_for(dialect)
    query = sql_dialect.results_present(sql_dialect.quote_schema(results_schema))
    return None if query is None else (query, {})


def codesets_query(
    expression: CohortExpression | dict[str, Any] | str, *, dialect: str, vocabulary_schema: str
) -> Statement:
    """The query resolving every concept set of ``expression``: rows ``(codeset_id, concept_id)``. Its answer,
    grouped by codeset, is what ``compile_cohort`` takes as ``codeset_values``."""
    if not isinstance(expression, CohortExpression):
        expression = parse_expression(expression)
    sql_dialect = dialect_for(dialect)
    quoted = sql_dialect.quote_schema(vocabulary_schema)
    ctx = Context(dialect=sql_dialect, cdm=quoted, vocabulary=quoted, results=quoted)
    return ctx.statement(codesets_statement(ctx, expression))


def compile_cohort(
    expression: CohortExpression | dict[str, Any] | str,
    *,
    dialect: str,
    cdm_schema: str,
    vocabulary_schema: str,
    results_schema: str,
    cohort_id: int,
    codeset_values: Mapping[int, Sequence[int]] | None = None,
    record_keys: str | None = None,
    count_only: bool = False,
) -> CompiledCohort:
    """Compile ``expression`` for engine ``dialect`` ("postgresql" | "duckdb").

    ``count_only``: the count path. The same statements find the cohort in temp tables, but nothing is written to
    the results schema (no DDL, no lock, no delete or insert there): the counts, the by-person inclusion masks and
    their cell keys are read from the temp tables (``CompiledCohort.count_readback``). Rows and counts come from
    the same statements, so what proves one proves the other.

    ``record_keys``: the site's record-key table (SQL name, ``disclosure.record_keys``); when given, the compiled
    cohort also reads the cell key of each count back (``CompiledCohort.key_readback``). The statements that
    write the cohort are the same either way.

    ``codeset_values``: the concept ids of each concept set, as ``codesets_query`` resolved them on the same
    database; the statements then carry them as bound arrays instead of resolving them again.

    Raises ``ExpressionError`` for an invalid or unsupported expression, ``ValueError`` for a bad schema name.
    """
    if not isinstance(expression, CohortExpression):
        expression = parse_expression(expression)
    if isinstance(cohort_id, bool) or not isinstance(cohort_id, int) or not 0 <= cohort_id < 2**63:
        raise ValueError("cohort_id must be a non-negative 64-bit integer")
    sql_dialect = dialect_for(dialect)
    ctx = Context(
        dialect=sql_dialect,
        cdm=sql_dialect.quote_schema(cdm_schema),
        vocabulary=sql_dialect.quote_schema(vocabulary_schema),
        results=sql_dialect.quote_schema(results_schema),
    )
    if codeset_values is not None:
        known = {cs.id for cs in expression.concept_sets}
        ctx.codeset_values = {
            int(codeset): [int(concept) for concept in concepts]
            for codeset, concepts in codeset_values.items()
            if codeset in known
        }
    return _CohortCompiler(ctx, expression, cohort_id, record_keys, count_only=count_only).compile()


class _CohortCompiler:
    def __init__(
        self,
        ctx: Context,
        expression: CohortExpression,
        cohort_id: int,
        record_keys: str | None = None,
        *,
        count_only: bool = False,
    ) -> None:
        self.ctx = ctx
        self.e = expression
        self.cohort_id = cohort_id
        self.record_keys = record_keys
        self.count_only = count_only
        # (name, select) of each temp table, in the order of the statements.
        self.temps: list[tuple[str, str]] = []
        # CTEs made temp tables of their own (``Dialect.stage_ctes``), dropped with the temp tables.
        self.staged_ctes: list[str] = []
        # Event relations with one row per (person_id, event_id): an EXISTS semi-join may replace GROUP BY there.
        self.unique_events: set[str] = {QUALIFIED_EVENTS}
        # The entry events' statement where the dialect stages them (set by ``qualified_events``).
        self.entry_events: str | None = None

    # ---- criteria with nested correlated criteria -------------------------------------------------------------
    def criterion_sql(self, criterion: Criterion, extras: Sequence[str] = ()) -> str:
        query = domain_sql(self.ctx, criterion, extras)
        group = criterion.correlated
        if group is None or group.is_empty():
            return query
        # The criterion's events, each with its observation period, become the index events of the nested group.
        events = self.ctx.add_cte("crit", query)
        indexed = self.ctx.add_cte(
            "crit_ev",
            "SELECT Q.person_id, Q.event_id, Q.start_date, Q.end_date, Q.visit_occurrence_id, "
            "OP.observation_period_start_date AS op_start_date, OP.observation_period_end_date AS op_end_date\n"
            f"FROM {events} Q\nJOIN {self.ctx.table('observation_period')} OP ON Q.person_id = OP.person_id "
            "AND OP.observation_period_start_date <= Q.start_date AND OP.observation_period_end_date >= Q.start_date",
        )
        matches = self.group_sql(group, indexed)
        return (
            f"SELECT PE.* FROM {events} PE\nJOIN (\n{matches}\n) AC "
            "ON AC.person_id = PE.person_id AND AC.event_id = PE.event_id"
        )

    # ---- groups ------------------------------------------------------------------------------------------------
    def group_sql(self, group: CriteriaGroup, events: str) -> str:
        """``(person_id, event_id)`` of the events of ``events`` that meet ``group`` (one row per event)."""
        if group.is_empty():
            return f"SELECT person_id, event_id FROM {events}"
        members: list[str] = []
        for cc in group.criteria_list:
            members.append(self.correlated_sql(cc, events, len(members)))
        for dc in group.demographic_criteria_list:
            members.append(self.demographic_sql(dc, events, len(members)))
        for sub in group.groups:
            members.append(
                f"SELECT {len(members)} AS index_id, person_id, event_id FROM (\n{self.group_sql(sub, events)}\n) G"
            )
        if len(members) == 1 and (group.type in ("ALL", "ANY") or (group.type == "AT_LEAST" and group.count == 1)):
            # One member, met at least once: its rows (one per event) are the group's; nothing to count.
            return members[0]
        join = "INNER"
        if group.type == "ALL":
            having = f"= {lit(len(members))}"
        elif group.type == "ANY":
            having = "> 0"
        else:
            assert group.count is not None
            if group.type == "AT_LEAST":
                having = f">= {lit(group.count)}"
            else:
                having = f"<= {lit(group.count)}"
                join = "LEFT"
            if group.count == 0:
                join = "LEFT"
        union = "\nUNION ALL\n".join(members)
        if join == "INNER" and events in self.unique_events:
            # Every member's rows are events of ``events``, one per event, and ``events`` holds each event once:
            # counting them per event needs no join back to the events (Circe's inner join gives the same rows).
            return (
                f"SELECT CQ.person_id, CQ.event_id FROM (\n{union}\n) CQ\n"
                f"GROUP BY CQ.person_id, CQ.event_id\nHAVING COUNT(CQ.index_id) {having}"
            )
        return (
            f"SELECT E.person_id, E.event_id FROM {events} E\n{join} JOIN (\n{union}\n) CQ "
            "ON E.person_id = CQ.person_id AND E.event_id = CQ.event_id\n"
            f"GROUP BY E.person_id, E.event_id\nHAVING COUNT(CQ.index_id) {having}"
        )

    def windowed_sql(self, cc: CorrelatedCriteria, events: str, extras: Sequence[str]) -> str:
        query, condition = self.window(cc, extras)
        columns = "".join(f", A.{COUNT_COLUMNS[c]}" for c in extras)
        return f"SELECT P.person_id, P.event_id{columns} FROM {events} P\nJOIN (\n{query}\n) A ON {condition}"

    def window(self, cc: CorrelatedCriteria, extras: Sequence[str]) -> tuple[str, str]:
        """The criterion's events ``A`` and the condition relating them to an index event ``P``."""
        d = self.ctx.dialect
        query = self.criterion_sql(cc.criteria, extras)
        check_op = not cc.ignore_observation_period
        clauses: list[str] = []
        if check_op:
            clauses.append("A.start_date >= P.op_start_date AND A.start_date <= P.op_end_date")

        def point(endpoint: Endpoint, index: str) -> str | None:
            if endpoint.days is not None:
                return d.date_add(index, endpoint.coeff * endpoint.days)
            if check_op:
                return "P.op_start_date" if endpoint.coeff == -1 else "P.op_end_date"
            return None

        start = cc.start_window
        index = "P.end_date" if start.use_index_end else "P.start_date"
        event = "A.end_date" if start.use_event_end else "A.start_date"
        for endpoint, op in ((start.start, ">="), (start.end, "<=")):
            bound = point(endpoint, index)
            if bound is not None:
                clauses.append(f"{event} {op} {bound}")
        end = cc.end_window
        if end is not None:
            index = "P.end_date" if end.use_index_end else "P.start_date"
            # As Circe: an end window compares the event's end date unless UseEventEnd is explicitly false.
            event = "A.end_date" if end.use_event_end is None or end.use_event_end else "A.start_date"
            for endpoint, op in ((end.start, ">="), (end.end, "<=")):
                bound = point(endpoint, index)
                if bound is not None:
                    clauses.append(f"{event} {op} {bound}")
        if cc.restrict_visit:
            clauses.append("A.visit_occurrence_id = P.visit_occurrence_id")
        return query, " AND ".join(["A.person_id = P.person_id", *clauses])

    def exists_sql(self, cc: CorrelatedCriteria, events: str, index_id: int, *, negate: bool = False) -> str:
        """Index events of ``events`` with at least one event of ``cc`` in the window (``negate``: with none): a
        semi-join (anti-join), so each index event stops at its first match and nothing is grouped. With a
        distinct count, COUNT(DISTINCT col) >= 1 means a match whose column is not NULL."""
        occ = cc.occurrence
        extras = [occ.count_column or "DOMAIN_CONCEPT"] if occ.is_distinct else []
        query, condition = self.window(cc, extras)
        if extras:
            condition += f" AND A.{COUNT_COLUMNS[extras[0]]} IS NOT NULL"
        if not self.ctx.dialect.correlated_exists:
            # Pairs of (index event, match) on the person, then the distinct events that have one (EXCEPT: none).
            matched = f"SELECT P.person_id, P.event_id FROM {events} P\nJOIN (\n{query}\n) A ON {condition}"
            if negate:
                matched = f"SELECT person_id, event_id FROM {events}\nEXCEPT\n{matched}"
            return f"SELECT DISTINCT {lit(index_id)} AS index_id, person_id, event_id FROM (\n{matched}\n) M"
        # Where ``events`` may hold a (person_id, event_id) twice, DISTINCT keeps one row per event as GROUP BY did.
        distinct = "" if events in self.unique_events else "DISTINCT "
        return (
            f"SELECT {distinct}{lit(index_id)} AS index_id, P.person_id, P.event_id FROM {events} P\n"
            f"WHERE {'NOT ' if negate else ''}EXISTS (SELECT 1 FROM (\n{query}\n) A WHERE {condition})"
        )

    def correlated_sql(self, cc: CorrelatedCriteria, events: str, index_id: int) -> str:
        occ = cc.occurrence
        extras: list[str] = []
        count_expr = "cc.event_id"
        if occ.is_distinct:
            column = occ.count_column or "DOMAIN_CONCEPT"
            extras.append(column)
            count_expr = f"DISTINCT cc.{COUNT_COLUMNS[column]}"
        if occ.type == Occurrence.AT_LEAST and occ.count == 1:
            # "At least one" is a semi-join: each index event is kept at its first match, with no grouping.
            return self.exists_sql(cc, events, index_id)
        if occ.type in (Occurrence.EXACTLY, Occurrence.AT_MOST) and occ.count == 0:
            # "None" is an anti-join (Circe: a LEFT JOIN grouped with HAVING COUNT(...) = 0 / <= 0).
            return self.exists_sql(cc, events, index_id, negate=True)
        windowed = self.windowed_sql(cc, events, extras)
        operator = {Occurrence.EXACTLY: "=", Occurrence.AT_MOST: "<=", Occurrence.AT_LEAST: ">="}[occ.type]
        having = f"HAVING COUNT({count_expr}) {operator} {lit(occ.count)}"
        if occ.type == Occurrence.AT_MOST or occ.count == 0:
            # Events with no match at all count 0, so they must come from the index events themselves.
            return (
                f"SELECT {lit(index_id)} AS index_id, p.person_id, p.event_id FROM {events} p\n"
                f"LEFT JOIN (\n{windowed}\n) cc ON p.person_id = cc.person_id AND p.event_id = cc.event_id\n"
                f"GROUP BY p.person_id, p.event_id\n{having}"
            )
        return (
            f"SELECT {lit(index_id)} AS index_id, cc.person_id, cc.event_id FROM (\n{windowed}\n) cc\n"
            f"GROUP BY cc.person_id, cc.event_id\n{having}"
        )

    def demographic_sql(self, dc: DemographicCriteria, events: str, index_id: int) -> str:
        d = self.ctx.dialect
        wheres: list[str] = []
        if dc.age is not None:
            wheres.append(numeric_clause(self.ctx, f"{d.year('E.start_date')} - P.year_of_birth", dc.age))
        for concepts, selection, column in (
            (dc.gender, dc.gender_cs, "P.gender_concept_id"),
            (dc.race, dc.race_cs, "P.race_concept_id"),
            (dc.ethnicity, dc.ethnicity_cs, "P.ethnicity_concept_id"),
        ):
            if concepts:
                wheres.append(concepts_in(column, concepts))
            if selection is not None:
                wheres.append(selection_clause(column, selection))
        if dc.occurrence_start_date is not None:
            wheres.append(date_clause(self.ctx, "E.start_date", dc.occurrence_start_date))
        if dc.occurrence_end_date is not None:
            wheres.append(date_clause(self.ctx, "E.end_date", dc.occurrence_end_date))
        where = ("\nWHERE " + " AND ".join(wheres)) if wheres else ""
        return (
            f"SELECT {lit(index_id)} AS index_id, E.person_id, E.event_id FROM {events} E\n"
            f"JOIN {self.ctx.table('person')} P ON P.person_id = E.person_id{where}\n"
            "GROUP BY E.person_id, E.event_id"
        )

    # ---- statements ----------------------------------------------------------------------------------------------
    def qualified_events(self) -> str:
        e, ctx = self.e, self.ctx
        pc = e.primary_criteria
        entries = "\nUNION ALL\n".join(self.criterion_sql(c) for c in pc.criteria_list)
        if ctx.dialect.stage_entry_events:
            # Written (with the CTEs of the criteria) to a temp table of their own by the statement before.
            self.entry_events = with_ctes(ctx.take_ctes(), entries)
            source = ENTRY_EVENTS
        else:
            source = f"(\n{entries}\n)"
        order = "DESC" if pc.limit == "LAST" else "ASC"
        limit = "" if pc.limit == "ALL" else "\nWHERE P.ordinal = 1"
        primary = ctx.add_cte(
            "primary_events",
            "SELECT P.ordinal AS event_id, P.person_id, P.start_date, P.end_date, P.op_start_date, P.op_end_date, "
            "P.visit_occurrence_id FROM (\n"
            "SELECT E.person_id, E.start_date, E.end_date, "
            f"row_number() OVER (PARTITION BY E.person_id ORDER BY E.sort_date {order}, E.event_id) AS ordinal, "
            "OP.observation_period_start_date AS op_start_date, OP.observation_period_end_date AS op_end_date, "
            "CAST(E.visit_occurrence_id AS BIGINT) AS visit_occurrence_id\n"
            f"FROM {source} E\nJOIN {ctx.table('observation_period')} OP ON E.person_id = OP.person_id "
            "AND E.start_date >= OP.observation_period_start_date AND E.start_date <= OP.observation_period_end_date\n"
            f"WHERE {ctx.dialect.date_add('OP.observation_period_start_date', pc.prior_days)} <= E.start_date "
            f"AND {ctx.dialect.date_add('E.start_date', pc.post_days)} <= OP.observation_period_end_date\n"
            f") P{limit}",
        )
        self.unique_events.add(primary)  # event_id is the per-person ordinal
        join = ""
        if e.additional_criteria is not None and not e.additional_criteria.is_empty():
            matches = self.group_sql(e.additional_criteria, primary)
            join = f"\nJOIN (\n{matches}\n) AC ON AC.person_id = pe.person_id AND AC.event_id = pe.event_id"
        columns = "pe.event_id, pe.person_id, pe.start_date, pe.end_date, pe.op_start_date, pe.op_end_date, "
        columns += "pe.visit_occurrence_id"
        # As Circe: the qualified limit applies only when the expression has an AdditionalCriteria object; after a
        # First/Last entry limit every person has one event left, so there is nothing to rank.
        if e.has_additional_criteria and e.qualified_limit != "ALL" and pc.limit == "ALL":
            order = "DESC" if e.qualified_limit == "LAST" else "ASC"
            select = (
                "SELECT event_id, person_id, start_date, end_date, op_start_date, op_end_date, visit_occurrence_id\n"
                f"FROM (\nSELECT {columns}, row_number() OVER (PARTITION BY pe.person_id "
                f"ORDER BY pe.start_date {order}, pe.event_id) AS ordinal\n"
                f"FROM {primary} pe{join}\n) QE\nWHERE QE.ordinal = 1"
            )
        else:
            select = f"SELECT {columns}\nFROM {primary} pe{join}"
        return with_ctes(ctx.take_ctes(), select)

    def inclusion_events(self) -> str:
        """One row per qualified event with its inclusion-rule mask, how many rules it meets and the first of them:
        each rule's matches (one row per event) are left-joined once, so neither the final cohort nor the
        statistics group the events again."""
        joins, flags = [], []
        for i, rule in enumerate(self.e.inclusion_rules):
            matches = self.group_sql(rule.expression, QUALIFIED_EVENTS)
            alias = f"R{lit(i)}"
            joins.append(
                f"LEFT JOIN (\n{matches}\n) {alias} "
                f"ON {alias}.person_id = Q.person_id AND {alias}.event_id = Q.event_id"
            )
            flags.append((i, f"{alias}.event_id IS NOT NULL"))
        mask = " + ".join(f"CASE WHEN {met} THEN {lit(1 << i)} ELSE 0 END" for i, met in flags)
        count = " + ".join(f"CASE WHEN {met} THEN 1 ELSE 0 END" for _, met in flags)
        first = " ".join(f"WHEN {met} THEN {lit(i)}" for i, met in flags)
        select = (
            "SELECT Q.event_id, Q.person_id, Q.start_date, Q.end_date, Q.op_start_date, Q.op_end_date, "
            f"CAST({mask} AS BIGINT) AS mask, CAST({count} AS INTEGER) AS rule_count, "
            f"CAST(CASE {first} ELSE 0 END AS INTEGER) AS min_rule_id\n"
            f"FROM {QUALIFIED_EVENTS} Q\n" + "\n".join(joins)
        )
        return with_ctes(self.ctx.take_ctes(), select)

    def one_event_per_person(self) -> bool:
        """At most one qualified event per person: a First/Last limit on the entry or the qualified events."""
        e = self.e
        return e.primary_criteria.limit != "ALL" or (e.has_additional_criteria and e.qualified_limit != "ALL")

    def era_sql(self, rows: str, pad: int, unpad: int, *, ends_after_starts: bool = False) -> str:
        """Circe's era builder: intervals of ``rows`` (person_id, start_date, end_date) with their ends moved
        ``pad`` days later are merged where they overlap; each era ends ``unpad`` days before its last padded end.

        ``ends_after_starts``: no row of ``rows`` ends before it starts. Then at most one row of a person's day can
        open an era (any later row of that day follows a row ending on or after the day), so numbering the eras
        over whole days (a RANGE frame ordered by the start only) gives every row Circe's number, with the same
        order as the first window: one sort instead of two."""
        d = self.ctx.dialect
        numbering = (
            "ORDER BY start_date)"
            if ends_after_starts
            else "ORDER BY start_date, is_start DESC ROWS UNBOUNDED PRECEDING)"
        )
        return (
            "SELECT person_id, MIN(start_date) AS start_date, "
            f"{d.date_add('MAX(end_date)', -unpad)} AS end_date FROM (\n"
            f"SELECT person_id, start_date, end_date, SUM(is_start) OVER (PARTITION BY person_id {numbering} "
            "AS group_idx FROM (\n"
            "SELECT person_id, start_date, end_date, CASE WHEN MAX(end_date) OVER (PARTITION BY person_id "
            "ORDER BY start_date ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) >= start_date THEN 0 ELSE 1 END "
            "AS is_start FROM (\n"
            f"SELECT person_id, start_date, {d.date_add('end_date', pad)} AS end_date FROM {rows}\n"
            ") CR\n) ST\n) GR\nGROUP BY person_id, group_idx"
        )

    def final_cohort(self) -> str:
        e, ctx, d = self.e, self.ctx, self.ctx.dialect
        rules = len(e.inclusion_rules)
        # Events meeting every rule (their mask has all rules' bits), in at most one row per person with a limit.
        where = f"\nWHERE MG.mask = {lit((1 << rules) - 1)}" if rules else ""
        source = INCLUSION_EVENTS if rules else QUALIFIED_EVENTS
        events = f"SELECT event_id, person_id, start_date, end_date, op_start_date, op_end_date FROM {source} MG{where}"
        # A plain filter of an analyzed temp table: expanded where it is used, the joins of censoring and custom
        # eras see that table's statistics (a materialized CTE has none, and PostgreSQL then hashed 142,050 drug
        # exposures rather than h04's 4,790 events).
        inline: tuple[str, str] | None = ("included_events", d.not_materialized)
        if e.expression_limit != "ALL" and not self.one_event_per_person():
            inline = None
            order = "DESC" if e.expression_limit == "LAST" else "ASC"
            events = (
                "SELECT event_id, person_id, start_date, end_date, op_start_date, op_end_date FROM (\n"
                "SELECT MG.event_id, MG.person_id, MG.start_date, MG.end_date, MG.op_start_date, MG.op_end_date, "
                f"row_number() OVER (PARTITION BY MG.person_id ORDER BY MG.start_date {order}, MG.event_id) AS ordinal "
                f"FROM (\n{events}\n) MG\n) R\nWHERE R.ordinal = 1"
            )
        ctx.ctes.append(("included_events", events))
        ends: list[str] = []
        strategy = e.end_strategy
        if not isinstance(strategy, DateOffsetStrategy):
            ends.append("SELECT event_id, person_id, start_date, op_end_date AS end_date FROM included_events")
        if isinstance(strategy, DateOffsetStrategy):
            column = "end_date" if strategy.date_field == "EndDate" else "start_date"
            shifted = d.date_add(column, strategy.offset)
            ends.append(
                f"SELECT event_id, person_id, start_date, CASE WHEN {shifted} > op_end_date THEN op_end_date "
                f"ELSE {shifted} END "
                "AS end_date FROM included_events"
            )
        elif isinstance(strategy, CustomEraStrategy):
            ends.append(self.custom_era_ends(strategy))
        for criterion in e.censoring_criteria:
            ends.append(
                "SELECT i.event_id, i.person_id, i.start_date, MIN(C.start_date) AS end_date FROM included_events i\n"
                f"JOIN (\n{self.criterion_sql(criterion)}\n) C ON C.person_id = i.person_id "
                "AND C.start_date >= i.start_date AND C.start_date <= i.op_end_date\n"
                "GROUP BY i.event_id, i.person_id, i.start_date"
            )
        ctx.ctes.append(("cohort_ends", "\nUNION ALL\n".join(ends)))
        # Each end candidate carries its event's start date, so the earliest end on or after the start is one
        # GROUP BY (Circe: a join back to the events and row_number() = 1, which PostgreSQL mis-estimates).
        if len(ends) == 1 and not isinstance(strategy, CustomEraStrategy):
            rows = "SELECT person_id, start_date, end_date FROM cohort_ends WHERE end_date >= start_date"
        else:
            rows = (
                "SELECT person_id, start_date, MIN(end_date) AS end_date FROM cohort_ends "
                "WHERE end_date >= start_date GROUP BY person_id, event_id, start_date"
            )
        if e.expression_limit != "ALL" or self.one_event_per_person():
            # One included event, hence one cohort row, per person: the era collapse would give each row back.
            return with_ctes(ctx.take_ctes(), rows, inline=inline)
        ctx.ctes.append(("cohort_rows", rows))
        # The cohort rows end on or after their start (the WHERE above), so the eras are numbered by day.
        eras = self.era_sql("cohort_rows", e.era_pad, e.era_pad, ends_after_starts=True)
        return with_ctes(ctx.take_ctes(), eras, inline=inline)

    def custom_era_ends(self, strategy: CustomEraStrategy) -> str:
        ctx = self.ctx
        if strategy.days_supply_override is not None:
            end = f"(de.drug_exposure_start_date + {lit(strategy.days_supply_override)})"
        else:
            end = (
                "COALESCE(de.drug_exposure_end_date, (de.drug_exposure_start_date + CAST(de.days_supply AS INTEGER)), "
                "(de.drug_exposure_start_date + 1))"
            )
        exposures = "\nUNION ALL\n".join(
            f"SELECT de.person_id, de.drug_exposure_start_date AS start_date, {end} AS end_date\n"
            f"FROM {ctx.table('drug_exposure')} de\n"
            "JOIN (SELECT DISTINCT person_id FROM included_events) pp ON de.person_id = pp.person_id\n"
            f"WHERE {ctx.in_codeset(f'de.{column}', strategy.drug_codeset_id)}"
            for column in ("drug_concept_id", "drug_source_concept_id")
        )
        ctx.ctes.append(("drug_target", exposures))
        # As Circe: exposures are padded by gap + offset but eras give back only the gap, so the offset remains.
        eras = self.era_sql("drug_target", strategy.gap_days + strategy.offset, strategy.gap_days)
        ctx.ctes.append(("drug_eras", eras))
        return (
            "SELECT et.event_id, et.person_id, et.start_date, ERAS.end_date FROM included_events et\n"
            "JOIN drug_eras ERAS ON ERAS.person_id = et.person_id\n"
            "WHERE et.start_date BETWEEN ERAS.start_date AND ERAS.end_date"
        )

    def cohort_rows(self) -> tuple[str, str, str]:
        """Start, end and WHERE of the cohort rows of the final cohort table (censor window applied)."""
        e, ctx = self.e, self.ctx
        start, end, where = "start_date", "end_date", ""
        window = e.censor_window
        if window is not None and (window.start_date is not None or window.end_date is not None):
            if window.start_date is not None:
                bound = ctx.bind(window.start_date)
                start = f"CASE WHEN start_date > {bound} THEN start_date ELSE {bound} END"
            if window.end_date is not None:
                bound = ctx.bind(window.end_date)
                end = f"CASE WHEN end_date < {bound} THEN end_date ELSE {bound} END"
            where = f"\nWHERE {start} <= {end}"
        return start, end, where

    def cohort_insert(self, start: str, end: str, where: str) -> str:
        """The SELECT of the cohort's rows for ``Dialect.replace_rows`` (cohort id first where the dialect wants it)."""
        head = self.ctx.dialect.cohort_id_column(lit(self.cohort_id))
        return f"SELECT {head}person_id, {start}, {end} FROM {FINAL_COHORT}{where}"

    def stats_insert(self) -> str:
        """The SELECT of the inclusion-rule masks of both modes for ``Dialect.replace_rows``."""
        head = self.ctx.dialect.cohort_id_column(lit(self.cohort_id))
        if not self.e.inclusion_rules:
            # Every mask is 0: the events, and the persons (each one's best event), are counted without ranking.
            return (
                f"SELECT {head}CAST(0 AS BIGINT), COUNT(*), 0 FROM {QUALIFIED_EVENTS} "
                "HAVING COUNT(*) > 0\nUNION ALL\n"
                f"SELECT {head}CAST(0 AS BIGINT), COUNT(DISTINCT person_id), 1 "
                f"FROM {QUALIFIED_EVENTS} HAVING COUNT(*) > 0"
            )
        if self.one_event_per_person():
            # Each person's best event is their only one: the by-person masks are the by-event masks.
            return (
                f"SELECT * FROM (\nWITH counted AS (SELECT mask, COUNT(*) AS n FROM {INCLUSION_EVENTS} GROUP BY mask)\n"
                f"SELECT {head}mask, n, 0 FROM counted\nUNION ALL\n"
                f"SELECT {head}mask, n, 1 FROM counted\n) S"
            )
        return (
            f"SELECT * FROM (\nWITH masks AS (SELECT * FROM {INCLUSION_EVENTS} M),\n"
            "best AS (\nSELECT mask FROM (SELECT mask, row_number() OVER (PARTITION BY person_id "
            "ORDER BY rule_count DESC, min_rule_id ASC, start_date ASC, event_id) AS rank_value FROM masks) R "
            "WHERE rank_value = 1\n)\n"
            f"SELECT {head}mask, COUNT(*), 0 FROM masks GROUP BY mask\nUNION ALL\n"
            f"SELECT {head}mask, COUNT(*), 1 FROM best GROUP BY mask\n) S"
        )

    def best_masks(self) -> str:
        """One row per person of the by-person inclusion statistics: ``person_id`` and the mask of the person's
        best event (the same ranking as ``stats_insert``)."""
        if not self.e.inclusion_rules:
            return f"SELECT DISTINCT person_id, CAST(0 AS BIGINT) AS mask FROM {QUALIFIED_EVENTS}"
        if self.one_event_per_person():
            return f"SELECT person_id, mask FROM {INCLUSION_EVENTS}"
        return (
            "SELECT person_id, mask FROM (SELECT person_id, mask, row_number() OVER (PARTITION BY person_id "
            "ORDER BY rule_count DESC, min_rule_id ASC, start_date ASC, event_id) AS rank_value "
            f"FROM {INCLUSION_EVENTS}) R WHERE rank_value = 1"
        )

    def event_masks(self) -> str:
        """One row per qualified event of the by-event inclusion statistics (Circe's mode 0): ``person_id`` and
        the event's mask (the rows ``stats_insert`` counts for mode 0).

        The cell key of a group of events is the sum, over its events, of the record key of each event's person,
        modulo 256: an event is a record whose key is its person's, so a person with three events in the group
        adds their key three times. It is as deterministic as a person cell's key (the same events, the same key,
        the same released number: asking again gains nothing) and moves with every event that joins or leaves
        the group (a person's key is 1..255, never 0), so two groups that differ by a few events carry unrelated
        noise. Nothing but person ids is needed, so it comes from the same record-key table in the same query;
        no event id or person id leaves the site."""
        if not self.e.inclusion_rules:
            return f"SELECT person_id, CAST(0 AS BIGINT) AS mask FROM {QUALIFIED_EVENTS}"
        return f"SELECT person_id, mask FROM {INCLUSION_EVENTS}"

    def key_readback(self, where: str) -> str:
        """The cell keys of the counts ``readback`` returns: the sum of the persons' record keys modulo 256
        (for the by-event masks, of the events' persons, ``event_masks``), from the same temp tables in the same
        transaction, so that no person id leaves the site."""
        key, unkeyed, join = self.key_columns()
        return (
            f"SELECT 0, CAST(0 AS BIGINT), {key}, {unkeyed}\n"
            f"FROM (SELECT DISTINCT person_id FROM {FINAL_COHORT}{where}) P{join}\nUNION ALL\n"
            f"SELECT 1, P.mask, {key}, {unkeyed}\nFROM ({self.best_masks()}) P{join} GROUP BY P.mask\nUNION ALL\n"
            f"SELECT 2, P.mask, {key}, {unkeyed}\nFROM ({self.event_masks()}) P{join} GROUP BY P.mask"
        )

    def count_readback(self, where: str) -> str:
        """Every count of the count path with its cell key, in one statement over the temp tables: the cohort's
        persons, then the persons of each by-person inclusion mask (Circe's mode 1) and the events of each
        by-event mask (mode 0), as ``stats_insert`` writes them."""
        key, unkeyed, join = self.key_columns()
        return (
            f"SELECT 0, CAST(0 AS BIGINT), COUNT(*), {key}, {unkeyed}\n"
            f"FROM (SELECT DISTINCT person_id FROM {FINAL_COHORT}{where}) P{join}\nUNION ALL\n"
            f"SELECT 1, P.mask, COUNT(*), {key}, {unkeyed}\nFROM ({self.best_masks()}) P{join} GROUP BY P.mask\n"
            f"UNION ALL\nSELECT 2, P.mask, COUNT(*), {key}, {unkeyed}\nFROM ({self.event_masks()}) P{join} "
            "GROUP BY P.mask"
        )

    def key_columns(self) -> tuple[str, str, str]:
        """The cell key and unkeyed-person columns of a group of persons ``P``, and the join they need (with
        no record-key table: NULL keys, none unkeyed, no join)."""
        if self.record_keys is None:
            return "CAST(NULL AS INTEGER)", "0", ""
        return (
            "MOD(SUM(COALESCE(K.record_key, 0)), 256)",
            "SUM(CASE WHEN K.record_key IS NULL THEN 1 ELSE 0 END)",
            f" LEFT JOIN {self.record_keys} K ON K.person_id = P.person_id",
        )

    def codesets(self) -> str:
        """The SELECT of the codesets temp table: resolved here, or the ids resolved before (bound arrays)."""
        values = self.ctx.codeset_values
        if values is None:
            return codesets_statement(self.ctx, self.e)
        parts = [
            f"SELECT CAST({lit(cs.id)} AS INTEGER) AS codeset_id, "
            f"{self.ctx.dialect.unnest_ids(self.ctx.codeset_array(cs.id))} AS concept_id"
            for cs in self.e.concept_sets
        ]
        if not parts:
            return "SELECT CAST(NULL AS INTEGER) AS codeset_id, CAST(NULL AS BIGINT) AS concept_id WHERE 1 = 0"
        return "\nUNION ALL\n".join(parts)

    def compile(self) -> CompiledCohort:
        ctx = self.ctx
        d = ctx.dialect
        setup = [] if self.count_only else results_setup(d.name, _unquote(ctx.results))
        statements: list[Statement] = list(setup)
        statements += [(sql, {}) for sql in d.transaction_settings()]
        statements += [(sql, {}) for sql in d.drop_temp_tables(TEMP_TABLES)]
        codesets_at = len(statements)
        statements += self.temp(CODESETS, self.codesets())
        # No statistics for the codesets: every statement reads them through an array or IN list computed once.
        qualified = self.qualified_events()
        # Nested loops stay forbidden wherever a row estimate comes after a ranking or HAVING filter; the join of
        # the staged (analyzed) entry events to the observation periods is not such a place.
        additional = self.e.additional_criteria
        loops = self.entry_events is not None and (additional is None or additional.is_empty())
        if self.entry_events is not None:
            # Not analyzed: the planner sizes a never-analyzed table by its pages, which is the row count it needs.
            statements += self.temp(ENTRY_EVENTS, self.entry_events)
        statements += [(sql, {}) for sql in d.nested_loops(True)] if loops else []
        statements += self.temp(QUALIFIED_EVENTS, qualified)
        statements += [(sql, {}) for sql in d.nested_loops(False)] if loops else []
        statements += [(sql, {}) for sql in d.analyze(QUALIFIED_EVENTS, ("person_id", "event_id"))]
        if self.e.inclusion_rules:
            # Read by scans and a window only (never joined), so it needs no statistics either.
            statements += self.temp(INCLUSION_EVENTS, self.inclusion_events())
        statements += self.temp(FINAL_COHORT, self.final_cohort())
        start, end, where = self.cohort_rows()
        if self.count_only:
            return self.counted(statements, codesets_at, start, end, where)
        cid = lit(self.cohort_id)
        statements += [(sql, {}) for sql in d.lock_cohort(self.cohort_id)]
        for table, columns, select in (
            ("cohort", "subject_id, cohort_start_date, cohort_end_date", self.cohort_insert(start, end, where)),
            ("cohort_inclusion_result", "inclusion_rule_mask, person_count, mode_id", self.stats_insert()),
        ):
            statements += [ctx.statement(sql) for sql in d.replace_rows(f"{ctx.results}.{table}", cid, columns, select)]
        self.drop_unread_codesets(statements, codesets_at)
        cleanup: list[Statement] = [(sql, {}) for sql in d.cleanup_temp_tables(self.temp_table_names())]
        # The counts come from the final cohort temp table (same rows as the insert), the by-person (mode 1) and
        # by-event (mode 0) masks from the few rows just written: one round trip, and no scan of the results cohort
        # table.
        readback = ctx.statement(
            f"SELECT 0, COUNT(DISTINCT person_id), COUNT(*) FROM {FINAL_COHORT}{where}\nUNION ALL\n"
            f"SELECT CASE WHEN mode_id = 1 THEN 1 ELSE 2 END, inclusion_rule_mask, person_count "
            f"FROM {ctx.results}.cohort_inclusion_result WHERE cohort_definition_id = {cid} AND mode_id IN (0, 1)"
        )
        key_readback = ctx.statement(self.key_readback(where)) if self.record_keys is not None else None
        if ctx.ctes:  # pragma: no cover - every statement takes its CTEs
            raise AssertionError("CTEs left over")
        return CompiledCohort(
            statements,
            cleanup,
            setup,
            [rule.name for rule in self.e.inclusion_rules],
            readback=readback,
            key_readback=key_readback,
        )

    def temp(self, name: str, select: str) -> list[Statement]:
        """The statements creating temp table ``name`` from ``select``; the pair is kept for the one-statement
        count (``counted``). Where the dialect stages CTEs (Spark), each CTE of ``select`` is a temp table of its
        own first, under its compile-unique name, and dropped with the others at the end."""
        d = self.ctx.dialect
        staged: list[Statement] = []
        if d.stage_ctes and isinstance(select, WithCtes):
            for cte, query in select.ctes:
                self.staged_ctes.append(cte)
                staged.append(self.ctx.statement(d.create_temp_table_as(cte, query)))
            select = select.select
        self.temps.append((name, select))
        return [*staged, self.ctx.statement(d.create_temp_table_as(name, select))]

    def temp_table_names(self) -> tuple[str, ...]:
        """Every temp table the statements create (the fixed ones and any staged CTEs)."""
        return (*TEMP_TABLES, *self.staged_ctes)

    def drop_unread_codesets(self, statements: list[Statement], codesets_at: int) -> None:
        """With the ids resolved before and bound as arrays, only type and source-concept selections still read
        the codesets table; where none does, writing it is a statement for nothing."""
        if self.ctx.codeset_values is not None and not any(CODESETS in sql for sql, _ in statements[codesets_at + 1 :]):
            del statements[codesets_at]

    def counted(
        self, statements: list[Statement], codesets_at: int, start: str, end: str, where: str
    ) -> CompiledCohort:
        """The count path's end: nothing written, every count read back from the temp tables at once."""
        ctx = self.ctx
        self.drop_unread_codesets(statements, codesets_at)
        readback = ctx.statement(self.count_readback(where))
        one_statement = None
        temps = {ctx.dialect.create_temp_table_as(name, select): (name, select) for name, select in self.temps}
        if ctx.dialect.counts_in_one_statement and all(sql in temps for sql, _ in statements):
            # Every statement is a temp table: as materialized CTEs of the read-back, the count is one statement.
            ctes = [f"{temps[sql][0]} AS MATERIALIZED (\n{temps[sql][1]}\n)" for sql, _ in statements]
            one_statement = ctx.statement("WITH " + ",\n".join(ctes) + "\n" + self.count_readback(where))
        cohort_select = ctx.statement(
            f"SELECT person_id AS subject_id, {start} AS cohort_start_date, {end} AS cohort_end_date "
            f"FROM {FINAL_COHORT}{where}"
        )
        if ctx.ctes:  # pragma: no cover - every statement takes its CTEs
            raise AssertionError("CTEs left over")
        return CompiledCohort(
            statements,
            [(sql, {}) for sql in ctx.dialect.cleanup_temp_tables(self.temp_table_names())],
            [],
            [rule.name for rule in self.e.inclusion_rules],
            count_only=True,
            count_readback=readback,
            cohort_select=cohort_select,
            count_statement=one_statement,
        )


def _unquote(quoted: str) -> str:
    return ".".join(part.strip('"') for part in quoted.split("."))


__all__ = [
    "RESULTS_TABLES",
    "CompiledCohort",
    "ExpressionError",
    "codesets_query",
    "compile_cohort",
    "results_present",
    "results_setup",
]
