"""Delete audit events older than the retention period — the one path that may delete from the audit log.

How, on PostgreSQL, given that a trigger refuses every DELETE (audit/migrations/0002):

1. one transaction, as the owner of ``audit_auditevent`` (the role that ran the migrations);
2. ``ALTER TABLE … DISABLE TRIGGER audit_event_append_only`` — this takes an ACCESS EXCLUSIVE lock on the
   table, so every other session's audit insert waits until we commit, and no other session can ever see
   the table without its trigger (DDL is transactional in PostgreSQL);
3. delete the rows older than the cut-off, and nothing else;
4. ``ENABLE TRIGGER`` again, and record an ``audit_retention`` event (cut-off, rows deleted) in the same
   transaction — if anything fails, all of it rolls back, trigger included.

No SECURITY DEFINER function and no superuser ``session_replication_role`` trick: nothing stays installed in
the database that could delete audit rows outside this command. The command refuses a retention shorter than
``AUDIT_RETENTION_MIN_DAYS`` (two years: PIPA's safety measures for access records of sensitive data).
Stronger still, in production: run the portal as a role that does not own the table, and this command as the
owner; then the portal's own role cannot disable the trigger at all.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record

TRIGGER = "audit_event_append_only"


class Command(BaseCommand):
    help = "Delete audit events older than --days (default AUDIT_RETENTION_DAYS); records its own event."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=settings.AUDIT_RETENTION_DAYS)
        parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")

    def handle(self, *args: Any, days: int, dry_run: bool, **options: Any) -> None:
        minimum = settings.AUDIT_RETENTION_MIN_DAYS
        if days < minimum:
            raise CommandError(f"--days {days} is under the minimum retention of {minimum} days")
        cutoff = timezone.now() - timedelta(days=days)
        old = AuditEvent.objects.filter(at__lt=cutoff)
        if dry_run:
            self.stdout.write(f"{old.count()} audit events older than {cutoff:%Y-%m-%d %H:%M} would be deleted")
            return
        table = connection.ops.quote_name(AuditEvent._meta.db_table)
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    # ALTER TABLE refuses while deferred constraint checks of earlier statements of the same
                    # transaction are pending (an enclosing transaction, as in the tests): run them now.
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                    cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {TRIGGER}")  # noqa: S608 (constant names)
            deleted, _ = old.delete()
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {TRIGGER}")  # noqa: S608
            audit_record(
                action="audit_retention",
                detail={"days": days, "cutoff": cutoff.isoformat(), "deleted": deleted},
            )
        self.stdout.write(f"deleted {deleted} audit events older than {cutoff:%Y-%m-%d %H:%M}")
