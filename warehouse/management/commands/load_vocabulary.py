"""Load the portal's copy of the standardized vocabulary from a source or from OMOP CSV files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from warehouse.engines import WarehouseError
from warehouse.models import Source
from warehouse.services import source_connect
from warehouse.vocabulary.load import vocabulary_load_from_directory, vocabulary_load_from_source


class Command(BaseCommand):
    help = (
        "Replace the portal's vocabulary (concepts, ancestors, 'Maps to' relationships, vocabularies, domains): "
        "--source KEY copies it from that source's vocabulary schema, --directory DIR reads OMOP CSV files "
        "(CDM comma CSV or Athena TAB-separated, .csv or .csv.gz)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--source", help="key of a registered source")
        group.add_argument("--directory", type=Path, help="folder of CONCEPT.csv, CONCEPT_ANCESTOR.csv, ...")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["source"]:
                source = Source.objects.filter(key=options["source"]).first()
                if source is None:
                    raise CommandError(f"no source with key {options['source']!r}")
                with source_connect(source, read_only=True) as engine:
                    report = vocabulary_load_from_source(source=source, engine=engine)
            else:
                report = vocabulary_load_from_directory(directory=options["directory"])
        except WarehouseError as exc:
            raise CommandError(str(exc)) from exc
        rows = ", ".join(f"{table} {count:,}" for table, count in report.rows.items())
        self.stdout.write(f"vocabulary loaded in {report.seconds:.1f} s: {rows}")
