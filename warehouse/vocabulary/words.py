"""The word list: the distinct words of the concept names, which the search corrects a misspelled word against
(searching millions of names for similar strings is slow; the list of distinct words is short). Each load
rebuilds it from the names it loaded."""

from __future__ import annotations

import re

from django.db import connection

from warehouse.models import Concept, ConceptWord
from warehouse.vocabulary.tables import BATCH_ROWS

WORD_RE = re.compile(r"[a-z0-9]+")
MIN_WORD = 3


def words_insert_sql(*, concepts: str, words: str) -> str:
    """The statement filling the word list ``words`` from the names of ``concepts`` (PostgreSQL)."""
    return (
        f"INSERT INTO {words} (word) SELECT DISTINCT w FROM {concepts}, "
        "regexp_split_to_table(lower(concept_name), '[^a-z0-9]+') AS w WHERE length(w) BETWEEN %(min)s AND 100"
    )


#: The live tables' statement (scripts/bench_vocabulary.py builds its word list with it too).
WORDS_INSERT_SQL = words_insert_sql(concepts="warehouse_concept", words="warehouse_conceptword")


def words_rebuild() -> int:
    """Refill ConceptWord from the concept names (inside the caller's transaction); returns the word count."""
    ConceptWord.objects.all().delete()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(WORDS_INSERT_SQL, {"min": MIN_WORD})
            return cursor.rowcount
    words = {
        w
        for name in Concept.objects.values_list("concept_name", flat=True).iterator()
        for w in WORD_RE.findall(name.lower())
        if MIN_WORD <= len(w) <= 100
    }
    ConceptWord.objects.bulk_create([ConceptWord(word=w) for w in words], batch_size=BATCH_ROWS)
    return len(words)
