"""The one error a cohort expression raises when it cannot be compiled faithfully."""

from __future__ import annotations


class ExpressionError(ValueError):
    """An invalid or unsupported cohort expression.

    ``errors`` lists every problem found as ``(path, message)``, the path in JSON notation
    (``InclusionRules[2].expression.CriteriaList[0].StartWindow.Start.Days``) so a user can find it in ATLAS.
    """

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = list(errors)
        shown = "; ".join(f"{path}: {message}" if path else message for path, message in self.errors[:20])
        more = f" (and {len(self.errors) - 20} more)" if len(self.errors) > 20 else ""
        super().__init__(f"invalid cohort expression: {shown}{more}")
