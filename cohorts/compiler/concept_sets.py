"""Concept sets → one ``(codeset_id, concept_id)`` table, resolved once per generation.

Circe's rules, per concept set: the included concepts (found in CONCEPT), their valid descendants when
``includeDescendants``, and the source concepts that ``Maps to`` either of those when ``includeMapped``; minus the
same expansion of the excluded items. Concept ids are validated integers, written as literals.
"""

from __future__ import annotations

from cohorts.compiler.context import Context, lit, with_ctes
from cohorts.expression import CohortExpression


def codesets_statement(ctx: Context, expression: CohortExpression) -> str:
    """The SELECT of the codesets temp table."""
    rows = [
        f"({lit(cs.id)}, CAST({lit(item.concept_id)} AS BIGINT), {_bool(item.is_excluded)}, "
        f"{_bool(item.include_descendants)}, {_bool(item.include_mapped)})"
        for cs in expression.concept_sets
        for item in cs.items
    ]
    if not rows:
        return "SELECT CAST(NULL AS INTEGER) AS codeset_id, CAST(NULL AS BIGINT) AS concept_id WHERE 1 = 0"
    concept = ctx.vocab("concept")
    ctes = [
        (
            "items",
            "SELECT CAST(codeset_id AS INTEGER) AS codeset_id, concept_id, is_excluded, include_descendants, "
            "include_mapped FROM (VALUES\n" + ",\n".join(rows) + "\n) AS v (codeset_id, concept_id, is_excluded, "
            "include_descendants, include_mapped)",
        ),
        (
            "direct",
            "SELECT i.codeset_id, i.is_excluded, i.include_mapped, c.concept_id FROM items i\n"
            f"JOIN {concept} c ON c.concept_id = i.concept_id",
        ),
        (
            "descendants",
            "SELECT i.codeset_id, i.is_excluded, i.include_mapped, c.concept_id FROM items i\n"
            f"JOIN {ctx.vocab('concept_ancestor')} ca ON ca.ancestor_concept_id = i.concept_id\n"
            f"JOIN {concept} c ON c.concept_id = ca.descendant_concept_id AND c.invalid_reason IS NULL\n"
            "WHERE i.include_descendants",
        ),
        ("expanded", "SELECT * FROM direct UNION SELECT * FROM descendants"),
        (
            "mapped",
            "SELECT e.codeset_id, e.is_excluded, cr.concept_id_1 AS concept_id FROM expanded e\n"
            f"JOIN {ctx.vocab('concept_relationship')} cr ON cr.concept_id_2 = e.concept_id "
            "AND cr.relationship_id = 'Maps to' AND cr.invalid_reason IS NULL\n"
            "WHERE e.include_mapped",
        ),
        (
            "resolved",
            "SELECT codeset_id, is_excluded, concept_id FROM expanded "
            "UNION SELECT codeset_id, is_excluded, concept_id FROM mapped",
        ),
    ]
    select = (
        "SELECT codeset_id, CAST(concept_id AS BIGINT) AS concept_id FROM resolved WHERE NOT is_excluded\n"
        "EXCEPT\nSELECT codeset_id, CAST(concept_id AS BIGINT) AS concept_id FROM resolved WHERE is_excluded"
    )
    return with_ctes(ctes, select)


def _bool(value: bool) -> str:
    return "TRUE" if value else "FALSE"
