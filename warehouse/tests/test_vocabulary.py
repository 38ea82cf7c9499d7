"""The portal's vocabulary: loading it (from a source, from CSV files), searching it, its hierarchy, the
counts per site, and concept set resolution that agrees with the cohort compiler on GiBleed."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Any

import pytest

from accounts.tests.factories import gibleed_pg_source
from cohorts.compiler.codesets import codesets_statement
from cohorts.compiler.context import Context
from cohorts.compiler.dialects import dialect_for
from cohorts.expression import parse_expression
from warehouse.models import Concept, ConceptAncestor, ConceptCount, ConceptRelationship, Domain, Vocabulary
from warehouse.vocabulary.counts import UnkeyedPersons, concept_counts_refresh
from warehouse.vocabulary.hierarchy import concept_hierarchy
from warehouse.vocabulary.load import vocabulary_load_from_directory, vocabulary_load_from_source
from warehouse.vocabulary.resolve import SetItem, concept_set_resolve
from warehouse.vocabulary.search import concept_query, concept_search, vocabulary_filters
from warehouse.vocabulary.tables import VocabularyError

pytestmark = pytest.mark.django_db

GI_BLEED = 192671  # Gastrointestinal hemorrhage (SNOMED, standard)
GI_BLEED_ICD10 = 35208414  # K92.2, maps to 192671
CELECOXIB = 1118084
ASTHMA = 317009
CHILDHOOD_ASTHMA = 4051466
SINUSITIS = 4283893
CHRONIC_SINUSITIS = 257012
VIRAL_SINUSITIS = 40481087


@pytest.fixture
def gibleed_source(cdm_gibleed_pg: Any) -> Any:
    return gibleed_pg_source(cdm_gibleed_pg)


@pytest.fixture
def vocabulary(gibleed_source: Any, cdm_gibleed_pg: Any) -> Any:
    vocabulary_load_from_source(source=gibleed_source, engine=cdm_gibleed_pg.engine)
    return gibleed_source


def _ids(text: str, **filters: Any) -> list[int]:
    return [c.concept_id for c in concept_search(concept_query(q=text, **filters))]


def test_loading_from_a_source_copies_concepts_ancestors_and_mappings(vocabulary: Any) -> None:
    assert Concept.objects.count() == 444
    assert ConceptAncestor.objects.count() == 65690
    # Only the relationships concept sets and the concept page use are kept.
    assert set(ConceptRelationship.objects.values_list("relationship_id", flat=True)) == {"Maps to", "Mapped from"}
    assert Vocabulary.objects.filter(vocabulary_id="SNOMED").exists()
    bleed = Concept.objects.get(concept_id=GI_BLEED)
    assert (bleed.domain_id, bleed.vocabulary_id, bleed.standard_concept) == ("Condition", "SNOMED", "S")


def test_loading_again_replaces_the_previous_copy(vocabulary: Any, cdm_gibleed_pg: Any) -> None:
    Concept.objects.create(
        concept_id=999_999_999,
        concept_name="stale",
        domain_id="X",
        vocabulary_id="X",
        concept_class_id="X",
        concept_code="X",
    )
    vocabulary_load_from_source(source=vocabulary, engine=cdm_gibleed_pg.engine)
    assert not Concept.objects.filter(concept_id=999_999_999).exists()
    assert Concept.objects.count() == 444


def test_loading_athena_tab_separated_files_with_compact_dates(tmp_path: Path, shared_data_dir: Path) -> None:
    gibleed = shared_data_dir / "omop" / "gibleed"
    for table in ("concept", "concept_ancestor", "concept_relationship", "vocabulary", "domain"):
        with gzip.open(gibleed / f"{table}.csv.gz", "rt", encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        header = rows[0]
        for row in rows[1:]:
            for i, name in enumerate(header):
                if name.endswith("_date") and row[i]:
                    row[i] = row[i].replace("-", "")  # Athena: 20070101
        with (tmp_path / f"{table.upper()}.csv").open("w", encoding="utf-8", newline="") as out:
            csv.writer(
                out, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar=None, quotechar=None, lineterminator="\n"
            ).writerows(rows)
    report = vocabulary_load_from_directory(directory=tmp_path)
    assert report.rows["concept"] == 444
    assert report.rows["concept_ancestor"] == 65690
    assert Concept.objects.get(concept_id=GI_BLEED_ICD10).concept_name == "Gastrointestinal hemorrhage, unspecified"
    assert str(Concept.objects.get(concept_id=GI_BLEED_ICD10).valid_start_date) == "2007-01-01"


def test_loading_a_folder_without_concepts_is_refused_and_changes_nothing(vocabulary: Any, tmp_path: Path) -> None:
    (tmp_path / "vocabulary.csv").write_text("vocabulary_id,vocabulary_name\nX,Y\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match="no CONCEPT.csv"):
        vocabulary_load_from_directory(directory=tmp_path)
    assert Concept.objects.count() == 444


def test_search_by_words_finds_names_containing_every_word(vocabulary: Any) -> None:
    ids = _ids("gastrointestinal hemorrhage")
    assert GI_BLEED in ids
    names = Concept.objects.in_bulk(ids)
    assert all("gastrointestinal" in names[i].concept_name.lower() for i in ids)


def test_search_by_code_and_by_id_ranks_the_exact_match_first(vocabulary: Any) -> None:
    assert _ids("K92.2")[0] == GI_BLEED_ICD10
    assert _ids(str(GI_BLEED))[0] == GI_BLEED


def test_standard_concepts_come_before_non_standard_ones_on_ties(vocabulary: Any) -> None:
    # Both names start with "Gastrointestinal hemorrhage": the standard SNOMED concept is ranked first.
    ids = _ids("Gastrointestinal hemorrhage")
    assert ids.index(GI_BLEED) < ids.index(GI_BLEED_ICD10)


def test_exact_name_comes_before_a_longer_name_with_the_same_prefix(vocabulary: Any) -> None:
    assert _ids("celecoxib")[0] == CELECOXIB


def test_filters_narrow_by_domain_vocabulary_and_standard(vocabulary: Any) -> None:
    assert _ids("hemorrhage", domain="Drug") == []
    assert _ids("hemorrhage", vocabulary="ICD10CM") == [GI_BLEED_ICD10]
    assert GI_BLEED_ICD10 not in _ids("hemorrhage", standard="S")
    assert _ids("hemorrhage", standard="N") == [GI_BLEED_ICD10]


def test_a_misspelled_word_still_finds_the_concept(vocabulary: Any) -> None:
    assert CELECOXIB in _ids("celecoxb")


def test_bad_search_parameters_are_refused_with_a_message() -> None:
    for params, message in (
        ({"q": "  "}, "type a concept"),
        ({"q": "x", "limit": "100000"}, "limit must be between 1 and 100"),
        ({"q": "x", "limit": "ten"}, "limit must be a whole number"),
        ({"q": "x", "standard": "Q"}, "standard must be"),
        ({"q": "x" * 201}, "longer than 200"),
    ):
        with pytest.raises(ValueError, match=message):
            concept_query(**params)


def test_hierarchy_lists_parents_children_one_level_down_and_all_descendants(vocabulary: Any) -> None:
    down = concept_hierarchy(ASTHMA)
    assert CHILDHOOD_ASTHMA in [d["concept_id"] for d in down["descendants"]]
    up = concept_hierarchy(CHILDHOOD_ASTHMA)
    assert ASTHMA in [a["concept_id"] for a in up["ancestors"]]
    assert all(a["min_levels_of_separation"] == 1 for a in up["ancestors"] + down["descendants"])
    expected_total = ConceptAncestor.objects.filter(ancestor_concept_id=ASTHMA, min_levels_of_separation__gt=0).count()
    assert down["descendants_total"] == expected_total > 0
    assert [m["concept_id"] for m in concept_hierarchy(GI_BLEED)["mapped_from"]] == [GI_BLEED_ICD10]
    assert [m["concept_id"] for m in concept_hierarchy(GI_BLEED_ICD10)["maps_to"]] == [GI_BLEED]


@pytest.fixture
def made_up_keys(cdm_gibleed_pg: Any) -> Any:
    """A temporary record-key table on the test connection with keys known to the test (1 + person_id mod 255):
    the counting SQL is checked here on its own; how a site makes its real keys is the disclosure app's."""
    engine = cdm_gibleed_pg.engine
    engine.execute("DROP TABLE IF EXISTS made_up_keys")
    engine.execute(
        "CREATE TEMPORARY TABLE made_up_keys AS SELECT person_id, 1 + MOD(person_id, 255) AS record_key "
        "FROM gibleed.person"
    )
    yield "made_up_keys"
    engine.execute("DROP TABLE IF EXISTS made_up_keys")


