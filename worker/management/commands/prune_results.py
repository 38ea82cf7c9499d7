"""Delete the rows of a site's finished cohorts from its results tables, from the command line of the site.

    python manage.py prune_results --source KEY [--older-than-hours N] [--dry-run]

The same prune as the hourly beat task (``worker.retention``), run here: the site's database must be reachable
from this process. ``--dry-run`` counts the rows that would go and changes nothing, at the site or in the portal.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from warehouse.models import Source
from worker.retention import results_prune


class Command(BaseCommand):
    help = (
        "Delete from a site's results tables the rows of the runs final for longer than the retention "
        "(SOYANG_RESULTS_RETENTION_HOURS) and of finished dataset requests; print what was (or would be) deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", required=True, help="key of a registered source")
        parser.add_argument(
            "--older-than-hours", type=int, help="runs final for longer than this (default: the retention setting)"
        )
        parser.add_argument("--dry-run", action="store_true", help="only count the rows that would be deleted")

    def handle(self, *args: Any, **options: Any) -> None:
        source = Source.objects.filter(key=options["source"]).first()
        if source is None:
            raise CommandError(f"no source with key {options['source']!r}")
        hours = options["older_than_hours"]
        if hours is not None and hours < 0:
            raise CommandError("--older-than-hours is 0 or more")
        dry_run = options["dry_run"]
        report = results_prune(source_id=source.pk, older_than_hours=hours, dry_run=dry_run, trigger="command")
        if report.busy:
            raise CommandError(f"another prune of {source.key} is running; try again when it has finished")
        verb = "would delete" if dry_run else "deleted"
        for pruned in report.pruned:
            self.stdout.write(
                f"cohort {pruned.cohort.cohort_id}, {pruned.cohort.label}: {verb} {pruned.rows:,} rows "
                f"and {pruned.inclusion_rows:,} inclusion rows"
            )
        self.stdout.write(
            f"{source.key}: {verb} {report.rows:,} rows and {report.inclusion_rows:,} inclusion rows of "
            f"{len(report.pruned)} cohorts final before {timezone.localtime(report.cutoff):%Y-%m-%d %H:%M} "
            f"({report.retention_hours} h)"
        )
        if report.error:
            raise CommandError(
                f"stopped after {len(report.pruned)} of {report.due} cohorts: {report.error}; "
                "the rest stays for the next prune"
            )
