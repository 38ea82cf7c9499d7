"""Keys that say when two requests are the same: the normalized expression, the source's data, the kind."""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Bump when the compiler or the shape of stored results changes: cached results of an older engine are
# then no longer reused.
RESULT_FORMAT_VERSION = "1"


def expression_hash(expression: dict[str, Any]) -> str:
    """SHA-256 of the expression in canonical JSON (sorted keys, no white space).

    Key order and formatting do not change the hash; anything that can change the rows or the names shown
    with them (inclusion rule names) does.
    """
    canonical = json.dumps(expression, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def run_cache_key(*, expression_sha: str, source_key: str, source_fingerprint: str, kind: str) -> str:
    material = "|".join([RESULT_FORMAT_VERSION, expression_sha, source_key, source_fingerprint, kind])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()
