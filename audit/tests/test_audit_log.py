"""The audit log: append-only, read by admins and by stewards for their site, exported as CSV, retained."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import PASSWORD
from audit.models import AuditEvent
from audit.services import audit_record


def _insert_event_at(at: dt.datetime, action: str = "old_event") -> None:
    # ``at`` is set on insert only, and rows cannot be updated: write an old event directly.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditevent (at, actor_username, actor_role, action, object_type, object_id, "
            "object_repr, source_key, outcome, detail) VALUES (%s, '', '', %s, '', '', '', '', 'success', '{}')",
            [at, action],
        )


def test_update_and_delete_are_refused_by_the_database(db) -> None:
    event = audit_record(action="login")
    for sql in ("UPDATE audit_auditevent SET action = 'x' WHERE id = %s", "DELETE FROM audit_auditevent WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "login"


def test_approvals_and_rejections_and_logins_are_recorded(charlie, admin) -> None:
    client = Client()
    client.post("/accounts/login/", {"login": "charlie", "password": "wrong"})
    client.post("/accounts/login/", {"login": "charlie", "password": PASSWORD})
    assert set(AuditEvent.objects.values_list("action", flat=True)) >= {"login_failed", "login"}


def test_steward_sees_only_the_events_of_its_site(steward, other_steward, alice, bob, source, other_source) -> None:
    audit_record(action="run_start", source_key="syuh")
    audit_record(action="run_start", source_key="crh")
    audit_record(action="login", actor=alice, obj=alice)  # one of the steward's people
    audit_record(action="login", actor=bob, obj=bob)  # someone of the other hospital
    client = Client()
    client.force_login(steward)
    body = client.get("/audit/").content.decode()
    assert "syuh" in body and "crh" not in body
    assert "alice" in body and "bob" not in body
    client.force_login(other_steward)
    body = client.get("/audit/").content.decode()
    assert "crh" in body and "syuh" not in body and "bob" in body


def test_admin_sees_every_event(admin, source, other_source) -> None:
    audit_record(action="run_start", source_key="syuh")
    audit_record(action="run_start", source_key="crh")
    client = Client()
    client.force_login(admin)
    body = client.get("/audit/").content.decode()
    assert "syuh" in body and "crh" in body


def test_outsiders_find_no_audit_pages(alice, charlie) -> None:
    client = Client()
    client.force_login(charlie)
    assert client.get("/audit/").status_code == 404
    assert client.get("/audit/export.csv").status_code == 404
    assert Client().get("/audit/").status_code == 302  # anonymous: to the login page


def test_filters_by_action_user_and_date(admin, alice, bob) -> None:
    audit_record(action="login", actor=alice, obj=alice)
    audit_record(action="logout", actor=bob, obj=bob)
    _insert_event_at(timezone.now() - dt.timedelta(days=40), action="ancient")
    client = Client()
    client.force_login(admin)

    def actions(**params: str) -> set[str]:
        return {event.action for event in client.get("/audit/", params).context["page"]}

    assert actions(action="logout") == {"logout"}
    assert actions(user="alice") == {"login"}
    today = timezone.localdate()
    assert "ancient" not in actions(**{"from": (today - dt.timedelta(days=1)).isoformat()})
    assert actions(to=(today - dt.timedelta(days=30)).isoformat()) == {"ancient"}


def test_csv_export_is_filtered_quoted_and_itself_audited(admin, alice) -> None:
    audit_record(action="login", actor=alice, obj=alice, ip_address="10.0.0.7")
    audit_record(action="note", detail={"text": "=HYPERLINK()"}, source_key="syuh")
    client = Client(REMOTE_ADDR="10.0.0.9")
    client.force_login(admin)
    response = client.get("/audit/export.csv", {"action": "login", "user": "alice"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:5] == ["at", "actor_username", "actor_role", "ip_address", "action"]
    assert [row[4] for row in rows[1:]] == ["login"]
    assert rows[1][3] == "10.0.0.7"
    export = AuditEvent.objects.get(action="audit_export")
    assert (export.actor, export.ip_address, export.detail["rows"]) == (admin, "10.0.0.9", 1)
    # A cell that a spreadsheet would run as a formula is defused.
    from audit.spreadsheet_guard import spreadsheet_safe_cell as _csv_cell

    assert _csv_cell("=HYPERLINK()") == "'=HYPERLINK()"


def test_retention_deletes_only_old_events_and_records_itself(db) -> None:
    _insert_event_at(timezone.now() - dt.timedelta(days=4000), action="very_old")
    recent = audit_record(action="recent")
    out = io.StringIO()
    call_command("audit_retention", "--days", "3650", stdout=out)
    assert "deleted 1" in out.getvalue()
    assert not AuditEvent.objects.filter(action="very_old").exists()
    assert AuditEvent.objects.filter(pk=recent.pk).exists()
    assert AuditEvent.objects.get(action="audit_retention").detail["deleted"] == 1
    # The trigger is back on.
    with pytest.raises(DatabaseError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [recent.pk])


def test_retention_refuses_a_period_under_the_legal_minimum(db) -> None:
    with pytest.raises(CommandError):
        call_command("audit_retention", "--days", "30")


def test_retention_dry_run_deletes_nothing(db) -> None:
    _insert_event_at(timezone.now() - dt.timedelta(days=4000), action="very_old")
    out = io.StringIO()
    call_command("audit_retention", "--dry-run", stdout=out)
    assert "1 audit events" in out.getvalue()
    assert AuditEvent.objects.filter(action="very_old").exists()
