"""One concept and its neighbourhood: parents and children, how many descendants, and the concepts it maps to
and is mapped from."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Q

from warehouse.models import Concept, ConceptAncestor, ConceptRelationship
from warehouse.vocabulary.search import concept_as_dict


def concept_get(concept_id: int) -> Concept | None:
    return Concept.objects.filter(concept_id=concept_id).first()


def concept_hierarchy(concept_id: int, *, limit: int = 200) -> dict[str, Any]:
    """Parents and children (one level, with their separation), the number of all descendants, and the
    concepts it maps to / is mapped from."""
    parents = ConceptAncestor.objects.filter(descendant_concept_id=concept_id, min_levels_of_separation=1)
    children = ConceptAncestor.objects.filter(ancestor_concept_id=concept_id, min_levels_of_separation=1)
    parent_levels = {a.ancestor_concept_id: a.min_levels_of_separation for a in parents[:limit]}
    child_levels = {a.descendant_concept_id: a.min_levels_of_separation for a in children[:limit]}
    descendants_total = ConceptAncestor.objects.filter(
        ancestor_concept_id=concept_id, min_levels_of_separation__gt=0
    ).count()
    relations = ConceptRelationship.objects.filter(
        Q(concept_id_1=concept_id) | Q(concept_id_2=concept_id), invalid_reason=""
    )
    maps_to: set[int] = set()
    mapped_from: set[int] = set()
    for r in relations:
        # Both directions are stored in real vocabularies; read either so a partial export still shows them.
        if r.concept_id_1 == concept_id:
            (maps_to if r.relationship_id == "Maps to" else mapped_from).add(r.concept_id_2)
        else:
            (mapped_from if r.relationship_id == "Maps to" else maps_to).add(r.concept_id_1)
    maps_to.discard(concept_id)
    mapped_from.discard(concept_id)
    concepts = Concept.objects.in_bulk(set(parent_levels) | set(child_levels) | maps_to | mapped_from)

    def listed(ids: Iterable[int], levels: dict[int, int] | None = None) -> list[dict[str, Any]]:
        out = []
        for cid in ids:
            if cid not in concepts:
                continue
            item = concept_as_dict(concepts[cid])
            if levels is not None:
                item["min_levels_of_separation"] = levels[cid]
            out.append(item)
        return sorted(out, key=lambda d: (d["concept_name"].lower(), d["concept_id"]))

    return {
        "ancestors": listed(parent_levels, parent_levels),
        "descendants": listed(child_levels, child_levels),
        "descendants_total": descendants_total,
        "maps_to": listed(maps_to),
        "mapped_from": listed(mapped_from),
    }