def test_concept_counts_are_per_site_aggregates_of_the_domain_tables_with_their_cell_keys(
    vocabulary: Any, cdm_gibleed_pg: Any, made_up_keys: str
) -> None:
    engine = cdm_gibleed_pg.engine
    counted = concept_counts_refresh(source=vocabulary, engine=engine, record_keys=made_up_keys)
    assert counted > 0
    for concept_id, table, column in (
        (GI_BLEED, "condition_occurrence", "condition_concept_id"),
        (CELECOXIB, "drug_exposure", "drug_concept_id"),
        (VIRAL_SINUSITIS, "condition_occurrence", "condition_concept_id"),
    ):
        per_person = engine.fetchall(
            f"SELECT person_id, COUNT(*) FROM gibleed.{table} WHERE {column} = %(id)s GROUP BY person_id",
            {"id": concept_id},
        )
        stored = ConceptCount.objects.get(source=vocabulary, concept_id=concept_id)
        assert stored.record_count == sum(n for _, n in per_person)
        assert stored.person_count == len(per_person)
        # The person count's key: each distinct person's key once; the record count's: once per record.
        assert stored.person_key == sum(1 + person % 255 for person, _ in per_person) % 256
        assert stored.record_key == sum(n * (1 + person % 255) for person, n in per_person) % 256
    # Most persons have several records of viral sinusitis: its records are a cell apart from its persons.
    sinusitis = ConceptCount.objects.get(source=vocabulary, concept_id=VIRAL_SINUSITIS)
    assert sinusitis.record_count > 6 * sinusitis.person_count
    # Refreshing replaces, never adds.
    concept_counts_refresh(source=vocabulary, engine=engine, record_keys=made_up_keys)
    assert ConceptCount.objects.filter(source=vocabulary).count() == counted


