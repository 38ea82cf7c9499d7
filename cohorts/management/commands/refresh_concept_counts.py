"""Recompute the record and person counts per concept of one site."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cohorts.concept_sets.counts import concept_counts_enqueue, concept_counts_refresh_at_site
from warehouse.engines import WarehouseError
from warehouse.models import Source


class Command(BaseCommand):
    help = (
        "Count records and persons per standard concept at a site. By default the work is queued for the "
        "site's worker (queue site.KEY), which is the process allowed to reach the site's database; --now runs "
        "it in this process."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", required=True, help="key of a registered source")
        parser.add_argument("--now", action="store_true", help="compute here instead of queueing for the worker")

    def handle(self, *args: Any, **options: Any) -> None:
        source = Source.objects.filter(key=options["source"]).first()
        if source is None:
            raise CommandError(f"no source with key {options['source']!r}")
        if options["now"]:
            try:
                counted = concept_counts_refresh_at_site(source_id=source.pk)
            except WarehouseError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"{counted:,} concepts counted at {source.key}")
            return
        task_id = concept_counts_enqueue(source=source)
        self.stdout.write(f"concept counts of {source.key} queued (task {task_id})")
