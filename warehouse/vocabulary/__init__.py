"""The portal's one copy of the standardized vocabulary, one module per concern.

The vocabulary (CONCEPT, CONCEPT_ANCESTOR, the 'Maps to' / 'Mapped from' rows of CONCEPT_RELATIONSHIP,
VOCABULARY, DOMAIN) is public and the same at every site, so the portal keeps it in its own database and
searches it without asking any site. What is site-specific are the counts: ``counts.concept_counts_refresh`` runs
on the site's worker and stores aggregates only (records and persons per standard concept, each with its cell key
made from the site's record keys, whose table the caller names), never rows.

- ``tables``: the portal tables a load fills and how a source row becomes a row of them;
- ``load``: replacing the copy from a source or from OMOP CSV files (in place, or through ``staging``);
- ``staging``: PostgreSQL's staged load: staging tables filled with COPY, then swapped in;
- ``words``: the word list of the concept names, which the search corrects misspellings against;
- ``search``: the ranked concept search;
- ``hierarchy``: one concept and its neighbourhood (parents, children, mappings);
- ``resolve``: the concept ids a concept set stands for;
- ``counts``: records and persons per concept at each site, with their cell keys.

Knows nothing of users or privacy: ``cohorts`` filters which sites' counts a user sees and protects them.
"""
