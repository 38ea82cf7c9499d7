"""The concept search: a validated query, its ranked PostgreSQL statement (the same ranks computed in Python on
other databases), and the public fields of a concept that the search endpoints return."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q

from warehouse.models import Concept, ConceptRelationship, ConceptWord, Domain, Vocabulary
from warehouse.vocabulary.words import MIN_WORD, WORD_RE

STANDARD_CHOICES = ("S", "C", "N", "any")
#: Text that reads as an ICD-10 or KCD-7 code or its start: a letter, a digit, then up to five more characters
#: with at most one dot ("E1", "E11", "E11.9", "S72.00", "E119"). Such text also searches source codes by
#: prefix and the standard concepts they map to.
CODE_RE = re.compile(r"[A-Z][0-9][0-9A-Z]{0,2}(\.[0-9A-Z]{0,3})?")
#: Source concepts read per code search, at most: every code under a three-character category is far fewer.
CODE_SOURCES = 200
MAX_LIMIT = 100
MAX_OFFSET = 1_000
MAX_QUERY_LENGTH = 200
INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class ConceptQuery:
    """A validated search: build it with ``concept_query`` (raises ``ValueError`` with a message)."""

    text: str
    domain: str = ""
    vocabulary: str = ""
    standard: str = "any"
    include_invalid: bool = False
    limit: int = 25
    offset: int = 0

    @property
    def words(self) -> list[str]:
        return [w for w in re.findall(r"\w+", self.text.lower()) if w]

    @property
    def as_id(self) -> int | None:
        return int(self.text) if self.text.isdigit() and int(self.text) <= INT_MAX else None

    @property
    def code_prefixes(self) -> list[str]:
        """The code prefixes the text stands for when it looks like an ICD-10 / KCD-7 code ("E11", "e11.9",
        "I21"): upper case, and also with the dot put back when a hospital's habit left it out ("E119" →
        "E11.9"); empty for any other text."""
        text = self.text.strip().upper()
        if not CODE_RE.fullmatch(text):
            return []
        prefixes = [text]
        if "." not in text and len(text) > 3:
            prefixes.append(f"{text[:3]}.{text[3:]}")
        return prefixes


def _int_param(value: Any, name: str, default: int, low: int, high: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number") from None
    if not low <= number <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return number


def concept_query(
    *,
    q: Any,
    domain: Any = "",
    vocabulary: Any = "",
    standard: Any = "any",
    include_invalid: Any = False,
    limit: Any = 25,
    offset: Any = 0,
) -> ConceptQuery:
    """Validate raw search parameters (from a query string) into a ``ConceptQuery``; ``ValueError`` otherwise."""
    text = str(q or "").strip()
    if not text:
        raise ValueError("type a concept name, code or id to search")
    if len(text) > MAX_QUERY_LENGTH:
        raise ValueError(f"the search text is longer than {MAX_QUERY_LENGTH} characters")
    standard = str(standard or "any")
    if standard not in STANDARD_CHOICES:
        raise ValueError("standard must be S (standard), C (classification), N (non-standard) or any")
    for name, value in (("domain", domain), ("vocabulary", vocabulary)):
        if value and (len(str(value)) > 20 or not re.fullmatch(r"[\w /&.-]+", str(value))):
            raise ValueError(f"unknown {name} {value!r}")
    return ConceptQuery(
        text=text,
        domain=str(domain or ""),
        vocabulary=str(vocabulary or ""),
        standard=standard,
        include_invalid=str(include_invalid).lower() in ("1", "true", "on", "yes"),
        limit=_int_param(limit, "limit", 25, 1, MAX_LIMIT),
        offset=_int_param(offset, "offset", 0, 0, MAX_OFFSET),
    )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filters_sql(query: ConceptQuery, params: dict[str, Any]) -> str:
    conditions = []
    if query.domain:
        conditions.append("domain_id = %(domain)s")
        params["domain"] = query.domain
    if query.vocabulary:
        conditions.append("vocabulary_id = %(vocabulary)s")
        params["vocabulary"] = query.vocabulary
    if query.standard in ("S", "C"):
        conditions.append("standard_concept = %(standard)s")
        params["standard"] = query.standard
    elif query.standard == "N":
        conditions.append("standard_concept = ''")
    if not query.include_invalid:
        conditions.append("invalid_reason = ''")
    return "".join(f" AND {c}" for c in conditions)


#: How many matches of one kind (code, exact name, prefix, words) are ranked: enough for every page a person
#: reads, bounded so that a common word over millions of concepts stays fast.
CANDIDATES = 500


def _codes(query: ConceptQuery) -> list[str]:
    """The codes an exact code match accepts: the text, upper-cased, and its dotted form for a dotless code."""
    return query.code_prefixes or [query.text.upper()]


def search_sql(query: ConceptQuery) -> tuple[str, dict[str, Any]]:
    """The PostgreSQL statement of a search and its parameters.

    Ranks: 0 id, 1 code, 2 a standard concept that a source code equal to the text maps to, 3 exact name,
    4 name prefix, 5 a standard concept that a source code starting with the text maps to, 6 code prefix, 7 every
    word in the name (2, 5 and 6 only for text that reads as a code, ``ConceptQuery.code_prefixes``); then
    standard concepts first, trigram similarity, shorter names. Each kind is found through its own index (b-tree
    on the id, upper(code), lower(name); trigram GIN for the words and the code prefixes) and capped before
    ranking.
    """
    params: dict[str, Any] = {
        "q": query.text,
        "q_lower": query.text.lower(),
        "prefix": _like_escape(query.text.lower()) + "%",
        "cap": max(CANDIDATES, query.offset + query.limit),
        "sources": CODE_SOURCES,
        "limit": query.limit,
        "offset": query.offset,
    }
    filters = _filters_sql(query, params)
    codes = _codes(query)
    for i, code in enumerate(codes):
        params[f"code{i}"] = code
    code_list = ", ".join(f"%(code{i})s" for i in range(len(codes)))
    branches = []
    if query.as_id is not None:
        params["id"] = query.as_id
        branches.append(f"SELECT concept_id, 0 AS rank FROM warehouse_concept WHERE concept_id = %(id)s{filters}")
    branches += [
        f"(SELECT concept_id, 1 FROM warehouse_concept WHERE upper(concept_code) IN ({code_list}){filters} "
        "LIMIT %(cap)s)",
        f"(SELECT concept_id, 3 FROM warehouse_concept WHERE lower(concept_name) = %(q_lower)s{filters} LIMIT %(cap)s)",
        f"(SELECT concept_id, 4 FROM warehouse_concept WHERE lower(concept_name) LIKE %(prefix)s{filters} "
        "LIMIT %(cap)s)",
    ]
    if query.code_prefixes:
        for i, code in enumerate(query.code_prefixes):
            params[f"code_like{i}"] = _like_escape(code) + "%"
        code_like = " OR ".join(f"concept_code LIKE %(code_like{i})s" for i in range(len(query.code_prefixes)))

        def mapped(rank: int, sources: str) -> str:
            # The standard concepts the matching source concepts map to; the filters apply to those.
            return (
                f"(SELECT concept_id, {rank} FROM warehouse_concept WHERE concept_id IN ("
                f"SELECT r.concept_id_2 FROM (SELECT concept_id FROM warehouse_concept WHERE ({sources}) "
                "AND standard_concept <> 'S' LIMIT %(sources)s) AS s JOIN warehouse_conceptrelationship r "
                "ON r.concept_id_1 = s.concept_id AND r.relationship_id = 'Maps to' AND r.invalid_reason = '' "
                f"AND r.concept_id_2 <> s.concept_id){filters} LIMIT %(cap)s)"
            )

        branches += [
            mapped(2, f"upper(concept_code) IN ({code_list})"),
            mapped(5, code_like),
            f"(SELECT concept_id, 6 FROM warehouse_concept WHERE ({code_like}){filters} LIMIT %(cap)s)",
        ]
    # Words of three letters or more use the trigram index; shorter ones only narrow those matches.
    long_words = [w for w in query.words if len(w) >= 3]
    if long_words:
        word_conditions = []
        for i, word in enumerate(query.words):
            params[f"w{i}"] = f"%{_like_escape(word)}%"
            word_conditions.append(f"concept_name ILIKE %(w{i})s")
        branches.append(
            f"(SELECT concept_id, 7 FROM warehouse_concept WHERE {' AND '.join(word_conditions)}{filters} "
            "LIMIT %(cap)s)"
        )
    ranked = (
        "WITH hits (concept_id, rank) AS (" + " UNION ALL ".join(branches) + "), "
        "best AS (SELECT concept_id, MIN(rank) AS rank FROM hits GROUP BY concept_id) "
        "SELECT c.concept_id, best.rank FROM best JOIN warehouse_concept c ON c.concept_id = best.concept_id "
        "ORDER BY best.rank, (c.standard_concept = 'S') DESC, similarity(c.concept_name, %(q)s) DESC, "
        "length(c.concept_name), c.concept_id LIMIT %(limit)s OFFSET %(offset)s"
    )
    return ranked, params


#: Settings of the search's own transaction. Each kind of match is capped with LIMIT, and PostgreSQL then
#: prefers a sequential scan that "stops after 500 matches" — which reads the whole table when the matches are
#: rare in the filtered domain (seconds on 5M concepts, see scripts/bench_vocabulary.py). The indexes always
#: answer these queries, so the search forbids the sequential scan for itself only.
SEARCH_SETTINGS = ("SET LOCAL enable_seqscan = off", "SET LOCAL pg_trgm.similarity_threshold = 0.45")

#: The nearest known word to a (misspelled) word of the query, through the trigram index of the word list.
NEAREST_WORD_SQL = (
    "SELECT word FROM warehouse_conceptword WHERE word %% %(w)s "
    "ORDER BY similarity(word, %(w)s) DESC, length(word), word LIMIT 1"
)
KNOWN_WORD_SQL = "SELECT 1 FROM warehouse_conceptword WHERE word = %(w)s"


def _corrected(query: ConceptQuery, nearest: Callable[[str], str | None]) -> ConceptQuery | None:
    """The query with each word that ``nearest`` replaces replaced, or None when no word changed."""
    words = query.text.lower().split()
    changed = False
    for i, word in enumerate(words):
        if len(word) < MIN_WORD or not WORD_RE.fullmatch(word):
            continue
        near = nearest(word)
        if near is not None and near != word:
            words[i] = near
            changed = True
    if not changed:
        return None
    return ConceptQuery(**{**query.__dict__, "text": " ".join(words)})


def corrected_query(query: ConceptQuery, cursor: Any) -> ConceptQuery | None:
    """The query with each unknown word replaced by the nearest word of the vocabulary's names (a misspelling
    such as "diabetis"), or None when every word is known or nothing is near. Searching millions of names for
    similar strings is slow; the list of distinct words is short, so correcting first is fast at any size."""

    def nearest(word: str) -> str | None:
        cursor.execute(KNOWN_WORD_SQL, {"w": word})
        if cursor.fetchone():
            return None
        cursor.execute(NEAREST_WORD_SQL, {"w": word})
        row = cursor.fetchone()
        return str(row[0]) if row else None

    return _corrected(query, nearest)


#: How alike a word of the word list must be to a misspelled word to replace it on other databases: difflib's
#: ratio (2 × matching characters / total characters). "diabtes" and "diabetes" score 0.93, "asthma" and
#: "ashtma" 0.83; 0.8 keeps unrelated short words out.
NEAR_RATIO = 0.8


def corrected_query_fallback(query: ConceptQuery) -> ConceptQuery | None:
    """``corrected_query`` for any other database (the demo portal's SQLite, which has no trigram index): the
    nearest word by the standard library's ``difflib`` over the word list, which is short (a few thousand words
    for the demo's vocabulary; PostgreSQL serves the real vocabulary's hundreds of thousands)."""
    known: list[str] | None = None

    def nearest(word: str) -> str | None:
        nonlocal known
        if ConceptWord.objects.filter(word=word).exists():
            return None
        if known is None:
            known = list(ConceptWord.objects.values_list("word", flat=True))
        # A ratio of 0.8 needs the lengths to differ by at most half the shorter one (2m / (2m + d) >= 0.8):
        # the others are skipped without comparing them.
        close = [w for w in known if 2 * abs(len(w) - len(word)) <= min(len(w), len(word))]
        found = difflib.get_close_matches(word, close, n=1, cutoff=NEAR_RATIO)
        return found[0] if found else None

    return _corrected(query, nearest)


def search_ids_with_cursor(query: ConceptQuery, cursor: Any) -> list[int]:
    """The concept ids of one page of results, best first, through a PostgreSQL cursor inside a transaction
    (the portal's own, or the benchmark's connection to its generated vocabulary)."""
    for setting in SEARCH_SETTINGS:
        cursor.execute(setting)
    cursor.execute(*search_sql(query))
    ids = [row[0] for row in cursor.fetchall()]
    if len(ids) < query.limit and query.offset == 0:
        # Little spelled like the text: search again with its misspelled words corrected.
        corrected = corrected_query(query, cursor)
        if corrected is not None:
            cursor.execute(*search_sql(corrected))
            seen = set(ids)
            ids += [row[0] for row in cursor.fetchall() if row[0] not in seen][: query.limit - len(ids)]
    return ids


def _search_ids_postgresql(query: ConceptQuery) -> list[int]:
    with transaction.atomic(), connection.cursor() as cursor:
        return search_ids_with_cursor(query, cursor)


def _code_sources(query: ConceptQuery) -> Q:
    """Concepts whose code starts with one of the query's code prefixes (none for text that is no code)."""
    matches = Q(pk__in=[])
    for prefix in query.code_prefixes:
        matches |= Q(concept_code__startswith=prefix)
    return matches


