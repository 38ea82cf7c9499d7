"""The projection becomes a site job of its own (``Projection``, one per review, sharing its key) and the extract a
site job too: both speak the one state vocabulary of ``jobs.choices.JobState``.

States renamed: pending → queued, done → succeeded. An extract once marked deleted keeps its outcome (succeeded
when it had finished, cancelled when it had not) and records when its file went (``files_deleted_at``).
"""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

JOB_STATES = [
    ("queued", "Queued"),
    ("running", "Running"),
    ("succeeded", "Succeeded"),
    ("failed", "Failed"),
    ("cancelled", "Cancelled"),
]
OLD_JOB_STATES = [
    ("pending", "Pending"),
    ("running", "Running"),
    ("done", "Done"),
    ("failed", "Failed"),
    ("deleted", "Deleted"),
]
TO_NEW = {"pending": "queued", "done": "succeeded"}
TO_OLD = {"queued": "pending", "succeeded": "done", "cancelled": "failed"}


def projections_from_reviews(apps, schema_editor):
    SiteReview = apps.get_model("datasets", "SiteReview")
    Projection = apps.get_model("datasets", "Projection")
    Projection.objects.bulk_create(
        Projection(
            review_id=review.pk,
            state=TO_NEW.get(review.projection_state, review.projection_state),
            error=review.projection_error,
            lease_expires_at=review.lease_expires_at,
            attempts=0 if review.projection_state == "pending" else 1,
        )
        for review in SiteReview.objects.all()
    )


def reviews_from_projections(apps, schema_editor):
    SiteReview = apps.get_model("datasets", "SiteReview")
    Projection = apps.get_model("datasets", "Projection")
    for projection in Projection.objects.all():
        SiteReview.objects.filter(pk=projection.pk).update(
            projection_state=TO_OLD.get(projection.state, projection.state),
            projection_error=projection.error,
            lease_expires_at=projection.lease_expires_at,
        )


def extract_states_renamed(apps, schema_editor):
    Extract = apps.get_model("datasets", "Extract")
    now = timezone.now()
    Extract.objects.filter(state="deleted", finished_at__isnull=False).update(state="succeeded", files_deleted_at=now)
    Extract.objects.filter(state="deleted").update(state="cancelled", files_deleted_at=now)
    for old, new in TO_NEW.items():
        Extract.objects.filter(state=old).update(state=new)


def extract_states_restored(apps, schema_editor):
    Extract = apps.get_model("datasets", "Extract")
    Extract.objects.filter(files_deleted_at__isnull=False).update(state="deleted")
    Extract.objects.filter(state="cancelled").update(state="deleted")
    for new, old in TO_OLD.items():
        Extract.objects.filter(state=new).update(state=old)


class Migration(migrations.Migration):
    dependencies = [
        ("datasets", "0003_review_rows_pruned_at"),
    ]

    operations = [
        migrations.CreateModel(
            name="Projection",
            fields=[
                ("state", models.CharField(choices=JOB_STATES, db_index=True, default="queued", max_length=20)),
                ("cancel_requested", models.BooleanField(default=False)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("lease_token", models.CharField(blank=True, max_length=32)),
                ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                ("worker", models.CharField(blank=True, max_length=200)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("error", models.TextField(blank=True)),
                (
                    "review",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="projection",
                        serialize=False,
                        to="datasets.sitereview",
                    ),
                ),
            ],
            options={
                "abstract": False,
            },
        ),
        migrations.RunPython(projections_from_reviews, reviews_from_projections),
        migrations.RemoveField(model_name="sitereview", name="lease_expires_at"),
        migrations.RemoveField(model_name="sitereview", name="projection_error"),
        migrations.RemoveField(model_name="sitereview", name="projection_state"),
        migrations.AddField(
            model_name="extract", name="cancel_requested", field=models.BooleanField(default=False)
        ),
        migrations.AddField(
            model_name="extract", name="files_deleted_at", field=models.DateTimeField(blank=True, null=True)
        ),
        migrations.AddField(model_name="extract", name="lease_token", field=models.CharField(blank=True, max_length=32)),
        migrations.AddField(model_name="extract", name="worker", field=models.CharField(blank=True, max_length=200)),
        migrations.AlterField(
            model_name="extract",
            name="state",
            field=models.CharField(choices=JOB_STATES, db_index=True, default="queued", max_length=20),
        ),
        migrations.RunPython(extract_states_renamed, extract_states_restored),
    ]
