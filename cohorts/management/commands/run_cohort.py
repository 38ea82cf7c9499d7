"""Generate or count a cohort from an ATLAS JSON file on one source, from the command line of the site.

    python manage.py run_cohort FILE.json --source KEY [--rows OUT.csv] [--cohort-id N]
    python manage.py run_cohort FILE.json --source KEY --count

The last line printed is one JSON object with the aggregates (persons, rows, seconds, by-person inclusion rules
and attrition) and the engine that answered. ``--rows`` writes the cohort rows
(``subject_id,cohort_start_date,cohort_end_date``, sorted) for the site operator: it is a patient-level file and
stays on the site. ``--count`` runs the count path, as the portal's counts do: it writes nothing to the results
schema (``rows`` is null), on the site's count store when it keeps a fresh one (``engine``: ``count-store``).
An invalid or unsupported definition exits non-zero with the validation message and
writes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cohorts.expression import ExpressionError, parse_expression
from cohorts.runs.generation import cohort_rows, count_cohort, generate_cohort
from cohorts.runs.stores import counting_engine

#: Command-line cohort ids live in [1e9, 2e9) so they never meet the run ids the portal's worker uses.
_CLI_ID_BASE = 1_000_000_000


def command_cohort_id(expression_json: dict[str, Any]) -> int:
    """A stable cohort id for a definition: the same file always writes over its own previous rows."""
    canonical = json.dumps(expression_json, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return _CLI_ID_BASE + int(digest[:12], 16) % _CLI_ID_BASE


class Command(BaseCommand):
    help = "Generate a cohort from an ATLAS/Circe JSON definition on a source; print the aggregates as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="ATLAS cohort expression JSON file")
        parser.add_argument("--source", required=True, help="key of the warehouse Source")
        parser.add_argument("--rows", help="write the cohort rows to this CSV file")
        parser.add_argument("--cohort-id", type=int, help="cohort id in the results schema (default: stable hash)")
        parser.add_argument(
            "--count", action="store_true", help="count only (the portal's count path): write nothing to the results"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from warehouse.models import Source
        from warehouse.services import source_connect

        if options["count"] and (options["rows"] or options["cohort_id"] is not None):
            raise CommandError("--count writes no rows: it cannot be combined with --rows or --cohort-id")
        path = Path(options["file"])
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        except ValueError as exc:
            raise CommandError(f"{path} is not valid JSON: {exc}") from None
        try:
            expression = parse_expression(raw)
        except ExpressionError as exc:
            raise CommandError(str(exc)) from None
        try:
            source = Source.objects.get(key=options["source"])
        except Source.DoesNotExist:
            raise CommandError(f"no source with key {options['source']!r}") from None
        cohort_id = options["cohort_id"] if options["cohort_id"] is not None else command_cohort_id(raw)

        engine = source_connect(source)
        rows: list[Any] = []
        try:
            if options["count"]:
                counting = counting_engine(source, engine)
                try:
                    result = count_cohort(
                        counting.engine,
                        expression,
                        cdm_schema=source.cdm_schema,
                        vocabulary_schema=source.vocabulary_schema,
                        results_schema=source.results_schema,
                    )
                finally:
                    counting.close()
                answered_by = counting.name
                if counting.note:
                    self.stderr.write(counting.note)
            else:
                result, rows, answered_by = self.generate(engine, source, expression, cohort_id, options["rows"])
        finally:
            engine.close()

        if options["rows"]:
            _write_rows(Path(options["rows"]), rows)
        summary = {
            "persons": result.persons,
            "rows": result.rows,
            "seconds": result.seconds,
            "engine": answered_by,
            "inclusion_rules": [{"name": name, "persons": n} for name, n in result.inclusion_rules],
            "attrition": [{"name": name, "persons": n} for name, n in result.attrition],
            "initial": {"persons": result.initial_persons, "events": result.by_event.initial},
            "by_event": {
                "inclusion_rules": [{"name": name, "events": n} for name, n in result.by_event.inclusion_rules],
                "attrition": [{"name": name, "events": n} for name, n in result.by_event.attrition],
            },
        }
        self.stdout.write(json.dumps(summary, ensure_ascii=False))

    @staticmethod
    def generate(engine: Any, source: Any, expression: Any, cohort_id: int, rows_file: str | None) -> tuple[Any, ...]:
        """Generate the cohort into the results schema; its rows when they are to be written out."""
        result = generate_cohort(
            engine,
            expression,
            cdm_schema=source.cdm_schema,
            vocabulary_schema=source.vocabulary_schema,
            results_schema=source.results_schema,
            cohort_id=cohort_id,
        )
        rows = cohort_rows(engine, results_schema=source.results_schema, cohort_id=cohort_id) if rows_file else []
        return result, rows, engine.kind


def _write_rows(path: Path, rows: list[Any]) -> None:
    """Write atomically (temp file + rename): a reader never sees a half-written file."""
    directory = path.resolve().parent
    fd, tmp = tempfile.mkstemp(prefix=".cohort-", suffix=".csv", dir=directory)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["subject_id", "cohort_start_date", "cohort_end_date"])
            for subject, start, end in rows:
                writer.writerow([subject, start.isoformat(), end.isoformat()])
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