def test_a_refresh_with_unkeyed_persons_stores_nothing_and_keeps_the_counts_there_were(
    vocabulary: Any, cdm_gibleed_pg: Any, made_up_keys: str
) -> None:
    engine = cdm_gibleed_pg.engine
    concept_counts_refresh(source=vocabulary, engine=engine, record_keys=made_up_keys)
    before = list(ConceptCount.objects.filter(source=vocabulary).order_by("concept_id").values())
    engine.execute(
        "DELETE FROM made_up_keys WHERE person_id IN (SELECT person_id FROM gibleed.condition_occurrence "
        "WHERE condition_concept_id = %(id)s ORDER BY person_id LIMIT 2)",
        {"id": GI_BLEED},
    )
    with pytest.raises(UnkeyedPersons, match="2 or more persons counted have no record key"):
        concept_counts_refresh(source=vocabulary, engine=engine, record_keys=made_up_keys)
    assert list(ConceptCount.objects.filter(source=vocabulary).order_by("concept_id").values()) == before


def _compiler_codeset(cdm: Any, items: list[dict[str, Any]]) -> list[int]:
    expression = parse_expression(
        {
            "ConceptSets": [{"id": 0, "name": "set", "expression": {"items": items}}],
            "PrimaryCriteria": {
                "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0}}],
                "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
                "PrimaryCriteriaLimit": {"Type": "All"},
            },
        }
    )
    dialect = dialect_for("postgresql")
    ctx = Context(
        dialect=dialect,
        cdm=dialect.quote_schema("gibleed"),
        vocabulary=dialect.quote_schema("gibleed"),
        results=dialect.quote_schema("gibleed_results"),
    )
    sql, params = ctx.statement(codesets_statement(ctx, expression))
    return sorted(row[1] for row in cdm.engine.fetchall(sql, params))


