"""Keys that say when two count requests are the same: the expression's hash, the source's data, the kind."""

from __future__ import annotations

import hashlib

# Bump when the compiler or the shape of stored results changes: cached results of an older engine are
# then no longer reused.
RESULT_FORMAT_VERSION = "1"
#: The same for demographics results alone: "2" lists the year before index (365 days, not 30), procedures too, and
#: the site's population beside the cohort (``cohorts.runs.demographics``).
DEMOGRAPHICS_FORMAT_VERSION = "2"


def run_cache_key(*, expression_sha: str, source_key: str, source_fingerprint: str, kind: str) -> str:
    version = (
        f"{RESULT_FORMAT_VERSION}.{DEMOGRAPHICS_FORMAT_VERSION}" if kind == "demographics" else RESULT_FORMAT_VERSION
    )
    material = "|".join([version, expression_sha, source_key, source_fingerprint, kind])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()