def _mapped_targets(query: ConceptQuery) -> dict[int, int]:
    """Standard concept → its rank (2: mapped from a source code equal to the text, 5: from one starting with it),
    for text that reads as a code (the fallback's version of the mapped branches of ``search_sql``)."""
    if not query.code_prefixes:
        return {}
    codes = set(_codes(query))
    sources = dict(
        Concept.objects.filter(_code_sources(query))
        .exclude(standard_concept="S")
        .values_list("concept_id", "concept_code")[:CODE_SOURCES]
    )
    targets: dict[int, int] = {}
    pairs = ConceptRelationship.objects.filter(
        concept_id_1__in=list(sources), relationship_id="Maps to", invalid_reason=""
    ).values_list("concept_id_1", "concept_id_2")
    for source, target in pairs:
        if source != target:
            rank = 2 if sources[source].upper() in codes else 5
            targets[target] = min(rank, targets.get(target, rank))
    return targets


def _search_ids_fallback(query: ConceptQuery) -> list[int]:
    """Any other database (the embedded demo portal's SQLite): the same ranks, computed in Python over LIKE
    matches, and the same correction of misspelled words (``corrected_query_fallback``). Fine for a demo
    vocabulary; PostgreSQL is what serves millions of concepts."""
    ids = _ranked_fallback(query)
    if len(ids) < query.limit and query.offset == 0:
        corrected = corrected_query_fallback(query)
        if corrected is not None:
            seen = set(ids)
            ids += [i for i in _ranked_fallback(corrected) if i not in seen][: query.limit - len(ids)]
    return ids


