"""Concept sets → one ``(codeset_id, concept_id)`` table, resolved once per generation.

Circe's rules, per concept set: the included concepts (found in CONCEPT), their valid descendants when
``includeDescendants``, and the source concepts that ``Maps to`` either of those when ``includeMapped``; minus the
same expansion of the excluded items. Concept ids are validated integers, written as literals.
"""

from __future__ import annotations

from cohorts.compiler.context import Context, lit, with_ctes
from cohorts.compiler.criteria import concepts_in
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
    d = ctx.dialect
    # Nested loops are off in the generation's transaction (PostgreSQL), so every vocabulary table is reached
    # through an index condition (a literal list, or an array computed once) rather than by a join that would
    # become a hash join over the whole table (CONCEPT_ANCESTOR and CONCEPT_RELATIONSHIP are the largest).
    items_ids = concepts_in(
        "c.concept_id", sorted({item.concept_id for cs in expression.concept_sets for item in cs.items})
    )
    descendant_ids = sorted(
        {item.concept_id for cs in expression.concept_sets for item in cs.items if item.include_descendants}
    )
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
            f"JOIN {concept} c ON c.concept_id = i.concept_id\nWHERE {items_ids}",
        ),
    ]
    if descendant_ids:
        ctes += [
            (
                "ancestry",
                "SELECT i.codeset_id, i.is_excluded, i.include_mapped, ca.descendant_concept_id AS concept_id "
                f"FROM items i\nJOIN {ctx.vocab('concept_ancestor')} ca ON ca.ancestor_concept_id = i.concept_id\n"
                f"WHERE i.include_descendants AND {concepts_in('ca.ancestor_concept_id', descendant_ids)}",
            ),
            (
                "descendants",
                f"SELECT a.codeset_id, a.is_excluded, a.include_mapped, c.concept_id FROM ancestry a\n"
                f"JOIN {concept} c ON c.concept_id = a.concept_id AND c.invalid_reason IS NULL\n"
                f"WHERE {d.in_select('c.concept_id', 'SELECT concept_id FROM ancestry')}",
            ),
            ("expanded", "SELECT * FROM direct UNION SELECT * FROM descendants"),
        ]
    else:
        ctes.append(("expanded", "SELECT DISTINCT * FROM direct"))
    mapped = any(item.include_mapped for cs in expression.concept_sets for item in cs.items)
    excluded = any(item.is_excluded for cs in expression.concept_sets for item in cs.items)
    if not mapped and not excluded:
        # Nothing to map and nothing to take away (the usual concept set): the expanded concepts, once each.
        return with_ctes(ctes, "SELECT DISTINCT codeset_id, CAST(concept_id AS BIGINT) AS concept_id FROM expanded")
    ctes += [
        (
            "mapped",
            "SELECT e.codeset_id, e.is_excluded, cr.concept_id_1 AS concept_id FROM expanded e\n"
            f"JOIN {ctx.vocab('concept_relationship')} cr ON cr.concept_id_2 = e.concept_id "
            "AND cr.relationship_id = 'Maps to' AND cr.invalid_reason IS NULL\n"
            f"WHERE e.include_mapped AND "
            f"{d.in_select('cr.concept_id_2', 'SELECT concept_id FROM expanded WHERE include_mapped')}",
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
