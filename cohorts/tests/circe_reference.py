"""OHDSI Circe as the reference engine: run circe-be's own SQL for a cohort expression on a Soyang engine.

This is test and benchmark code only. Production code never imports it (nor ``duckcdm`` / ``circe``): Soyang's
compiler must stand on its own, and this module is the independent yardstick it is measured against.

The SQL comes from ``duckcdm`` (a Python port of circe-be and SqlRender that reproduces the Java output character
for character), built with ``generate_stats=True`` and translated to the engine's dialect, exactly as the cohort
oracle in ``shared/oracle`` was made. Circe writes into a results schema of its own (``<results_schema>_circe``) so
that it never touches the rows Soyang writes in ``results_schema``: both can run on the same database and be
compared.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

#: The tables circe-be's generated SQL writes into (WebAPI's results schema DDL, reduced to what Circe touches).
RESULTS_TABLES_DDL: dict[str, str] = {
    "cohort": "cohort_definition_id INTEGER NOT NULL, subject_id BIGINT NOT NULL, "
    "cohort_start_date DATE NOT NULL, cohort_end_date DATE NOT NULL",
    "cohort_inclusion": "cohort_definition_id INTEGER NOT NULL, rule_sequence INTEGER NOT NULL, "
    "name VARCHAR(255), description VARCHAR(1000)",
    "cohort_inclusion_result": "cohort_definition_id INTEGER NOT NULL, inclusion_rule_mask BIGINT NOT NULL, "
    "person_count BIGINT NOT NULL, mode_id INTEGER",
    "cohort_inclusion_stats": "cohort_definition_id INTEGER NOT NULL, rule_sequence INTEGER NOT NULL, "
    "person_count BIGINT NOT NULL, gain_count BIGINT NOT NULL, person_total BIGINT NOT NULL, mode_id INTEGER",
    "cohort_summary_stats": "cohort_definition_id INTEGER NOT NULL, base_count BIGINT NOT NULL, "
    "final_count BIGINT NOT NULL, mode_id INTEGER",
    "cohort_censor_stats": "cohort_definition_id INTEGER NOT NULL, lost_count BIGINT NOT NULL",
}

#: Circe's modes of inclusion statistics: 0 over every qualified event, 1 over each person's best event.
MODE_BY_EVENT = 0
MODE_BY_PERSON = 1

CohortRow = tuple[int, date, date]


class _Engine(Protocol):
    """The part of ``warehouse.engines.Engine`` this harness needs (kept structural so it runs before it lands)."""

    kind: str

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> Any: ...

    def fetchall(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]: ...

    def execute_script(self, sql: str) -> Any: ...


@dataclass(frozen=True)
class ReferenceResult:
    """What Circe produced: the cohort rows, the time its SQL took, and its inclusion statistics.

    ``by_person`` / ``by_event`` have the shape of the oracle's ``expected/NAME.json``: ``summary`` (``base``,
    ``final``, or None when the definition has no inclusion rule, since Circe then writes no statistics),
    ``inclusion_rules`` (name, count, gain, total per rule) and ``attrition`` (name, count meeting rules 1..k).
    """

    rows: list[CohortRow]
    seconds: float
    by_person: dict[str, Any]
    by_event: dict[str, Any] = field(default_factory=dict)
    sql: str = field(default="", repr=False)

    @property
    def persons(self) -> int:
        """Distinct subjects in the cohort."""
        return len({row[0] for row in self.rows})


def circe_sql(
    expression_json: dict[str, Any] | str,
    *,
    dialect: str,
    cdm_schema: str,
    vocabulary_schema: str,
    results_schema: str,
    cohort_id: int = 1,
) -> str:
    """circe-be's SQL for ``expression_json``, rendered and translated to ``dialect`` ("postgresql" or "duckdb").

    ``results_schema`` is where Circe writes: its ``cohort`` table and the statistics tables.
    """
    # Imported here so that merely collecting tests does not require the reference packages.
    from duckcdm.circe import build_cohort_query
    from duckcdm.sqlrender import render, translate

    text = expression_json if isinstance(expression_json, str) else json.dumps(expression_json)
    sql = build_cohort_query(
        text,
        cdm_schema=cdm_schema,
        vocabulary_schema=vocabulary_schema,
        target_table=f"{results_schema}.cohort",
        result_schema=results_schema,
        cohort_id=cohort_id,
        generate_stats=True,
    )
    return translate(render(sql), dialect)


def circepy_sql(
    expression_json: dict[str, Any] | str,
    *,
    dialect: str,
    cdm_schema: str,
    vocabulary_schema: str,
    results_schema: str,
    cohort_id: int = 1,
) -> str:
    """The same SQL from the second, independent port (``ohdsi-circepy`` and its own SqlRender): a second opinion."""
    from circe.api import build_cohort_query, cohort_expression_from_json
    from circe.cohortdefinition import BuildExpressionQueryOptions
    from circe.sqlrender import render, translate

    text = expression_json if isinstance(expression_json, str) else json.dumps(expression_json)
    options = BuildExpressionQueryOptions()
    options.cdm_schema = cdm_schema
    options.vocabulary_schema = vocabulary_schema
    options.target_table = f"{results_schema}.cohort"
    options.result_schema = results_schema
    options.cohort_id = cohort_id
    options.generate_stats = True
    sql = build_cohort_query(cohort_expression_from_json(text), options)
    return translate(render(sql), dialect)


#: Circe's orderings that leave ties between events of the same person on the same start date to the database
#: (so PostgreSQL and DuckDB may pick different events), and the event-id tie-break that makes them total.
#: Primary events already break ties by the domain's row id; these are the qualified-limit, expression-limit and
#: "best event" orderings, written exactly as the translated SQL spells them.
_TIE_BREAKS: tuple[tuple[str, str], ...] = (
    ("order by pe.start_date ASC)", "order by pe.start_date ASC, pe.event_id)"),
    ("order by pe.start_date DESC)", "order by pe.start_date DESC, pe.event_id)"),
    ("order by start_date ASC) as ordinal", "order by start_date ASC, event_id) as ordinal"),
    ("order by start_date DESC) as ordinal", "order by start_date DESC, event_id) as ordinal"),
    ("R.min_rule_id ASC, R.start_date ASC)", "R.min_rule_id ASC, R.start_date ASC, R.event_id)"),
)


def break_ties(sql: str) -> str:
    """Circe's SQL with its same-day ties broken by event id (primary-event order), so its result is unique.

    circe-be orders the qualified and included events of a person by start date alone: when two entry events of a
    person share a start date, which one a First / Last limit keeps (and with it the end date, the visit and the
    inclusion-rule matches) is up to the database. The results then differ between PostgreSQL and DuckDB, and from
    any deterministic engine. Breaking the ties by event id (the primary events' ordinal) gives the one answer
    that a deterministic implementation of the same semantics must also give.
    """
    for old, new in _TIE_BREAKS:
        sql = sql.replace(old, new)
    return sql


def circe_results_schema(results_schema: str) -> str:
    """The scratch schema Circe writes into, beside (never inside) Soyang's results schema."""
    return f"{results_schema}_circe"


def ensure_circe_tables(engine: _Engine, schema: str) -> None:
    """Create ``schema`` and the tables Circe's SQL writes into, if they are missing."""
    statements = [f"CREATE SCHEMA IF NOT EXISTS {schema}"]
    statements += [f"CREATE TABLE IF NOT EXISTS {schema}.{name} ({cols})" for name, cols in RESULTS_TABLES_DDL.items()]
    engine.execute_script(";\n".join(statements) + ";")


def circe_reference(
    engine: _Engine,
    expression_json: dict[str, Any] | str,
    *,
    cdm_schema: str,
    vocabulary_schema: str,
    results_schema: str,
    cohort_id: int = 1,
    sql_builder: str = "duckcdm",
    postgresql_settings: dict[str, str] | None = None,
    deterministic: bool = False,
) -> ReferenceResult:
    """Generate the cohort with circe-be's SQL on ``engine`` and read back its rows and statistics.

    Circe writes into ``<results_schema>_circe`` (created with its tables when missing). ``seconds`` is the wall
    time of Circe's SQL alone (not of building it), which is what a benchmark against Soyang should compare.
    ``sql_builder`` is "duckcdm" (the reference) or "circepy" (the second opinion).

    ``postgresql_settings`` are planner settings applied with ``SET LOCAL`` for this run only, e.g.
    ``{"enable_nestloop": "off"}``: PostgreSQL estimates Circe's ``WHERE ordinal = 1`` filters at one row and may
    then nest loops over whole sub-plans, which turns some small definitions into minutes-long queries on GiBleed.
    The settings change the plan, never the rows.

    ``deterministic`` breaks Circe's same-day ties by event id (see ``break_ties``); without it the SQL is
    exactly circe-be's, as the oracle was made.
    """
    expression = json.loads(expression_json) if isinstance(expression_json, str) else expression_json
    schema = circe_results_schema(results_schema)
    ensure_circe_tables(engine, schema)
    builder = circe_sql if sql_builder == "duckcdm" else circepy_sql
    sql = builder(
        expression,
        dialect=engine.kind,
        cdm_schema=cdm_schema,
        vocabulary_schema=vocabulary_schema,
        results_schema=schema,
        cohort_id=cohort_id,
    )
    if deterministic:
        sql = break_ties(sql)
    # Circe keeps its working sets in session temp tables (Codesets, qualified_events, ...) and drops them at the
    # end. Running the script in one transaction means a failure half-way rolls those temp tables back too, so the
    # next run on the same connection does not trip over a leftover "Codesets already exists".
    started = time.perf_counter()
    with _transaction(engine):
        if engine.kind == "postgresql":
            for name, value in (postgresql_settings or {}).items():
                # Trusted constants from test code, not user input; SET takes no bound parameters.
                engine.execute(f"SET LOCAL {name} = {value}", None)
        engine.execute_script(sql)
    seconds = time.perf_counter() - started
    _record_rule_names(engine, schema, cohort_id, expression)

    rows = [
        (int(subject), _as_date(start), _as_date(end))
        for subject, start, end in engine.fetchall(
            f"SELECT subject_id, cohort_start_date, cohort_end_date FROM {schema}.cohort "
            "WHERE cohort_definition_id = %(cohort_id)s ORDER BY subject_id, cohort_start_date, cohort_end_date",
            {"cohort_id": cohort_id},
        )
    ]
    rule_names = [rule.get("name") or "" for rule in expression.get("InclusionRules") or []]
    return ReferenceResult(
        rows=rows,
        seconds=seconds,
        by_person=read_inclusion_stats(engine, schema, cohort_id, rule_names, mode=MODE_BY_PERSON),
        by_event=read_inclusion_stats(engine, schema, cohort_id, rule_names, mode=MODE_BY_EVENT),
        sql=sql,
    )


def read_inclusion_stats(
    engine: _Engine, schema: str, cohort_id: int, rule_names: list[str], *, mode: int
) -> dict[str, Any]:
    """Circe's inclusion statistics for one mode, in the oracle's ``expected/NAME.json`` shape.

    Attrition is derived from ``cohort_inclusion_result`` the way ATLAS draws it: the count of persons (mode 1)
    or events (mode 0) whose rule mask has bits 0..k-1 all set.
    """
    params = {"cohort_id": cohort_id, "mode": mode}
    summary_rows = engine.fetchall(
        f"SELECT base_count, final_count FROM {schema}.cohort_summary_stats "
        "WHERE cohort_definition_id = %(cohort_id)s AND mode_id = %(mode)s",
        params,
    )
    if not rule_names:
        # Circe writes no statistics for a definition without inclusion rules (and leaves stale ones alone).
        return {"summary": None, "inclusion_rules": [], "attrition": []}
    stats = {
        int(seq): (int(count), int(gain), int(total))
        for seq, count, gain, total in engine.fetchall(
            f"SELECT rule_sequence, person_count, gain_count, person_total FROM {schema}.cohort_inclusion_stats "
            "WHERE cohort_definition_id = %(cohort_id)s AND mode_id = %(mode)s",
            params,
        )
    }
    masks = [
        (int(mask), int(count))
        for mask, count in engine.fetchall(
            f"SELECT inclusion_rule_mask, person_count FROM {schema}.cohort_inclusion_result "
            "WHERE cohort_definition_id = %(cohort_id)s AND mode_id = %(mode)s",
            params,
        )
    ]
    inclusion_rules = []
    attrition = []
    for seq, name in enumerate(rule_names):
        count, gain, total = stats.get(seq, (0, 0, 0))
        inclusion_rules.append({"name": name, "count": count, "gain": gain, "total": total})
        prefix = (1 << (seq + 1)) - 1
        attrition.append({"name": name, "count": sum(n for mask, n in masks if mask & prefix == prefix)})
    summary = None
    if summary_rows:
        base, final = summary_rows[0]
        summary = {"base": int(base), "final": int(final)}
    return {"summary": summary, "inclusion_rules": inclusion_rules, "attrition": attrition}


def _record_rule_names(engine: _Engine, schema: str, cohort_id: int, expression: dict[str, Any]) -> None:
    """Fill ``cohort_inclusion`` as WebAPI does (Circe's SQL reads rule numbers only, never their names)."""
    engine.execute(
        f"DELETE FROM {schema}.cohort_inclusion WHERE cohort_definition_id = %(cohort_id)s", {"cohort_id": cohort_id}
    )
    for seq, rule in enumerate(expression.get("InclusionRules") or []):
        engine.execute(
            f"INSERT INTO {schema}.cohort_inclusion (cohort_definition_id, rule_sequence, name, description) "
            "VALUES (%(cohort_id)s, %(seq)s, %(name)s, %(description)s)",
            {
                "cohort_id": cohort_id,
                "seq": seq,
                "name": (rule.get("name") or "")[:255],
                "description": (rule.get("description") or "")[:1000],
            },
        )


def _transaction(engine: _Engine) -> Any:
    """The engine's transaction context (a no-op context when the engine has none)."""
    transaction = getattr(engine, "transaction", None)
    if transaction is None:
        from contextlib import nullcontext

        return nullcontext()
    return transaction()


def _as_date(value: Any) -> date:
    """A ``date`` from what the driver returns (``date``, ``datetime`` or ISO text)."""
    if hasattr(value, "date") and callable(value.date):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def load_expected_rows(path: Any) -> list[CohortRow]:
    """Rows of an oracle ``expected/NAME.csv`` (``subject_id,cohort_start_date,cohort_end_date``)."""
    import csv
    from pathlib import Path

    with Path(path).open(newline="") as handle:
        return [
            (int(r["subject_id"]), date.fromisoformat(r["cohort_start_date"]), date.fromisoformat(r["cohort_end_date"]))
            for r in csv.DictReader(handle)
        ]