def _ranked_fallback(query: ConceptQuery) -> list[int]:
    base = Concept.objects.all()
    if query.domain:
        base = base.filter(domain_id=query.domain)
    if query.vocabulary:
        base = base.filter(vocabulary_id=query.vocabulary)
    if query.standard in ("S", "C"):
        base = base.filter(standard_concept=query.standard)
    elif query.standard == "N":
        base = base.filter(standard_concept="")
    if not query.include_invalid:
        base = base.filter(invalid_reason="")
    cap = max(CANDIDATES, query.offset + query.limit)
    codes = set(_codes(query))
    words = Q()
    for word in query.words:
        words &= Q(concept_name__icontains=word)
    matches = Q(concept_name__istartswith=query.text)
    for code in codes:
        matches |= Q(concept_code__iexact=code)
    if query.words:
        matches |= words
    if query.as_id is not None:
        matches |= Q(concept_id=query.as_id)
    targets = _mapped_targets(query)
    if targets:
        matches |= Q(concept_id__in=list(targets))
    if query.code_prefixes:
        matches |= _code_sources(query)
    candidates = list(base.filter(matches)[: cap * 2])
    text = query.text.lower()
    prefixes = tuple(query.code_prefixes)

    def rank(c: Concept) -> tuple[Any, ...]:
        name = c.concept_name.lower()
        code = c.concept_code.upper()
        if query.as_id == c.concept_id:
            kind = 0
        elif code in codes:
            kind = 1
        elif targets.get(c.concept_id) == 2:
            kind = 2
        elif name == text:
            kind = 3
        elif name.startswith(text):
            kind = 4
        elif c.concept_id in targets:
            kind = 5
        elif prefixes and code.startswith(prefixes):
            kind = 6
        else:
            kind = 7
        return (kind, c.standard_concept != "S", len(name), c.concept_id)

    candidates.sort(key=rank)
    return [c.concept_id for c in candidates[query.offset : query.offset + query.limit]]


