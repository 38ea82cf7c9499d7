"""Korean hospitals code diagnoses in KCD-7: typing a code (or its start) finds the source concepts and the standard
concepts they map to, with the mapping, on the portal's PostgreSQL and on the demo portal's SQLite; a misspelled
word is corrected on both. The vocabulary is the demo's: the synthetic CDM's files, loaded as `make run` loads
them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT
from warehouse.models import Concept, ConceptRelationship
from warehouse.synthetic import population, vocabulary
from warehouse.synthetic.kcd7 import KCD7_CODES
from warehouse.synthetic.synthesis import write_cdm
from warehouse.vocabulary.load import vocabulary_load_from_directory
from warehouse.vocabulary.search import (
    _search_ids_fallback,
    concept_query,
    concept_search,
    search_mappings,
)

T2DM, HYPERTENSION, ASTHMA, MI = 201826, 320128, 317009, 4329847


@pytest.fixture(scope="module")
def demo_vocabulary_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("demo-cdm")
    write_cdm(directory, persons=50, seed=7, chunk_size=50, jobs=1)
    return directory


@pytest.fixture
def demo_vocabulary(demo_vocabulary_dir: Path, db: Any) -> None:
    vocabulary_load_from_directory(directory=demo_vocabulary_dir)


def _hits(text: str, **filters: Any) -> list[tuple[int, list[str], list[int]]]:
    """(concept id, codes it is mapped from, concepts it maps to) of each hit, best first."""
    query = concept_query(q=text, **filters)
    found = concept_search(query)
    mappings = search_mappings(query, found)
    return [
        (
            c.concept_id,
            [f"{m['vocabulary_id']} {m['concept_code']}" for m in mappings[c.concept_id]["mapped_from"]],
            [m["concept_id"] for m in mappings[c.concept_id]["maps_to"]],
        )
        for c in found
    ]


def test_the_demo_vocabulary_has_kcd7_codes_mapped_to_the_conditions_the_generator_writes(
    demo_vocabulary: None,
) -> None:
    kcd7 = {c.concept_code: c for c in Concept.objects.filter(vocabulary_id="KCD7")}
    assert set(kcd7) == {code for code, *_ in KCD7_CODES}
    assert all(c.concept_class_id == "KCD7 code" and c.standard_concept == "" for c in kcd7.values())
    assert all(c.domain_id == "Condition" for c in kcd7.values())
    written = {c.concept_id for c in population.CHRONIC} | {a.concept_id for a in population.ACUTE}
    targets = dict(
        ConceptRelationship.objects.filter(
            relationship_id="Maps to", concept_id_1__in=[c.concept_id for c in kcd7.values()]
        ).values_list("concept_id_1", "concept_id_2")
    )
    for code, _name, _korean, target in KCD7_CODES:
        assert targets[kcd7[code].concept_id] == target
        standard = Concept.objects.get(concept_id=target)
        assert standard.standard_concept == "S" and standard.domain_id == "Condition"
        assert target in written, f"{code} maps to {target}, which the generator never writes"
    assert (kcd7["E11.9"].concept_id, T2DM) in vocabulary.SOURCE_MAPS
    # The 'Mapped from' rows go the other way, as in the OHDSI vocabularies.
    assert ConceptRelationship.objects.filter(
        relationship_id="Mapped from", concept_id_1=T2DM, concept_id_2=kcd7["E11.9"].concept_id
    ).exists()


def test_a_kcd7_code_finds_its_source_concept_and_the_standard_concept_it_maps_to(demo_vocabulary: None) -> None:
    hits = _hits("E11.9")
    e119 = Concept.objects.get(vocabulary_id="KCD7", concept_code="E11.9").concept_id
    assert hits[0] == (e119, [], [T2DM])  # the code itself, with where it maps
    assert hits[1] == (T2DM, ["KCD7 E11.9"], [])  # the standard concept, with the code that brought it
    # Hospitals store codes without the dot, in any case.
    assert _hits("e119")[:2] == hits[:2]
    assert [h[0] for h in _hits("I10")][:2] == [
        Concept.objects.get(vocabulary_id="KCD7", concept_code="I10").concept_id,
        HYPERTENSION,
    ]


def test_the_start_of_a_code_finds_every_code_under_it_and_their_standard_concepts(demo_vocabulary: None) -> None:
    hits = {h[0]: h for h in _hits("E11")}
    assert hits[T2DM][1] == ["KCD7 E11", "KCD7 E11.9"]
    assert {Concept.objects.get(pk=i).concept_code for i in hits if i != T2DM} >= {"E11", "E11.9"}
    mi = {h[0]: h for h in _hits("I21")}
    assert mi[MI][1] == ["KCD7 I21", "KCD7 I21.9"]
    # ICD-10-CM codes are found the same way (the GI bleed code the generator writes as a source concept).
    assert (192671, ["ICD10CM K92.2", "KCD7 K92.2"], []) in _hits("K92")
    # Filters apply to the concepts returned: only the standard concept is left.
    assert [h[0] for h in _hits("E11", standard="S")] == [T2DM]
    assert _hits("E11", domain="Drug") == []


def test_text_that_is_no_code_searches_names_as_before(demo_vocabulary: None) -> None:
    assert _hits("asthma")[0][0] == ASTHMA
    assert all(not h[1] for h in _hits("asthma"))


def test_a_misspelled_word_is_corrected_on_postgresql_and_by_the_fallback_search(demo_vocabulary: None) -> None:
    assert T2DM in [h[0] for h in _hits("diabtes")]
    assert T2DM in _search_ids_fallback(concept_query(q="diabtes"))
    assert ASTHMA in _search_ids_fallback(concept_query(q="asthmma"))
    # The fallback ranks a code search as PostgreSQL does.
    assert _search_ids_fallback(concept_query(q="E11.9"))[:2] == [h[0] for h in _hits("E11.9")][:2]


SQLITE_SCRIPT = """
import json, sys
import django
django.setup()
from pathlib import Path
from django.core.management import call_command
from django.db import connection
from warehouse.vocabulary.load import vocabulary_load_from_directory
from warehouse.vocabulary.search import concept_query, concept_search, search_mappings
call_command("migrate", verbosity=0, interactive=False)
vocabulary_load_from_directory(directory=Path(sys.argv[1]))
out = {"vendor": connection.vendor}
for text in ("E11", "e119", "I21", "diabtes"):
    query = concept_query(q=text)
    found = concept_search(query)
    mappings = search_mappings(query, found)
    out[text] = [[c.concept_id, [m["concept_code"] for m in mappings[c.concept_id]["mapped_from"]],
                  [m["concept_id"] for m in mappings[c.concept_id]["maps_to"]]] for c in found]
print(json.dumps(out))
"""


def test_the_demo_portals_sqlite_finds_codes_and_corrects_misspellings(
    demo_vocabulary_dir: Path, tmp_path: Path
) -> None:
    """A real SQLite portal database, as `make run` makes it (its own process and settings)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "DJANGO_SETTINGS_MODULE": "portal.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", SQLITE_SCRIPT, str(demo_vocabulary_dir)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["vendor"] == "sqlite"
    e11 = {hit[0]: hit for hit in out["E11"]}
    assert e11[T2DM][1] == ["E11", "E11.9"]
    assert out["e119"][0][2] == [T2DM] and out["e119"][1] == [T2DM, ["E11.9"], []]
    assert {hit[0]: hit for hit in out["I21"]}[MI][1] == ["I21", "I21.9"]
    assert T2DM in [hit[0] for hit in out["diabtes"]]
