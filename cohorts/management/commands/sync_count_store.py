"""Build or refresh the count store of a PostgreSQL site, on the host of the site's worker.

    python manage.py sync_count_store --source KEY            # copy now (turns the store on for the site)
    python manage.py sync_count_store --source KEY --status   # what the store holds and whether it is fresh
    python manage.py sync_count_store --source KEY --off      # stop using it and delete the file

The copy runs in this process, as the worker runs it (``cohorts.runs.stores``), and prints each table as it is
copied, then the time, rows and the file's size. A sync already queued or running for the site is reported, not
doubled.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cohorts.runs.models import CountStoreSync
from cohorts.runs.stores import store_freshness, store_sync_execute, store_sync_request
from jobs.choices import JobState
from warehouse.choices import EngineKind
from warehouse.count_store import store_path, store_remove, store_state
from warehouse.models import Source


class Command(BaseCommand):
    help = "Build or refresh the columnar count store of a PostgreSQL site (run on the site's worker host)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", required=True, help="key of the site's Source")
        what = parser.add_mutually_exclusive_group()
        what.add_argument("--status", action="store_true", help="show the store's state; copy nothing")
        what.add_argument("--off", action="store_true", help="stop using a count store and delete its file")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            source = Source.objects.get(key=options["source"])
        except Source.DoesNotExist:
            raise CommandError(f"no source with key {options['source']!r}") from None
        if source.engine != EngineKind.POSTGRESQL:
            raise CommandError(f"{source.key} is a {source.engine} warehouse: count stores are for PostgreSQL sites")
        if options["status"]:
            self.status(source)
            return
        if options["off"]:
            Source.objects.filter(pk=source.pk).update(count_store=False, count_store_state="")
            removed = store_remove(source)
            self.stdout.write(f"{source.key}: count store off" + (f"; {store_path(source)} deleted" if removed else ""))
            return
        sync = store_sync_request(source=source, trigger=CountStoreSync.Trigger.COMMAND, send=False)
        if sync.trigger != CountStoreSync.Trigger.COMMAND or sync.state != JobState.QUEUED:
            raise CommandError(
                f"sync {sync.pk} of {source.key} is already {sync.state} ({sync.get_trigger_display()}); "
                "it runs on the site's worker"
            )

        def progress(table: str, rows: int) -> None:
            self.stdout.write(f"  {table}: {rows:,} rows")

        state = store_sync_execute(sync_id=sync.pk, worker="sync_count_store", progress=progress)
        sync.refresh_from_db()
        if state != JobState.SUCCEEDED:
            raise CommandError(f"the sync failed: {sync.error}")
        total = sum(sync.rows.values())
        self.stdout.write(
            f"{source.key}: {total:,} rows of {len(sync.rows)} tables in {sync.seconds:.1f} s; "
            f"{sync.bytes / 2**20:,.1f} MiB at {store_path(source)}"
        )

    def status(self, source: Source) -> None:
        state = store_state(source)
        if state is None:
            self.stdout.write(f"{source.key}: no count store" + ("" if source.count_store else " (off)"))
            return
        found = store_freshness(source)
        self.stdout.write(
            f"{source.key}: {found}; synced {state.synced_at:%Y-%m-%d %H:%M} UTC in {state.seconds:.1f} s, "
            f"{sum(state.rows.values()):,} rows, {state.bytes / 2**20:,.1f} MiB at {state.path}"
        )
