"""Prepare the embedded demo: a synthetic DuckDB warehouse and one account per role.

Run by ``make run``. Idempotent: on later runs it only reports what exists. The generated passwords are
printed once, at creation; ``--reset-passwords`` prints new ones.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.choices import Role
from accounts.models import Project, User
from accounts.services import (
    account_create_approved,
    account_set_password,
    membership_approve,
    membership_request,
    organisation_get_or_create,
    project_create,
)
from warehouse.models import Concept, ConceptCount, Source
from warehouse.services import source_create

DEMO_SOURCE_KEY = "demo"
DEMO_SOURCE_URL = "duckdb:///var/demo/demo.duckdb"
DEMO_PROJECT_TITLE = "Demo: cardiometabolic cohorts"
DEMO_ACCOUNTS = [
    ("researcher", Role.RESEARCHER, "Min-jun", "Kim"),
    ("partner", Role.PARTNER, "Seo-yeon", "Lee"),
    ("steward", Role.STEWARD, "Ji-ho", "Park"),
    ("admin", Role.ADMIN, "Ha-eun", "Choi"),
]


class Command(BaseCommand):
    help = "Create the demo warehouse (synthetic, 10,000 persons) and one demo account per role."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--persons", type=int, default=10_000)
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument("--warehouse-url", default=DEMO_SOURCE_URL, help="Where the demo DuckDB file goes.")
        parser.add_argument("--reset-passwords", action="store_true", help="Give every demo account a new password.")

    def handle(self, *args: Any, **options: Any) -> None:
        organisation = organisation_get_or_create(name="Soyang Demo Hospital")
        source = Source.objects.filter(key=DEMO_SOURCE_KEY).first()
        if source is None:
            source = source_create(
                key=DEMO_SOURCE_KEY, engine="duckdb", url=options["warehouse_url"], name="Demo hospital (synthetic)"
            )
        if source.organisation_id is None:
            source.organisation = organisation
            source.save(update_fields=["organisation"])
        if not source.fingerprint:
            self.stdout.write(f"Synthesizing the demo warehouse ({options['persons']:,} persons)...")
            call_command("synthesize_omop", source=DEMO_SOURCE_KEY, persons=options["persons"], seed=options["seed"])
        else:
            self.stdout.write(f"Demo warehouse ready (fingerprint {source.fingerprint[:12]}).")
        source.refresh_from_db()
        if not Concept.objects.exists() or not ConceptCount.objects.filter(source=source).exists():
            # The portal's vocabulary copy and the demo site's concept counts, computed here rather than by a
            # worker: the demo runs before any worker is up.
            call_command("load_vocabulary", source=DEMO_SOURCE_KEY)
            call_command("refresh_concept_counts", source=DEMO_SOURCE_KEY, now=True)

        created: list[tuple[str, str, str]] = []
        for username, role, first, last in DEMO_ACCOUNTS:
            user = User.objects.filter(username=username).first()
            if user is None:
                password = secrets.token_urlsafe(12)
                account_create_approved(
                    username=username,
                    email=f"{username}@demo.soyang.local",
                    password=password,
                    role=role,
                    organisation=organisation,
                    first_name=first,
                    last_name=last,
                )
                created.append((username, role.label, password))
            elif options["reset_passwords"]:
                password = secrets.token_urlsafe(12)
                account_set_password(user=user, password=password)
                created.append((username, role.label, password))
        self._demo_project(source)
        if created:
            self.stdout.write("\nDemo accounts (these passwords are shown only now):")
            for username, label, password in created:
                self.stdout.write(f"  {username:<11} {label:<15} {password}")
            self.stdout.write("")
        else:
            self.stdout.write(
                "Demo accounts exist: researcher, partner, steward, admin (passwords were printed on first run; "
                "`python manage.py demo_setup --reset-passwords` prints new ones)."
            )

    def _demo_project(self, source: Source) -> None:
        """A running project on the demo site: the researcher owns it, the partner is an approved viewer."""
        if Project.objects.filter(title=DEMO_PROJECT_TITLE).exists():
            return
        users = {user.username: user for user in User.objects.filter(username__in=[a[0] for a in DEMO_ACCOUNTS])}
        today = timezone.localdate()
        project = project_create(
            title=DEMO_PROJECT_TITLE,
            purpose="Demonstration of Soyang on a synthetic warehouse: cardiometabolic disease cohorts.",
            approval_number="DEMO-IRB-2026-001",
            principal_investigator=users["researcher"],
            starts_on=today,
            expires_on=today + timedelta(days=365),
            sources=[source],
            created_by=users["admin"],
        )
        membership = membership_request(project=project, user=users["partner"])
        membership = membership_approve(membership=membership, approver=users["researcher"])
        membership_approve(membership=membership, approver=users["steward"])
        self.stdout.write(f"Demo project created: {project.title} (researcher owns it, partner may view).")
