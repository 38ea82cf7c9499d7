"""Concept set resolution: the compiler's rules (``cohorts.compiler.codesets``), against the portal's copy."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from warehouse.models import Concept, ConceptAncestor, ConceptRelationship


@dataclass(frozen=True)
class SetItem:
    concept_id: int
    is_excluded: bool = False
    include_descendants: bool = False
    include_mapped: bool = False


def concept_set_resolve(items: Iterable[SetItem]) -> list[int]:
    """The concept ids a concept set stands for, sorted, exactly as ``cohorts.compiler.codesets`` resolves
    it on a site: each item that exists in CONCEPT, its valid descendants (CONCEPT_ANCESTOR) when
    ``include_descendants``, the concepts that 'Maps to' any of those when ``include_mapped``; the excluded
    items expanded the same way are taken out."""
    items = list(items)
    ids = {i.concept_id for i in items}
    existing = set(Concept.objects.filter(concept_id__in=ids).values_list("concept_id", flat=True))
    with_descendants = {i.concept_id for i in items if i.include_descendants}
    descendants: dict[int, set[int]] = {}
    if with_descendants:
        pairs = ConceptAncestor.objects.filter(ancestor_concept_id__in=with_descendants).values_list(
            "ancestor_concept_id", "descendant_concept_id"
        )
        valid = set(
            Concept.objects.filter(
                concept_id__in=ConceptAncestor.objects.filter(ancestor_concept_id__in=with_descendants).values(
                    "descendant_concept_id"
                ),
                invalid_reason="",
            ).values_list("concept_id", flat=True)
        )
        for ancestor, descendant in pairs:
            if descendant in valid:
                descendants.setdefault(ancestor, set()).add(descendant)
    result: dict[bool, set[int]] = {False: set(), True: set()}
    to_map: dict[bool, set[int]] = {False: set(), True: set()}
    for item in items:
        expanded = {item.concept_id} & existing
        if item.include_descendants:
            expanded |= descendants.get(item.concept_id, set())
        result[item.is_excluded] |= expanded
        if item.include_mapped:
            to_map[item.is_excluded] |= expanded
    for excluded, targets in to_map.items():
        if targets:
            result[excluded] |= set(
                ConceptRelationship.objects.filter(
                    concept_id_2__in=targets, relationship_id="Maps to", invalid_reason=""
                ).values_list("concept_id_1", flat=True)
            )
    return sorted(result[False] - result[True])
