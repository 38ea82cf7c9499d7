"""Parse and validate ATLAS/Circe cohort expression JSON into ``nodes``.

Every problem is collected with its JSON path and reported at once in one ``ExpressionError``. The parser is
stricter than circe-be where circe-be would silently compile something else than the user meant (unknown enum
values, a ``CodesetId`` naming no concept set, negative counts, non-integer days); where ATLAS emits variants of
the same thing (``"First": null`` for false, ``"all"`` for ``"ALL"``, lower-case keys in concept items and
occurrences) it accepts them as Circe does.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from cohorts.expression import domains as kinds
from cohorts.expression.domains import COUNT_COLUMNS, DOMAINS, UNSUPPORTED_ATTRIBUTES, UNSUPPORTED_DOMAINS
from cohorts.expression.errors import ExpressionError
from cohorts.expression.nodes import (
    AttributeValue,
    CohortExpression,
    ConceptSet,
    ConceptSetItem,
    ConceptSetSelection,
    CorrelatedCriteria,
    CriteriaGroup,
    Criterion,
    CustomEraStrategy,
    DateAdjustment,
    DateOffsetStrategy,
    DateRange,
    DemographicCriteria,
    Endpoint,
    InclusionRule,
    NumericRange,
    Occurrence,
    Period,
    PrimaryCriteria,
    TextFilter,
    Window,
)

_V = TypeVar("_V")

#: Guards against definitions that would make absurd SQL (or exhaust the stack) rather than a cohort.
MAX_DEPTH = 50
MAX_CRITERIA = 5000
MAX_INCLUSION_RULES = 62  # the inclusion-rule mask is a 64-bit integer, as in Circe
MAX_JSON_CHARS = 20_000_000
MAX_CONCEPT_ID = 2**63 - 1
_INT32 = 2**31 - 1

_NUMERIC_OPS = frozenset({"lt", "lte", "eq", "!eq", "gt", "gte", "bt", "!bt"})
_TEXT_OPS = frozenset({"startsWith", "contains", "endsWith", "!startsWith", "!contains", "!endsWith"})
_LIMITS = {"FIRST": "FIRST", "LAST": "LAST", "ALL": "ALL"}
_GROUP_TYPES = frozenset({"ALL", "ANY", "AT_LEAST", "AT_MOST"})
# A whole calendar date, as Circe writes it; nothing before or after it. A prefix match let
# "2010-01-01' or '1'='1" through, and the definition was then stored and exported back with its tail.
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
DATE_MESSAGE = "expected a date: a whole calendar date written YYYY-MM-DD (e.g. 2010-01-31), nothing else"
_MISSING = object()


def parse_expression(data: dict[str, Any] | str) -> CohortExpression:
    """Parse ATLAS cohort expression JSON (a dict or its text) into a validated ``CohortExpression``.

    Raises ``ExpressionError`` listing every problem found, each with its JSON path.
    """
    draft = parse_draft(data)
    if draft.errors:
        raise ExpressionError(list(draft.errors))
    return draft.expression


@dataclass(frozen=True)
class Draft:
    """An expression as far as it is valid: what a definition being edited says so far.

    ``expression`` holds the typed nodes of every part that is valid (a part with a problem is left out, a missing
    entry list is empty); ``errors`` the problems, each ``(JSON path, message)``. The builder shows one block per
    concept set and per inclusion rule, so ``concept_sets`` and ``inclusion_rules`` give the node at each position
    of those two JSON lists, None where the item at that position is not valid.
    """

    expression: CohortExpression
    errors: tuple[tuple[str, str], ...] = ()
    concept_sets: tuple[ConceptSet | None, ...] = ()
    inclusion_rules: tuple[InclusionRule | None, ...] = ()


def parse_draft(data: dict[str, Any] | str) -> Draft:
    """Parse ATLAS cohort expression JSON that may not be valid (yet): never raises, whatever its shape."""
    if isinstance(data, (str, bytes)):
        if len(data) > MAX_JSON_CHARS:
            return _nothing_valid(f"the expression is too large (over {MAX_JSON_CHARS} characters)")
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:
            return _nothing_valid(f"not valid JSON: {exc}")
    if not isinstance(data, dict):
        return _nothing_valid("expected a JSON object (a cohort expression)")
    if _depth(data) > MAX_DEPTH * 4:  # JSON nesting; each criteria level uses several JSON levels
        return _nothing_valid(f"the expression is nested too deeply (more than {MAX_DEPTH} levels)")
    parser = _Parser()
    expression = parser.cohort(data)
    return Draft(expression, tuple(parser.errors), tuple(parser.set_positions), tuple(parser.rule_positions))


def _nothing_valid(message: str) -> Draft:
    return Draft(CohortExpression(concept_sets=(), primary_criteria=PrimaryCriteria(())), (("", message),))


def _depth(value: Any) -> int:
    """JSON nesting depth, iteratively (a hostile document must not exhaust the Python stack)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH * 4:
            return level
        if isinstance(node, dict):
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, level + 1) for child in node)
    return deepest


