"""List the registered warehouses with their CDM version, main row counts and fingerprint."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from warehouse.engines import WarehouseError
from warehouse.models import Source
from warehouse.selectors import SUMMARY_TABLES, source_row_counts


class Command(BaseCommand):
    help = "List the sources; an unreachable warehouse is shown as such."

    def handle(self, *args: Any, **options: Any) -> None:
        sources = list(Source.objects.order_by("key"))
        if not sources:
            self.stdout.write("no sources")
            return
        header = ["key", "engine", "cdm", *SUMMARY_TABLES, "fingerprint"]
        rows = [header]
        for source in sources:
            try:
                counts = source_row_counts(source=source)
                cells = [str(counts[t]) if t in counts else "-" for t in SUMMARY_TABLES]
            except WarehouseError as exc:
                # One site being down must not hide the others: report it in its row.
                cells = ["unreachable"] + [""] * (len(SUMMARY_TABLES) - 1)
                self.stderr.write(f"{source.key}: unreachable: {exc}")
            rows.append([source.key, source.engine, source.cdm_version or "-", *cells, source.fingerprint or "-"])
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
