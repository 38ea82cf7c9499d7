"""The cohort SQL compiler: a parsed cohort expression → statements for PostgreSQL or DuckDB.

Plain Python without Django: expression nodes → one builder per CDM domain → SQL text with ``%(name)s``
placeholders and the bound values beside it; dialect differences live in ``dialects``.
"""

from __future__ import annotations

from cohorts.compiler.cohort import (
    RESULTS_TABLES,
    CompiledCohort,
    codesets_query,
    compile_cohort,
    results_present,
    results_setup,
)
from cohorts.compiler.dialects import DIALECTS, Dialect, DuckDBDialect, PostgresDialect

__all__ = [
    "DIALECTS",
    "RESULTS_TABLES",
    "CompiledCohort",
    "Dialect",
    "DuckDBDialect",
    "PostgresDialect",
    "codesets_query",
    "compile_cohort",
    "results_present",
    "results_setup",
]