class _Parser:
    """One pass over the document; ``errors`` collects ``(path, message)``."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.codeset_ids: set[int] = set()
        self.codeset_refs: list[tuple[str, int]] = []
        self.criteria_count = 0
        self.too_many_reported = False
        # The node at each position of ConceptSets and InclusionRules (None: not valid), for ``Draft``.
        self.set_positions: list[ConceptSet | None] = []
        self.rule_positions: list[InclusionRule | None] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append((path, message))

    # ---- scalars -----------------------------------------------------------------------------------------------
    def obj(self, value: Any, path: str, *, required: bool = True) -> dict[str, Any] | None:
        if value is None or value is _MISSING:
            if required:
                self.fail(path, "expected an object")
            return None
        if not isinstance(value, dict):
            self.fail(path, "expected an object")
            return None
        return value

    def array(self, value: Any, path: str, *, required: bool = False) -> list[Any]:
        if value is None or value is _MISSING:
            if required:
                self.fail(path, "expected a list")
            return []
        if not isinstance(value, list):
            self.fail(path, "expected a list")
            return []
        return value

    def integer(
        self,
        value: Any,
        path: str,
        *,
        required: bool = False,
        minimum: int | None = -_INT32 - 1,
        maximum: int = _INT32,
        default: int | None = None,
    ) -> int | None:
        if value is None or value is _MISSING:
            if required:
                self.fail(path, "expected an integer")
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, "expected an integer")
            return default
        if isinstance(value, float):
            if not math.isfinite(value) or value != int(value):
                self.fail(path, "expected an integer")
                return default
            value = int(value)
        if minimum is not None and value < minimum:
            self.fail(path, "expected a non-negative integer" if minimum == 0 else f"expected an integer >= {minimum}")
            return default
        if value > maximum:
            self.fail(path, f"expected an integer <= {maximum}")
            return default
        return int(value)

    def boolean(self, value: Any, path: str, *, default: bool = False) -> bool:
        if value is None or value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.fail(path, "expected true or false")
            return default
        return value

    def number(self, value: Any, path: str) -> float | int | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(path, "expected a number")
            return None
        return value

    def string(self, value: Any, path: str, *, required: bool = False) -> str | None:
        if value is None or value is _MISSING:
            if required:
                self.fail(path, "expected a string")
            return None
        if not isinstance(value, str):
            self.fail(path, "expected a string")
            return None
        return value

    def a_date(self, value: Any, path: str, *, required: bool = True) -> date | None:
        """Every date of an expression (date ranges' Value and Extent, observation and censor windows) is read here."""
        if value is None or value is _MISSING or value == "":
            if required:
                self.fail(path, DATE_MESSAGE)
            return None
        if not isinstance(value, str):
            self.fail(path, DATE_MESSAGE)
            return None
        match = _DATE_RE.fullmatch(value)
        try:
            if match is None:
                raise ValueError(value)
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            self.fail(path, DATE_MESSAGE)
            return None

    def enum(self, value: Any, path: str, allowed: dict[str, str], *, default: str | None = None) -> str | None:
        """Case-insensitive enum, as circe-be compares them (``equalsIgnoreCase``)."""
        if value is None or value is _MISSING:
            if default is None:
                self.fail(path, "expected one of " + ", ".join(sorted(set(allowed.values()))))
            return default
        if isinstance(value, str) and value.upper() in allowed:
            return allowed[value.upper()]
        self.fail(path, "expected one of " + ", ".join(sorted(set(allowed.values()))))
        return default

    def codeset(self, value: Any, path: str, *, required: bool = False) -> int | None:
        ref = self.integer(value, path, required=required)
        if ref is not None:
            self.codeset_refs.append((path, ref))
        return ref

    # ---- concept sets ------------------------------------------------------------------------------------------
    def concept_id(self, value: Any, path: str) -> int | None:
        concept = self.obj(value, path)
        if concept is None:
            return None
        for key in ("CONCEPT_ID", "conceptId", "concept_id", "ConceptId"):
            if key in concept:
                return self.integer(concept[key], f"{path}.{key}", required=True, minimum=0, maximum=MAX_CONCEPT_ID)
        self.fail(f"{path}.CONCEPT_ID", "expected an integer")
        return None

    def concepts(self, value: Any, path: str) -> tuple[int, ...]:
        ids = []
        for i, item in enumerate(self.array(value, path)):
            concept_id = self.concept_id(item, f"{path}[{i}]")
            if concept_id is not None:
                ids.append(concept_id)
        return tuple(ids)

    def concept_sets(self, value: Any, path: str) -> tuple[ConceptSet, ...]:
        sets = []
        for i, raw in enumerate(self.array(value, path)):
            here = f"{path}[{i}]"
            self.set_positions.append(None)
            cs = self.obj(raw, here)
            if cs is None:
                continue
            set_id = self.integer(cs.get("id", _MISSING), f"{here}.id", required=True, minimum=0)
            if set_id is not None:
                if set_id in self.codeset_ids:
                    self.fail(f"{here}.id", f"concept set id {set_id} is used twice")
                self.codeset_ids.add(set_id)
            name = cs.get("name")
            expression = self.obj(cs.get("expression", _MISSING), f"{here}.expression")
            items = []
            if expression is not None:
                for j, raw_item in enumerate(self.array(expression.get("items"), f"{here}.expression.items")):
                    ipath = f"{here}.expression.items[{j}]"
                    item = self.obj(raw_item, ipath)
                    if item is None:
                        continue
                    concept_id = self.concept_id(item.get("concept", _MISSING), f"{ipath}.concept")
                    flags = {
                        key: self.boolean(item.get(key), f"{ipath}.{key}")
                        for key in ("isExcluded", "includeDescendants", "includeMapped")
                    }
                    if concept_id is not None:
                        items.append(
                            ConceptSetItem(
                                concept_id,
                                is_excluded=flags["isExcluded"],
                                include_descendants=flags["includeDescendants"],
                                include_mapped=flags["includeMapped"],
                            )
                        )
            if set_id is not None:
                sets.append(ConceptSet(set_id, name if isinstance(name, str) else "", tuple(items)))
                self.set_positions[-1] = sets[-1]
        return tuple(sets)

    # ---- value filters -----------------------------------------------------------------------------------------
    def numeric_range(self, value: Any, path: str) -> NumericRange | None:
        parts = self._range(value, path, self.number)
        return NumericRange(*parts) if parts is not None else None

    def date_range(self, value: Any, path: str) -> DateRange | None:
        parts = self._range(value, path, self.a_date)
        return DateRange(*parts) if parts is not None else None

    def _range(self, value: Any, path: str, read: Callable[[Any, str], _V | None]) -> tuple[str, _V, _V | None] | None:
        """``{"Op": ..., "Value": ..., "Extent": ...}`` with Value (and Extent for between ops) read by ``read``."""
        rng = self.obj(value, path)
        if rng is None:
            return None
        op = rng.get("Op")
        if not isinstance(op, str) or op not in _NUMERIC_OPS:  # a list or object is no op (and unhashable)
            self.fail(f"{path}.Op", "expected one of " + ", ".join(sorted(_NUMERIC_OPS)))
            return None
        start = read(rng.get("Value"), f"{path}.Value")
        extent = None
        if op.endswith("bt"):
            extent = read(rng.get("Extent"), f"{path}.Extent")
            if extent is None:
                return None
        if start is None:
            return None
        return op, start, extent

    def text_filter(self, value: Any, path: str) -> TextFilter | None:
        flt = self.obj(value, path)
        if flt is None:
            return None
        op = flt.get("Op")
        if not isinstance(op, str) or op not in _TEXT_OPS:
            self.fail(f"{path}.Op", "expected one of " + ", ".join(sorted(_TEXT_OPS)))
            return None
        text = self.string(flt.get("Text"), f"{path}.Text")
        return TextFilter(op, text or "")

    def selection(self, value: Any, path: str) -> ConceptSetSelection | None:
        sel = self.obj(value, path)
        if sel is None:
            return None
        codeset_id = self.codeset(sel.get("CodesetId"), f"{path}.CodesetId")
        return ConceptSetSelection(codeset_id, self.boolean(sel.get("IsExclusion"), f"{path}.IsExclusion"))

    def period(self, value: Any, path: str) -> Period | None:
        per = self.obj(value, path, required=False)
        if per is None:
            return None
        return Period(
            self.a_date(per.get("StartDate"), f"{path}.StartDate", required=False),
            self.a_date(per.get("EndDate"), f"{path}.EndDate", required=False),
        )

    # ---- criteria ----------------------------------------------------------------------------------------------
    def criterion(self, value: Any, path: str, depth: int) -> Criterion | None:
        self.criteria_count += 1
        if self.criteria_count > MAX_CRITERIA:
            if not self.too_many_reported:
                self.fail(path, f"too many criteria (more than {MAX_CRITERIA})")
                self.too_many_reported = True
            return None
        if depth > MAX_DEPTH:
            self.fail(path, f"criteria nested too deeply (more than {MAX_DEPTH} levels)")
            return None
        wrapper = self.obj(value, path)
        if wrapper is None:
            return None
        if len(wrapper) != 1:
            self.fail(path, 'expected an object with exactly one domain key, e.g. {"ConditionOccurrence": {...}}')
            return None
        ((domain, body),) = wrapper.items()
        here = f"{path}.{domain}"
        if domain in UNSUPPORTED_DOMAINS:
            self.fail(here, f"the {domain} domain is not supported")
            return None
        known = DOMAINS.get(domain)
        if known is None:
            self.fail(path, f"unknown domain {domain!r}; expected one of " + ", ".join(sorted(DOMAINS)))
            return None
        spec = known.attributes
        body = self.obj(body, here)
        if body is None:
            return None
        attributes: list[tuple[str, AttributeValue]] = []
        for key, raw in body.items():
            kind = spec.get(key)
            if kind is None or raw is None:
                continue  # not a Circe attribute of this domain (kept in the JSON, ignored), or null = absent
            if (domain, key) in UNSUPPORTED_ATTRIBUTES:
                self.fail(f"{here}.{key}", "not supported: " + UNSUPPORTED_ATTRIBUTES[(domain, key)])
                continue
            parsed = self.attribute(kind, raw, f"{here}.{key}")
            if parsed is not None:
                attributes.append((key, parsed))
        correlated = None
        if body.get("CorrelatedCriteria") is not None:
            correlated = self.group(body["CorrelatedCriteria"], f"{here}.CorrelatedCriteria", depth + 1)
        adjustment = None
        if body.get("DateAdjustment") is not None:
            adjustment = self.date_adjustment(body["DateAdjustment"], f"{here}.DateAdjustment")
        return Criterion(domain, tuple(attributes), correlated, adjustment)

    def attribute(self, kind: str, raw: Any, path: str) -> AttributeValue | None:
        if kind == kinds.CODESET:
            return self.codeset(raw, path)
        if kind == kinds.BOOL:
            return self.boolean(raw, path)
        if kind == kinds.DATES:
            return self.date_range(raw, path)
        if kind == kinds.NUMBERS:
            return self.numeric_range(raw, path)
        if kind == kinds.CONCEPTS:
            return self.concepts(raw, path)
        if kind == kinds.SELECTION:
            return self.selection(raw, path)
        if kind == kinds.TEXT:
            return self.text_filter(raw, path)
        if kind == kinds.PERIOD:
            return self.period(raw, path)
        raise AssertionError(kind)  # pragma: no cover - the domain table only uses the kinds above

    def date_adjustment(self, value: Any, path: str) -> DateAdjustment | None:
        adj = self.obj(value, path)
        if adj is None:
            return None
        which = {"START_DATE": "START_DATE", "END_DATE": "END_DATE"}
        return DateAdjustment(
            self.enum(adj.get("StartWith"), f"{path}.StartWith", which, default="START_DATE") or "START_DATE",
            self.integer(adj.get("StartOffset"), f"{path}.StartOffset", default=0) or 0,
            self.enum(adj.get("EndWith"), f"{path}.EndWith", which, default="END_DATE") or "END_DATE",
            self.integer(adj.get("EndOffset"), f"{path}.EndOffset", default=0) or 0,
        )

    # ---- groups ------------------------------------------------------------------------------------------------
    def group(self, value: Any, path: str, depth: int) -> CriteriaGroup | None:
        if depth > MAX_DEPTH:
            self.fail(path, f"criteria nested too deeply (more than {MAX_DEPTH} levels)")
            return None
        grp = self.obj(value, path)
        if grp is None:
            return None
        group_type = self.enum(grp.get("Type"), f"{path}.Type", {t: t for t in _GROUP_TYPES})
        count = None
        if group_type in ("AT_LEAST", "AT_MOST"):
            count = self.integer(grp.get("Count"), f"{path}.Count", required=True, minimum=0)
        criteria = []
        for i, raw in enumerate(self.array(grp.get("CriteriaList"), f"{path}.CriteriaList")):
            parsed = self.correlated(raw, f"{path}.CriteriaList[{i}]", depth + 1)
            if parsed is not None:
                criteria.append(parsed)
        demographics = []
        for i, raw in enumerate(self.array(grp.get("DemographicCriteriaList"), f"{path}.DemographicCriteriaList")):
            demographic = self.demographic(raw, f"{path}.DemographicCriteriaList[{i}]")
            if demographic is not None:
                demographics.append(demographic)
        groups = []
        for i, raw in enumerate(self.array(grp.get("Groups"), f"{path}.Groups")):
            sub = self.group(raw, f"{path}.Groups[{i}]", depth + 1)
            if sub is not None:
                groups.append(sub)
        if group_type is None:
            return None
        return CriteriaGroup(group_type, count, tuple(criteria), tuple(demographics), tuple(groups))

    def correlated(self, value: Any, path: str, depth: int) -> CorrelatedCriteria | None:
        item = self.obj(value, path)
        if item is None:
            return None
        criterion = self.criterion(item.get("Criteria", _MISSING), f"{path}.Criteria", depth)
        start_window = self.window(item.get("StartWindow", _MISSING), f"{path}.StartWindow", required=True)
        end_window = self.window(item.get("EndWindow"), f"{path}.EndWindow", required=False)
        occurrence = self.occurrence(item.get("Occurrence", _MISSING), f"{path}.Occurrence")
        restrict = self.boolean(item.get("RestrictVisit"), f"{path}.RestrictVisit")
        ignore_op = self.boolean(item.get("IgnoreObservationPeriod"), f"{path}.IgnoreObservationPeriod")
        if criterion is None or start_window is None or occurrence is None:
            return None
        return CorrelatedCriteria(criterion, start_window, occurrence, end_window, restrict, ignore_op)

    def window(self, value: Any, path: str, *, required: bool) -> Window | None:
        win = self.obj(value, path, required=required)
        if win is None:
            return None
        start = self.endpoint(win.get("Start", _MISSING), f"{path}.Start")
        end = self.endpoint(win.get("End", _MISSING), f"{path}.End")
        use_index_end = self.boolean(win.get("UseIndexEnd"), f"{path}.UseIndexEnd")
        use_event_end = None
        if win.get("UseEventEnd") is not None:
            use_event_end = self.boolean(win.get("UseEventEnd"), f"{path}.UseEventEnd")
        if start is None or end is None:
            return None
        return Window(start, end, use_index_end, use_event_end)

    def endpoint(self, value: Any, path: str) -> Endpoint | None:
        point = self.obj(value, path)
        if point is None:
            return None
        days = self.integer(point.get("Days"), f"{path}.Days", minimum=0)
        coeff = self.integer(point.get("Coeff", _MISSING), f"{path}.Coeff", required=True)
        if coeff is not None and coeff not in (-1, 1):
            self.fail(f"{path}.Coeff", "expected -1 (before the index) or 1 (after)")
            return None
        if coeff is None:
            return None
        return Endpoint(days, coeff)

    def occurrence(self, value: Any, path: str) -> Occurrence | None:
        occ = self.obj(value, path)
        if occ is None:
            return None
        type_key = "Type" if "Type" in occ else "type"
        count_key = "Count" if "Count" in occ else "count"
        occ_type = self.integer(occ.get(type_key, _MISSING), f"{path}.{type_key}", required=True, minimum=0)
        if occ_type is not None and occ_type not in (0, 1, 2):
            self.fail(f"{path}.{type_key}", "expected 0 (exactly), 1 (at most) or 2 (at least)")
            occ_type = None
        count = self.integer(occ.get(count_key, _MISSING), f"{path}.{count_key}", required=True, minimum=0)
        distinct = self.boolean(occ.get("IsDistinct"), f"{path}.IsDistinct")
        column = None
        if occ.get("CountColumn") is not None:
            column = occ["CountColumn"]
            if not isinstance(column, str) or column not in COUNT_COLUMNS:
                self.fail(f"{path}.CountColumn", "expected one of " + ", ".join(sorted(COUNT_COLUMNS)))
                return None
        if occ_type is None or count is None:
            return None
        return Occurrence(occ_type, count, distinct, column)

    def demographic(self, value: Any, path: str) -> DemographicCriteria | None:
        dem = self.obj(value, path)
        if dem is None:
            return None

        def opt(key: str, parse: Any) -> Any:
            return None if dem.get(key) is None else parse(dem[key], f"{path}.{key}")

        return DemographicCriteria(
            age=opt("Age", self.numeric_range),
            gender=opt("Gender", self.concepts) or (),
            gender_cs=opt("GenderCS", self.selection),
            race=opt("Race", self.concepts) or (),
            race_cs=opt("RaceCS", self.selection),
            ethnicity=opt("Ethnicity", self.concepts) or (),
            ethnicity_cs=opt("EthnicityCS", self.selection),
            occurrence_start_date=opt("OccurrenceStartDate", self.date_range),
            occurrence_end_date=opt("OccurrenceEndDate", self.date_range),
        )

    # ---- the whole expression ----------------------------------------------------------------------------------
    def limit(self, value: Any, path: str) -> str:
        """``{"Type": "First"|"Last"|"All"}``; a missing limit means First, as in Circe."""
        if value is None:
            return "FIRST"
        lim = self.obj(value, path)
        if lim is None:
            return "FIRST"
        return self.enum(lim.get("Type"), f"{path}.Type", _LIMITS, default="FIRST") or "FIRST"

    def end_strategy(self, value: Any, path: str) -> DateOffsetStrategy | CustomEraStrategy | None:
        strat = self.obj(value, path, required=False)
        if strat is None:
            return None
        if len(strat) != 1 or next(iter(strat)) not in ("DateOffset", "CustomEra"):
            self.fail(path, 'expected {"DateOffset": {...}} or {"CustomEra": {...}}')
            return None
        ((kind, body),) = strat.items()
        here = f"{path}.{kind}"
        body = self.obj(body, here)
        if body is None:
            return None
        if kind == "DateOffset":
            field = self.enum(
                body.get("DateField"),
                f"{here}.DateField",
                {"STARTDATE": "StartDate", "ENDDATE": "EndDate"},
                default="StartDate",
            )
            offset = self.integer(body.get("Offset"), f"{here}.Offset", default=0)
            return DateOffsetStrategy(field or "StartDate", offset or 0)
        drug = self.codeset(body.get("DrugCodesetId", _MISSING), f"{here}.DrugCodesetId", required=True)
        gap = self.integer(body.get("GapDays"), f"{here}.GapDays", minimum=0, default=0)
        offset = self.integer(body.get("Offset"), f"{here}.Offset", default=0)
        override = self.integer(body.get("DaysSupplyOverride"), f"{here}.DaysSupplyOverride", minimum=0)
        if drug is None:
            return None
        return CustomEraStrategy(drug, gap or 0, offset or 0, override)

    def cohort(self, data: dict[str, Any]) -> CohortExpression:
        """The expression of every valid part; it is the cohort only if ``errors`` stayed empty."""
        concept_sets = self.concept_sets(data.get("ConceptSets"), "ConceptSets")

        primary = None
        pc = self.obj(data.get("PrimaryCriteria", _MISSING), "PrimaryCriteria")
        if pc is not None:
            raw_list = self.array(pc.get("CriteriaList", _MISSING), "PrimaryCriteria.CriteriaList", required=True)
            if "CriteriaList" in pc and isinstance(pc["CriteriaList"], list) and not raw_list:
                self.fail("PrimaryCriteria.CriteriaList", "expected at least one entry event criterion")
            entries = []
            for i, raw in enumerate(raw_list):
                crit = self.criterion(raw, f"PrimaryCriteria.CriteriaList[{i}]", 1)
                if crit is not None:
                    entries.append(crit)
            window = self.obj(pc.get("ObservationWindow"), "PrimaryCriteria.ObservationWindow", required=False) or {}
            prior = self.integer(window.get("PriorDays"), "PrimaryCriteria.ObservationWindow.PriorDays", minimum=0)
            post = self.integer(window.get("PostDays"), "PrimaryCriteria.ObservationWindow.PostDays", minimum=0)
            limit = self.limit(pc.get("PrimaryCriteriaLimit"), "PrimaryCriteria.PrimaryCriteriaLimit")
            primary = PrimaryCriteria(tuple(entries), prior or 0, post or 0, limit)

        additional = None
        has_additional = data.get("AdditionalCriteria") is not None
        if has_additional:
            additional = self.group(data["AdditionalCriteria"], "AdditionalCriteria", 1)

        rules = []
        raw_rules = self.array(data.get("InclusionRules"), "InclusionRules")
        if len(raw_rules) > MAX_INCLUSION_RULES:
            self.fail("InclusionRules", f"too many inclusion rules (at most {MAX_INCLUSION_RULES})")
        for i, raw in enumerate(raw_rules[:MAX_INCLUSION_RULES]):
            self.rule_positions.append(None)
            rule = self.obj(raw, f"InclusionRules[{i}]")
            if rule is None:
                continue
            name = self.string(rule.get("name"), f"InclusionRules[{i}].name")
            description = self.string(rule.get("description"), f"InclusionRules[{i}].description")
            group = self.group(rule.get("expression", _MISSING), f"InclusionRules[{i}].expression", 1)
            if group is not None:
                rules.append(InclusionRule(name if name is not None else f"rule {i + 1}", group, description))
                self.rule_positions[-1] = rules[-1]

        censoring = []
        for i, raw in enumerate(self.array(data.get("CensoringCriteria"), "CensoringCriteria")):
            crit = self.criterion(raw, f"CensoringCriteria[{i}]", 1)
            if crit is not None:
                censoring.append(crit)

        era_pad = 0
        collapse = self.obj(data.get("CollapseSettings"), "CollapseSettings", required=False)
        if collapse is not None:
            self.enum(collapse.get("CollapseType"), "CollapseSettings.CollapseType", {"ERA": "ERA"}, default="ERA")
            era_pad = self.integer(collapse.get("EraPad"), "CollapseSettings.EraPad", minimum=0, default=0) or 0

        censor_window = self.period(data.get("CensorWindow"), "CensorWindow")
        if censor_window is not None and censor_window.start_date is None and censor_window.end_date is None:
            censor_window = None

        end_strategy = self.end_strategy(data.get("EndStrategy"), "EndStrategy")
        qualified_limit = self.limit(data.get("QualifiedLimit"), "QualifiedLimit")
        expression_limit = self.limit(data.get("ExpressionLimit"), "ExpressionLimit")

        for path, ref in self.codeset_refs:
            if ref not in self.codeset_ids:
                self.fail(path, f"concept set {ref} does not exist in ConceptSets")

        return CohortExpression(
            concept_sets=concept_sets,
            primary_criteria=primary or PrimaryCriteria(()),
            additional_criteria=additional,
            has_additional_criteria=has_additional,
            qualified_limit=qualified_limit,
            expression_limit=expression_limit,
            inclusion_rules=tuple(rules),
            end_strategy=end_strategy,
            censoring_criteria=tuple(censoring),
            era_pad=era_pad,
            censor_window=censor_window,
            raw=json.loads(json.dumps(data)),
        )
