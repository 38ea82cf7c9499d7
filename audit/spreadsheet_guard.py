"""The one guard every CSV that leaves the portal writes its cells through (CSV or formula injection).

A spreadsheet opening a CSV runs a cell as a formula when its text starts with ``=``, ``+``, ``-`` or ``@``, and
some also when a tab or carriage return, or spaces, come before them. Such a cell is written with a leading ``'``,
which spreadsheets show as text and never run.

A genuine number stays readable: a cell whose whole text is a plain decimal number (``-12``, ``-0.5``, ``1e-3``) is
written as it is, so a spreadsheet reads it as that number and as nothing else; a number can hold no formula. Any
other text is text: ``-5+cmd``, ``+82 10`` or ``-`` get the quote.

It lives in ``audit`` because ``audit`` is the one app every other app may import (ARCHITECTURE.md), and the audit
log's export is one of the writers.
"""

from __future__ import annotations

import re
from decimal import Decimal

#: What a spreadsheet may start a formula with; tab and CR because some read past them (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def spreadsheet_safe_cell(value: object) -> str:
    """``value`` as the text of a CSV cell that no spreadsheet runs: ``None`` is empty, numbers are as Python
    writes them, text a spreadsheet could take for a formula starts with ``'``."""
    if value is None:
        return ""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    if _PLAIN_NUMBER.fullmatch(text):
        return text
    if text.startswith(FORMULA_STARTS) or text.lstrip(" \t\r\n").startswith(FORMULA_STARTS):
        return "'" + text
    return text