def concept_search(query: ConceptQuery) -> list[Concept]:
    """Concepts matching ``query``, best first (see ``search_sql``), one page."""
    ids = _search_ids_postgresql(query) if connection.vendor == "postgresql" else _search_ids_fallback(query)
    found = Concept.objects.in_bulk(ids)
    return [found[i] for i in ids if i in found]


#: Mappings listed per hit, at most (a standard concept may be mapped from hundreds of codes).
MAX_MAPPINGS = 5


def _brief(concept: Concept) -> dict[str, Any]:
    return {
        "concept_id": concept.concept_id,
        "concept_name": concept.concept_name,
        "vocabulary_id": concept.vocabulary_id,
        "concept_code": concept.concept_code,
    }


def search_mappings(query: ConceptQuery, found: list[Concept]) -> dict[int, dict[str, list[dict[str, Any]]]]:
    """The 'Maps to' links that explain each hit: ``maps_to``, the standard concepts a non-standard hit maps to
    (KCD7 E11.9 → Type 2 diabetes mellitus); ``mapped_from``, for text that reads as a code, the source codes
    matching it that map to a standard hit (the reason the hit is there). At most ``MAX_MAPPINGS`` each, by code.
    The same ORM queries on every database."""
    out: dict[int, dict[str, list[dict[str, Any]]]] = {c.concept_id: {"maps_to": [], "mapped_from": []} for c in found}
    links = ConceptRelationship.objects.filter(relationship_id="Maps to", invalid_reason="")
    pairs: list[tuple[int, int, str]] = []  # (hit, other concept, key)
    sources = [c.concept_id for c in found if c.standard_concept != "S"]
    if sources:
        for one, two in links.filter(concept_id_1__in=sources).values_list("concept_id_1", "concept_id_2"):
            if one != two:
                pairs.append((one, two, "maps_to"))
    standard = [c.concept_id for c in found if c.standard_concept == "S"]
    if query.code_prefixes and standard:
        matching = (
            Concept.objects.filter(_code_sources(query))
            .exclude(standard_concept="S")
            .filter(concept_id__in=links.filter(concept_id_2__in=standard).values("concept_id_1"))
            .values_list("concept_id", flat=True)[:CODE_SOURCES]
        )
        for one, two in links.filter(concept_id_1__in=list(matching), concept_id_2__in=standard).values_list(
            "concept_id_1", "concept_id_2"
        ):
            if one != two:
                pairs.append((two, one, "mapped_from"))
    others = Concept.objects.in_bulk({other for _, other, _ in pairs})
    for hit, other, key in sorted(pairs, key=lambda p: others[p[1]].concept_code if p[1] in others else ""):
        if other in others and len(out[hit][key]) < MAX_MAPPINGS:
            out[hit][key].append(_brief(others[other]))
    return out


