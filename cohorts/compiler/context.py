"""What one compilation carries around: the dialect, the schemas, bound parameters and the CTEs of a statement.

Security invariant: a value taken from a cohort definition reaches SQL text only as a ``%(pN)s`` placeholder,
or after it has been validated as an ``int`` (concept ids, day counts) by the parser and formatted by ``lit``.
Identifiers come only from the Source's settings (``Dialect.quote_schema``) and from this package's constants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cohorts.compiler.dialects import Dialect

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")

#: Temp tables of one generation (per connection; dropped by the cleanup statements).
CODESETS = "soyang_codesets"
ENTRY_EVENTS = "soyang_entry_events"
QUALIFIED_EVENTS = "soyang_qualified_events"
INCLUSION_EVENTS = "soyang_inclusion_events"
FINAL_COHORT = "soyang_final_cohort"
TEMP_TABLES = (CODESETS, ENTRY_EVENTS, QUALIFIED_EVENTS, INCLUSION_EVENTS, FINAL_COHORT)


def lit(value: int) -> str:
    """An integer literal; refuses anything that is not an ``int`` (bools included) so text never slips in."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an int literal, got {type(value).__name__}")
    return str(value)


@dataclass
class Context:
    """Mutable state of one ``compile_cohort`` call."""

    dialect: Dialect
    cdm: str  # quoted schema
    vocabulary: str  # quoted schema
    results: str  # quoted schema
    params: dict[str, Any] = field(default_factory=dict)
    ctes: list[tuple[str, str]] = field(default_factory=list)
    #: Concept ids of every concept set, resolved by the database before compiling (``codesets_query``), or
    #: None: then the statements read them from the codesets temp table.
    codeset_values: dict[int, list[int]] | None = None
    _counter: int = 0
    _codeset_params: dict[int, str] = field(default_factory=dict)

    def bind(self, value: Any) -> str:
        """A placeholder for ``value``; the value travels beside the SQL, never inside it."""
        self._counter += 1
        name = f"p{self._counter}"
        self.params[name] = value
        return f"%({name})s"

    def in_codeset(self, column: str, codeset_id: int) -> str:
        """``column`` is a concept of concept set ``codeset_id``: against the resolved ids bound as an array where
        they are known (the planner then estimates the rows from the column's statistics, as for a literal list),
        else through the codesets temp table as the dialect reads it."""
        if self.codeset_values is None:
            return self.dialect.in_codeset(column, lit(codeset_id), CODESETS)
        return self.dialect.in_array(column, self.codeset_array(codeset_id))

    def codeset_array(self, codeset_id: int) -> str:
        """The placeholder of concept set ``codeset_id``'s resolved ids (one per concept set, however often used)."""
        if codeset_id not in self._codeset_params:
            values = self.codeset_values or {}
            self._codeset_params[codeset_id] = self.bind(list(values.get(codeset_id, [])))
        return self._codeset_params[codeset_id]

    def new_name(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self._counter}"

    def add_cte(self, prefix: str, sql: str) -> str:
        """Register a CTE of the current statement (after the ones it uses) and return its name."""
        name = self.new_name(prefix)
        self.ctes.append((name, sql))
        return name

    def take_ctes(self) -> list[tuple[str, str]]:
        ctes, self.ctes = self.ctes, []
        return ctes

    def statement(self, sql: str) -> tuple[str, dict[str, Any]]:
        """``sql`` with exactly the parameters it uses (engines may refuse extra ones)."""
        used = {name: self.params[name] for name in _PLACEHOLDER.findall(sql) if name in self.params}
        return sql, used

    def table(self, name: str) -> str:
        """A CDM table (constant names only)."""
        return f"{self.cdm}.{name}"

    def vocab(self, name: str) -> str:
        return f"{self.vocabulary}.{name}"


class WithCtes(str):
    """The text of ``WITH … select`` that also keeps its parts: ``ctes`` (name, query) in order and the final
    ``select``, so that a dialect that stages CTEs as temp tables of their own (Spark) can take them apart."""

    ctes: tuple[tuple[str, str], ...]
    select: str

    def __new__(cls, text: str, ctes: list[tuple[str, str]], select: str) -> WithCtes:
        made = super().__new__(cls, text)
        made.ctes = tuple(ctes)
        made.select = select
        return made


def with_ctes(ctes: list[tuple[str, str]], select: str, *, inline: tuple[str, str] | None = None) -> str:
    """``WITH a AS (...), b AS (...) select`` (or just ``select``). ``inline``: ``(name, keyword)`` of a CTE the
    engine should expand where it is used (PostgreSQL: ``NOT MATERIALIZED``) rather than compute once."""
    if not ctes:
        return select
    body = ",\n".join(
        f"{name} AS {inline[1] if inline is not None and inline[0] == name else ''}(\n{sql}\n)" for name, sql in ctes
    )
    return WithCtes(f"WITH {body}\n{select}", ctes, select)
