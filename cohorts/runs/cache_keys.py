"""Keys that say when two count requests are the same: the expression's hash, the source's data, the kind."""

from __future__ import annotations

import hashlib

# Bump when the compiler or the shape of stored results changes: cached results of an older engine are
# then no longer reused.
RESULT_FORMAT_VERSION = "1"


def run_cache_key(*, expression_sha: str, source_key: str, source_fingerprint: str, kind: str) -> str:
    material = "|".join([RESULT_FORMAT_VERSION, expression_sha, source_key, source_fingerprint, kind])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()
