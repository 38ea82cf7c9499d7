"""Strict input fields: the API accepts exactly the JSON type a field documents.

DRF's CharField would turn ``3.25`` or ``true`` into text; a script sending a number where a name belongs has a
bug, and telling it so is kinder than storing "True". Single-line texts (names) also refuse control characters
and the bidirectional overrides that make a name display as something it is not.
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

_SINGLE_LINE_FORBIDDEN = re.compile("[\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


class StrictCharField(serializers.CharField):
    default_error_messages = {
        "invalid": "Expected text (a JSON string).",
        "control": "Use printable characters only (no control characters or direction overrides).",
    }

    def __init__(self, *, single_line: bool = False, **kwargs: Any) -> None:
        self.single_line = single_line
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if self.single_line and _SINGLE_LINE_FORBIDDEN.search(value):
            self.fail("control")
        return value


class StrictIntegerField(serializers.IntegerField):
    """An integer given as a JSON number: not "12", not 12.0, not true."""

    default_error_messages = {"invalid": "Expected a whole number (a JSON integer)."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)
