"""Load an OMOP CDM CSV export into a source's warehouse, replacing its CDM."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from warehouse.engines import WarehouseError
from warehouse.models import Source
from warehouse.services import source_load_omop


class Command(BaseCommand):
    help = "load_omop DIR --source KEY [--cdm-version 5.3|5.4]: one TABLE.csv[.gz] per CDM table, header row."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--source", required=True, help="key of the source")
        parser.add_argument("--cdm-version", default=None, help="5.3 or 5.4 (detected from the files if omitted)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            source = Source.objects.get(key=options["source"])
        except Source.DoesNotExist as exc:
            raise CommandError(f"no source with key {options['source']!r} (see list_sources)") from exc
        started = time.monotonic()

        def progress(table: str, rows: int) -> None:
            self.stdout.write(f"  {table:<24} {rows:>12,}")

        try:
            report = source_load_omop(
                source=source, directory=options["directory"], cdm_version=options["cdm_version"], progress=progress
            )
        except WarehouseError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"loaded {report.total_rows:,} rows into {source.key} ({source.engine}, schema {report.cdm_schema}, "
            f"CDM {report.cdm_version}) in {time.monotonic() - started:.1f} s; fingerprint {report.fingerprint}"
        )
