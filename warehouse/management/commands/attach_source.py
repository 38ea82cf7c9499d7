"""Attach a site's existing OMOP CDM (one Soyang did not load) so that it can be counted."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from warehouse.attach import describe
from warehouse.engines import WarehouseError
from warehouse.models import Source
from warehouse.services import AttachRefused, source_attach


class Command(BaseCommand):
    help = (
        "attach_source KEY: check the CDM of a registered source (tables and columns counting reads, CDM version, "
        "cdm_source, a writable results schema), record its fingerprint, and report the indexes and VACUUM state "
        "it lacks (on Spark, which has no indexes: the tables without statistics) with the statements a DBA could "
        "run. Soyang never writes to the CDM schema."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", help="key of the source (add_source registers it)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            source = Source.objects.get(key=options["key"])
        except Source.DoesNotExist as exc:
            raise CommandError(f"no source with key {options['key']!r} (see list_sources)") from exc
        attach_and_report(self, source)


def attach_and_report(command: BaseCommand, source: Source) -> None:
    """Attach ``source`` and print the report; ``CommandError`` (nothing recorded) when it cannot be attached.
    Shared with ``add_source --attach``."""
    try:
        inspection = source_attach(source=source)
    except AttachRefused as exc:
        raise CommandError("\n".join(describe(exc.inspection))) from exc
    except WarehouseError as exc:
        raise CommandError(f"cannot reach the warehouse of source {source.key}: {exc}") from exc
    for line in describe(inspection):
        command.stdout.write(line)
    command.stdout.write(f"attached source {source.key} (CDM {inspection.cdm_version}); it can be counted now")