def concept_as_dict(concept: Concept) -> dict[str, Any]:
    """The public fields of a concept, named as in the CDM (the JSON contract of the search endpoints)."""
    return {
        "concept_id": concept.concept_id,
        "concept_name": concept.concept_name,
        "domain_id": concept.domain_id,
        "vocabulary_id": concept.vocabulary_id,
        "concept_class_id": concept.concept_class_id,
        "standard_concept": concept.standard_concept or None,
        "concept_code": concept.concept_code,
        "invalid_reason": concept.invalid_reason or None,
    }


def vocabulary_filters() -> dict[str, list[str]]:
    """Domains and vocabularies that have concepts, for the search filters: one option each.

    Read from the DOMAIN and VOCABULARY tables, each entry kept when a concept of it exists (an index probe per
    entry, not a pass over millions of concepts); a vocabulary loaded without those tables falls back to the
    distinct values of the concepts themselves."""
    return {
        "domains": _having_concepts(Domain, "domain_id"),
        "vocabularies": _having_concepts(Vocabulary, "vocabulary_id"),
    }


def _having_concepts(model: type[Domain] | type[Vocabulary], column: str) -> list[str]:
    listed = model.objects.order_by(column)
    if not listed.exists():
        # order_by(): without it the model's ordering (concept_id) joins the DISTINCT, one row per concept.
        return sorted(Concept.objects.order_by().values_list(column, flat=True).distinct())
    present = listed.filter(Exists(Concept.objects.filter(**{column: OuterRef(column)})))
    return list(present.values_list(column, flat=True))
