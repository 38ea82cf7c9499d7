"""Generate a cohort on a site's CDM: compile, run in one warehouse transaction, read back the aggregates.

Invariants:
- The rows of ``cohort_id`` in ``<results>.cohort`` and its inclusion masks are replaced (delete, then insert)
  inside one transaction, so a retried or concurrent generation of the same id never leaves duplicates or a
  half-written cohort: readers see the old rows or the new ones.
- Only aggregates leave this module (``CohortResult``); ``cohort_rows`` exists for the site's own tools
  (CSV export by the operator, tests), never for the portal.

No Django import here: the worker calls it with an engine from ``warehouse.services.source_connect``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Protocol, TypeVar

from cohorts.compiler import codesets_query, compile_cohort, results_present, results_setup
from cohorts.compiler.cohort import CompiledCohort
from cohorts.compiler.dialects import dialect_for
from cohorts.expression import CohortExpression, ConceptSet, parse_expression
from disclosure.ptable import KEYS

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class Engine(Protocol):
    """What generation needs of ``warehouse.engines.Engine``."""

    kind: str

    def execute(self, sql: str, params: Any = None) -> Any: ...

    def fetchall(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]: ...

    def transaction(self) -> Any: ...


@dataclass(frozen=True)
class EventStatistics:
    """Circe's by-event inclusion statistics (mode 0, over every qualified event): ``initial`` qualified events,
    the events meeting each rule on its own (``inclusion_rules``) and rules 1..k together (``attrition``). The
    keys, when read with the site's record keys, are the cell keys of those counts in the same order: for a group
    of events, the sum of its events' persons' record keys modulo 256 (``cohorts.compiler.cohort`` ``event_masks``
    says why)."""

    initial: int = 0
    inclusion_rules: list[tuple[str, int]] = field(default_factory=list)
    attrition: list[tuple[str, int]] = field(default_factory=list)
    initial_key: int | None = None
    inclusion_rule_keys: list[int] = field(default_factory=list)
    attrition_keys: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class CohortResult:
    """Aggregates of one generation. ``initial_persons``: persons with a qualified event, before any inclusion
    rule; ``inclusion_rules``: persons whose best event meets each rule on its own; ``attrition``: persons whose
    best event meets rules 1..k together (Circe's by-person mode); ``by_event``: the same over qualified events
    (Circe's by-event mode)."""

    persons: int
    #: Cohort rows written; None on the count path, which writes none.
    rows: int | None
    seconds: float
    inclusion_rules: list[tuple[str, int]] = field(default_factory=list)
    attrition: list[tuple[str, int]] = field(default_factory=list)
    #: The cell keys of the counts above (``disclosure.cellkey``), when generated with the site's record keys:
    #: of ``persons``, of each inclusion rule and of each attrition step, in the same order.
    persons_key: int | None = None
    inclusion_rule_keys: list[int] = field(default_factory=list)
    attrition_keys: list[int] = field(default_factory=list)
    #: Persons of those counts without a record key (a key table older than the CDM): their keys are wrong.
    unkeyed: int = 0
    #: What ``count_cohort``'s ``describe`` computed in the count's transaction (the demographics), else None.
    described: dict[str, Any] | None = None
    initial_persons: int = 0
    initial_persons_key: int | None = None
    by_event: EventStatistics = field(default_factory=EventStatistics)


def ensure_results_tables(engine: Engine, *, results_schema: str) -> None:
    """Create the results schema and tables if missing, in their own short transaction.

    Where the engine can tell in one catalog query that they all exist (PostgreSQL), the DDL and its commit are
    skipped: the usual case, and 5-10 ms of every generation otherwise. Two workers creating them at the same
    moment can collide in PostgreSQL's catalog; the loser retries once and then finds them.
    """
    check = results_present(engine.kind, results_schema)
    if check is not None:
        present = engine.fetchall(*check)
        if present and present[0][0]:
            return
    for attempt in range(2):
        try:
            with engine.transaction():
                for sql, params in results_setup(engine.kind, results_schema):
                    engine.execute(sql, params)
            return
        except Exception:
            if attempt:
                raise
            logger.info("results tables of %s created concurrently; retrying", results_schema)


def generate_cohort(
    engine: Engine,
    expression: CohortExpression | dict[str, Any] | str,
    *,
    cdm_schema: str,
    vocabulary_schema: str,
    results_schema: str,
    cohort_id: int,
    progress: Callable[[int, int, str], None] | None = None,
    record_keys: str | None = None,
) -> CohortResult:
    """Generate cohort ``cohort_id`` from ``expression`` into ``<results_schema>.cohort`` (idempotent).

    ``progress``, when given, is called as ``(step, total, label)`` before each statement of the transaction
    (``step`` from 1 to ``total``; the label names the work, never a value of the definition).

    ``record_keys``: the site's record-key table (``disclosure.record_keys``); when given, the cell key of every
    count is read back in the same transaction (``CohortResult.persons_key`` and the rest).

    Raises ``ExpressionError`` before touching the database when the expression is invalid or unsupported.
    """
    parsed = expression if isinstance(expression, CohortExpression) else parse_expression(expression)
    schemas = {"cdm_schema": cdm_schema, "vocabulary_schema": vocabulary_schema, "results_schema": results_schema}

    def compiled_with(values: dict[int, list[int]] | None) -> CompiledCohort:
        return compile_cohort(
            parsed, dialect=engine.kind, cohort_id=cohort_id, codeset_values=values, record_keys=record_keys, **schemas
        )

    # Compiled once before touching the database, so that an invalid expression or schema changes nothing.
    compiled = compiled_with(None)
    started = time.perf_counter()
    ensure_results_tables(engine, results_schema=results_schema)
    fetched, keyed = _run_compiled(
        engine, parsed, compiled, compiled_with, vocabulary_schema, progress, lambda done: _read_back(engine, done)
    )
    seconds = time.perf_counter() - started

    # One statement of the transaction read the counts (from the final cohort temp table, same rows as the
    # insert) and the by-person masks just written.
    counts = [row for row in fetched if int(row[0]) == 0]
    persons, rows = (int(counts[0][1] or 0), int(counts[0][2] or 0)) if counts else (0, 0)
    result = _with_statistics(
        CohortResult(persons, rows, round(seconds, 4)),
        compiled.rule_names,
        [(int(kind), int(m), int(n)) for kind, m, n in fetched if int(kind) in (1, 2)],
    )
    if compiled.key_readback is None:
        return result
    persons_key = next((int(key or 0) for kind, _, key, _ in keyed if int(kind) == 0), 0)
    mask_keys = [(int(kind), int(m), int(key or 0)) for kind, m, key, _ in keyed if int(kind) in (1, 2)]
    return _with_keys(
        result,
        compiled.rule_names,
        persons_key,
        mask_keys,
        sum(int(unkeyed or 0) for kind, *_, unkeyed in keyed if int(kind) in (0, 1)),
    )


def count_cohort(
    engine: Engine,
    expression: CohortExpression | dict[str, Any] | str,
    *,
    cdm_schema: str,
    vocabulary_schema: str,
    results_schema: str,
    progress: Callable[[int, int, str], None] | None = None,
    record_keys: str | None = None,
    describe: Callable[[Engine, tuple[str, dict[str, Any]]], dict[str, Any]] | None = None,
    resolved: dict[int, list[int]] | None = None,
) -> CohortResult:
    """Count ``expression`` without writing anything to the site's results schema: the count path.

    The cohort is found by the same statements as ``generate_cohort`` (so the oracle that proves the rows proves
    these counts), in temp tables of one transaction; the persons, the initial persons and events, each rule's
    persons and events and the attrition by person and by event are read back from them in one statement, with
    their cell keys when ``record_keys`` is given. ``describe``, when given, is called in the same transaction
    with the engine and the statement selecting the cohort's rows (``subject_id, cohort_start_date,
    cohort_end_date``) and its answer returned as ``CohortResult.described`` (the demographics). ``rows`` is None:
    no row was made. ``resolved``: the ids of its concept sets, resolved already (``resolve_concept_sets``, for
    definitions counted together).

    Raises ``ExpressionError`` before touching the database when the expression is invalid or unsupported.
    """
    parsed = expression if isinstance(expression, CohortExpression) else parse_expression(expression)
    schemas = {"cdm_schema": cdm_schema, "vocabulary_schema": vocabulary_schema, "results_schema": results_schema}
    if not dialect_for(engine.kind).parameters_in_temp_tables:
        resolved = None  # Spark: no bound values in a temp table's select; the statements resolve the sets

    def compiled_with(values: dict[int, list[int]] | None) -> CompiledCohort:
        return compile_cohort(
            parsed,
            dialect=engine.kind,
            cohort_id=0,
            codeset_values=values,
            record_keys=record_keys,
            count_only=True,
            **schemas,
        )

    def read(compiled: CompiledCohort) -> tuple[list[tuple[Any, ...]], dict[str, Any] | None]:
        assert compiled.count_readback is not None and compiled.cohort_select is not None
        counted = engine.fetchall(*compiled.count_readback)
        return counted, describe(engine, compiled.cohort_select) if describe is not None else None

    compiled = compiled_with(None)
    started = time.perf_counter()
    if describe is None and (one := compiled_with(resolved).count_statement) is not None:
        # The engine needs no temp table: one statement, one round trip.
        if progress is not None:
            progress(1, 1, "count")
        counted, described = engine.fetchall(*one), None
    else:
        counted, described = _run_compiled(
            engine, parsed, compiled, compiled_with, vocabulary_schema, progress, read, resolved=resolved
        )
    seconds = time.perf_counter() - started
    persons = next((int(n) for kind, _, n, _, _ in counted if int(kind) == 0), 0)
    result = _with_statistics(
        CohortResult(persons, None, round(seconds, 4), described=described),
        compiled.rule_names,
        [(int(kind), int(m), int(n)) for kind, m, n, _, _ in counted if int(kind) in (1, 2)],
    )
    if record_keys is None:
        return result
    persons_key = next((int(key or 0) for kind, _, _, key, _ in counted if int(kind) == 0), 0)
    mask_keys = [(int(kind), int(m), int(key or 0)) for kind, m, _, key, _ in counted if int(kind) in (1, 2)]
    # Unkeyed persons: the by-event rows hold the same persons again (as often as their events), so they are
    # left out of the sum, which stays a number of persons.
    missing = sum(int(unkeyed or 0) for kind, *_, unkeyed in counted if int(kind) in (0, 1))
    return _with_keys(result, compiled.rule_names, persons_key, mask_keys, missing)


def resolve_concept_sets(
    engine: Engine, expressions: Sequence[CohortExpression], *, vocabulary_schema: str
) -> list[dict[int, list[int]]]:
    """The concept ids of every concept set of every definition, resolved in one query: a set of definitions (a
    study's cohorts, a PhenotypeLibrary selection) shares its concept sets, and each distinct one (same items) is
    resolved once. Returns, per definition, its concept set ids → concept ids (what ``count_cohort`` takes as
    ``resolved``)."""
    distinct: dict[tuple[Any, ...], int] = {}
    for expression in expressions:
        for concept_set in expression.concept_sets:
            distinct.setdefault(concept_set.items, len(distinct))
    if not distinct:
        return [{} for _ in expressions]
    union = replace(
        expressions[0],
        concept_sets=tuple(ConceptSet(id=number, name="", items=items) for items, number in distinct.items()),
    )
    concepts: dict[int, list[int]] = {number: [] for number in distinct.values()}
    with engine.transaction():
        # Under the counts' planner settings (PostgreSQL: the vocabulary reached through its indexes).
        for sql in dialect_for(engine.kind).transaction_settings():
            engine.execute(sql)
        for codeset, concept in engine.fetchall(
            *codesets_query(union, dialect=engine.kind, vocabulary_schema=vocabulary_schema)
        ):
            concepts[int(codeset)].append(int(concept))
    for ids in concepts.values():
        ids.sort()  # in one order, whatever the plan: the same concept set compiles to the same statement
    return [
        {concept_set.id: concepts[distinct[concept_set.items]] for concept_set in expression.concept_sets}
        for expression in expressions
    ]


class ConceptSetCache:
    """Concept sets resolved on one site's vocabulary, kept by a worker process between counts.

    A researcher counting drafts of one definition, or a study counting its cohort set, resolves the same concept
    sets again and again; their concept ids depend only on the vocabulary, which the CDM's fingerprint covers, so
    they are kept under ``(site, fingerprint)`` and resolved only when missing (a reload gives a new fingerprint,
    hence new entries). At most ``max_concepts`` concept ids are kept; the least recently used sets go first.
    """

    def __init__(self, max_concepts: int = 1_000_000) -> None:
        self.max_concepts = max_concepts
        self._sets: OrderedDict[tuple[str, tuple[Any, ...]], list[int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def resolve(
        self, engine: Engine, expression: CohortExpression, *, vocabulary_schema: str, vocabulary: str
    ) -> dict[int, list[int]]:
        """Concept set id → concept ids of ``expression`` (what ``count_cohort`` takes as ``resolved``);
        ``vocabulary`` names the vocabulary they were resolved on (the site and its CDM's fingerprint)."""
        with self._lock:
            known = {cs.id: self._get((vocabulary, cs.items)) for cs in expression.concept_sets}
        missing = tuple(cs for cs in expression.concept_sets if known[cs.id] is None)
        if missing:
            (fresh,) = resolve_concept_sets(
                engine, [replace(expression, concept_sets=missing)], vocabulary_schema=vocabulary_schema
            )
            with self._lock:
                for concept_set in missing:
                    known[concept_set.id] = fresh[concept_set.id]
                    self._put((vocabulary, concept_set.items), fresh[concept_set.id])
        return {codeset: list(concepts or []) for codeset, concepts in known.items()}

    def preload(
        self, engine: Engine, expressions: Sequence[CohortExpression], *, vocabulary_schema: str, vocabulary: str
    ) -> int:
        """Resolve, in one query, every concept set of ``expressions`` not known yet (a set of definitions counted
        together: their shared concept sets once, and no query at all for those a count resolved before).
        Returns how many distinct concept sets were resolved."""
        with self._lock:
            missing: dict[tuple[Any, ...], ConceptSet] = {}
            for expression in expressions:
                for concept_set in expression.concept_sets:
                    if self._get((vocabulary, concept_set.items)) is None:
                        missing.setdefault(concept_set.items, concept_set)
        if not missing:
            return 0
        numbered = tuple(replace(cs, id=number) for number, cs in enumerate(missing.values()))
        (fresh,) = resolve_concept_sets(
            engine, [replace(expressions[0], concept_sets=numbered)], vocabulary_schema=vocabulary_schema
        )
        with self._lock:
            for concept_set in numbered:
                self._put((vocabulary, concept_set.items), fresh[concept_set.id])
        return len(numbered)

    def _get(self, key: tuple[str, tuple[Any, ...]]) -> list[int] | None:
        concepts = self._sets.get(key)
        if concepts is not None:
            self._sets.move_to_end(key)
        return concepts

    def _put(self, key: tuple[str, tuple[Any, ...]], concepts: list[int]) -> None:
        if key in self._sets or len(concepts) > self.max_concepts:
            return
        self._sets[key] = concepts
        self._size += len(concepts)
        while self._size > self.max_concepts:
            _, dropped = self._sets.popitem(last=False)
            self._size -= len(dropped)


def _with_statistics(result: CohortResult, rule_names: list[str], masks: list[tuple[int, int, int]]) -> CohortResult:
    """``result`` with Circe's inclusion statistics from the read-back ``(mode, mask, count)`` rows (mode 1: the
    persons of a by-person mask, 2: the events of a by-event mask): the initial persons and events (every mask
    added up: each qualified person has one best event, each event one mask), each rule alone and the attrition."""
    by_person = [(m, n) for kind, m, n in masks if kind == 1]
    by_event = [(m, n) for kind, m, n in masks if kind == 2]
    inclusion, attrition = rule_statistics(rule_names, by_person)
    event_inclusion, event_attrition = rule_statistics(rule_names, by_event)
    return replace(
        result,
        inclusion_rules=inclusion,
        attrition=attrition,
        initial_persons=sum(n for _, n in by_person),
        by_event=EventStatistics(sum(n for _, n in by_event), event_inclusion, event_attrition),
    )


def _with_keys(
    result: CohortResult,
    rule_names: list[str],
    persons_key: int,
    mask_keys: list[tuple[int, int, int]],
    unkeyed: int,
) -> CohortResult:
    """``result`` with the cell keys of its counts from ``(mode, mask, cell key)`` rows: the initial row's key and
    each rule's and step's key add the masks' keys as Circe adds their counts (a sum of disjoint groups' record
    keys is the key of their union)."""
    person_keys = [(m, key) for kind, m, key in mask_keys if kind == 1]
    event_keys = [(m, key) for kind, m, key in mask_keys if kind == 2]
    inclusion_keys, attrition_keys = rule_statistics(rule_names, person_keys)
    event_inclusion_keys, event_attrition_keys = rule_statistics(rule_names, event_keys)
    return replace(
        result,
        persons_key=persons_key,
        inclusion_rule_keys=[key % KEYS for _, key in inclusion_keys],
        attrition_keys=[key % KEYS for _, key in attrition_keys],
        initial_persons_key=sum(key for _, key in person_keys) % KEYS,
        by_event=replace(
            result.by_event,
            initial_key=sum(key for _, key in event_keys) % KEYS,
            inclusion_rule_keys=[key % KEYS for _, key in event_inclusion_keys],
            attrition_keys=[key % KEYS for _, key in event_attrition_keys],
        ),
        unkeyed=unkeyed,
    )


def _run_compiled(
    engine: Engine,
    parsed: CohortExpression,
    compiled: CompiledCohort,
    compiled_with: Callable[[dict[int, list[int]] | None], CompiledCohort],
    vocabulary_schema: str,
    progress: Callable[[int, int, str], None] | None,
    read: Callable[[CompiledCohort], _T],
    resolved: dict[int, list[int]] | None = None,
) -> _T:
    """Run a compiled cohort in one warehouse transaction and return what ``read`` reads from its temp tables
    (called after the work, before the cleanup). Where the dialect compiles the concept sets in, they are
    resolved first under the transaction's planner settings and the cohort compiled again with them; ``resolved``:
    the concept sets' ids resolved already (a set of definitions counted together), compiled in on any engine."""
    dialect = dialect_for(engine.kind)
    with engine.transaction():
        work = compiled.statements[len(compiled.setup) :]
        if dialect.inline_codesets or resolved is not None:
            settings = dialect.transaction_settings()
            for sql in settings:
                engine.execute(sql)
            if resolved is None:
                resolved = {}
                for codeset, concept in engine.fetchall(
                    *codesets_query(parsed, dialect=engine.kind, vocabulary_schema=vocabulary_schema)
                ):
                    resolved.setdefault(int(codeset), []).append(int(concept))
            compiled = compiled_with(resolved)
            work = compiled.statements[len(compiled.setup) :]
            if [sql for sql, _ in work[: len(settings)]] == settings:
                work = work[len(settings) :]  # the compiled statements open with the settings already in force
        # Temp tables live as long as the connection: dropped in the transaction (PostgreSQL: ON COMMIT DROP).
        steps = [*work, *compiled.cleanup]
        for step, (sql, params) in enumerate(steps, start=1):
            if step == len(work) + 1:
                answer = read(compiled)
            if progress is not None:
                progress(step, len(steps), statement_label(sql))
            engine.execute(sql, params)
        if not compiled.cleanup:
            answer = read(compiled)
    return answer


def _read_back(engine: Engine, compiled: CompiledCohort) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The counts, and their cell keys when compiled with record keys (same transaction, before cleanup)."""
    fetched = engine.fetchall(*compiled.readback) if compiled.readback is not None else []
    keyed = engine.fetchall(*compiled.key_readback) if compiled.key_readback is not None else []
    return fetched, keyed


def statement_label(sql: str) -> str:
    """A short name of a compiled statement for progress reports: its verb and table (compiler constants only)."""
    words = sql.split()
    if words[:3] == ["CREATE", "OR", "REPLACE"]:
        words = ["CREATE", *words[3:]]
    if words[:3] == ["CREATE", "TEMPORARY", "TABLE"] and len(words) > 3:
        return "build " + words[3].removeprefix("soyang_").replace("_", " ")
    if words[:2] == ["CACHE", "TABLE"] and len(words) > 2:
        return "build " + words[2].removeprefix("soyang_").replace("_", " ")
    if words[:2] == ["INSERT", "INTO"] and len(words) > 2:
        return "write " + words[2].rsplit(".", 1)[-1]
    if words[:3] == ["INSERT", "OVERWRITE", "TABLE"] and len(words) > 3:
        return "write " + words[3].rsplit(".", 1)[-1]
    if words[:2] == ["DELETE", "FROM"] and len(words) > 2:
        return "clear " + words[2].rsplit(".", 1)[-1]
    if words[:1] == ["DROP"]:
        return "drop temp tables"
    if words[:1] == ["ANALYZE"]:
        return "statistics"
    return "prepare"


def rule_statistics(
    rule_names: list[str], masks: list[tuple[int, int]]
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Per-rule and cumulative counts from ``(inclusion_rule_mask, person_count)`` rows (Circe's derivation).
    Cell keys add up the same way: given ``(mask, cell key)`` rows it gives each rule's and step's key (before
    the modulo)."""
    inclusion = []
    attrition = []
    for i, name in enumerate(rule_names):
        bit = 1 << i
        upto = (1 << (i + 1)) - 1
        inclusion.append((name, sum(n for mask, n in masks if mask & bit)))
        attrition.append((name, sum(n for mask, n in masks if mask & upto == upto)))
    return inclusion, attrition


def cohort_rows(engine: Engine, *, results_schema: str, cohort_id: int) -> list[tuple[int, date, date]]:
    """The rows of cohort ``cohort_id``, sorted by subject then start date (site-side use only)."""
    schema = dialect_for(engine.kind).quote_schema(results_schema)
    fetched = engine.fetchall(
        f"SELECT subject_id, cohort_start_date, cohort_end_date FROM {schema}.cohort "  # noqa: S608
        "WHERE cohort_definition_id = %(cohort_id)s ORDER BY subject_id, cohort_start_date, cohort_end_date",
        {"cohort_id": cohort_id},
    )
    return [(int(subject), _as_date(start), _as_date(end)) for subject, start, end in fetched]


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