@pytest.mark.parametrize(
    "items",
    [
        [{"concept": {"CONCEPT_ID": GI_BLEED}, "includeDescendants": True}],
        [{"concept": {"CONCEPT_ID": GI_BLEED}, "includeDescendants": True, "includeMapped": True}],
        [
            {"concept": {"CONCEPT_ID": SINUSITIS}, "includeDescendants": True},
            {"concept": {"CONCEPT_ID": CHRONIC_SINUSITIS}, "includeDescendants": True, "isExcluded": True},
        ],
        [
            {"concept": {"CONCEPT_ID": 1118084}, "includeDescendants": True, "includeMapped": True},
            {"concept": {"CONCEPT_ID": 1118088}, "isExcluded": True},
        ],
        [{"concept": {"CONCEPT_ID": GI_BLEED_ICD10}, "includeMapped": True}],
    ],
    ids=[
        "descendants",
        "descendants-and-mapped",
        "exclusion-with-descendants",
        "drug-excluding-a-brand",
        "non-standard-alone",
    ],
)
def test_resolution_equals_the_compilers_codeset_on_gibleed(
    vocabulary: Any, cdm_gibleed_pg: Any, items: list[dict[str, Any]]
) -> None:
    ours = concept_set_resolve(
        SetItem(
            concept_id=item["concept"]["CONCEPT_ID"],
            is_excluded=item.get("isExcluded", False),
            include_descendants=item.get("includeDescendants", False),
            include_mapped=item.get("includeMapped", False),
        )
        for item in items
    )
    assert ours == _compiler_codeset(cdm_gibleed_pg, items)
    assert ours


def test_search_filters_offer_each_domain_and_vocabulary_with_concepts_once(vocabulary: Any) -> None:
    filters = vocabulary_filters()
    domains = set(Concept.objects.order_by().values_list("domain_id", flat=True))
    vocabularies = set(Concept.objects.order_by().values_list("vocabulary_id", flat=True))
    # One option each (the model's ordering once put one option per concept into the DISTINCT), sorted.
    assert filters["domains"] == sorted(domains) and len(filters["domains"]) < 30
    assert filters["vocabularies"] == sorted(vocabularies)
    # A vocabulary of the VOCABULARY table without a concept in this copy is no option.
    Vocabulary.objects.create(vocabulary_id="Unused", vocabulary_name="Listed, no concept")
    assert "Unused" not in vocabulary_filters()["vocabularies"]


def test_search_filters_without_domain_and_vocabulary_tables_come_from_the_concepts(vocabulary: Any) -> None:
    Vocabulary.objects.all().delete()
    Domain.objects.all().delete()
    filters = vocabulary_filters()
    assert filters["domains"] == sorted(set(Concept.objects.order_by().values_list("domain_id", flat=True)))
    assert filters["vocabularies"] == sorted(set(Concept.objects.order_by().values_list("vocabulary_id", flat=True)))


def test_the_vocabulary_loads_through_djangos_debug_cursor(gibleed_source: Any, cdm_gibleed_pg: Any) -> None:
    # With DEBUG on (the demo on a PostgreSQL portal database) Django wraps every cursor to log its queries.
    from django.db import connection

    connection.force_debug_cursor = True
    try:
        vocabulary_load_from_source(source=gibleed_source, engine=cdm_gibleed_pg.engine)
    finally:
        connection.force_debug_cursor = False
    assert Concept.objects.filter(concept_id=192671).exists()
