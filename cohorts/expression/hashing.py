"""The hash that says when two expressions are the same."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def expression_hash(expression: dict[str, Any]) -> str:
    """SHA-256 of the expression in canonical JSON (sorted keys, no white space).

    Key order and formatting do not change the hash; anything that can change the rows or the names shown
    with them (inclusion rule names) does.
    """
    canonical = json.dumps(expression, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
