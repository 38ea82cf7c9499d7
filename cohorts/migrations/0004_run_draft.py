"""Counts of the builder's unsaved draft: a request names its definition, and a run counts either a version or
an expression snapshot (exactly one).

Existing rows keep their version: the new ``definition`` of each request is filled from it before the column
becomes required. Going back deletes the draft counts (the builder's scratch, never listed), as a run without a
version cannot exist before this migration; every count of a saved version is kept, with its runs.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def fill_definitions(apps, schema_editor):
    RunRequest = apps.get_model("cohorts", "RunRequest")
    CohortDefinitionVersion = apps.get_model("cohorts", "CohortDefinitionVersion")
    RunRequest.objects.filter(definition__isnull=True).update(
        definition=models.Subquery(
            CohortDefinitionVersion.objects.filter(pk=models.OuterRef("version_id")).values("definition_id")[:1]
        )
    )


def delete_draft_counts(apps, schema_editor):
    RunRequest = apps.get_model("cohorts", "RunRequest")
    CohortRun = apps.get_model("cohorts", "CohortRun")
    RunRequest.objects.filter(version__isnull=True).delete()
    # A draft's run that a count of a saved version reused (same expression) stays, as that version's run.
    for run in CohortRun.objects.filter(version__isnull=True):
        request = run.requests.filter(version__isnull=False).first()
        if request is None:
            run.delete()
        else:
            run.version_id, run.expression = request.version_id, None
            run.save(update_fields=["version", "expression"])


class Migration(migrations.Migration):
    dependencies = [
        ("cohorts", "0003_run_rows_pruned_at"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="cohortrun",
            name="expression",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="runrequest",
            name="definition",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="run_requests",
                to="cohorts.cohortdefinition",
            ),
        ),
        migrations.RunPython(fill_definitions, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="runrequest",
            name="definition",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="run_requests",
                to="cohorts.cohortdefinition",
            ),
        ),
        migrations.AlterField(
            model_name="cohortrun",
            name="version",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="runs",
                to="cohorts.cohortdefinitionversion",
            ),
        ),
        migrations.AlterField(
            model_name="runrequest",
            name="version",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="requests",
                to="cohorts.cohortdefinitionversion",
            ),
        ),
        migrations.AddConstraint(
            model_name="cohortrun",
            constraint=models.CheckConstraint(
                condition=models.Q(version__isnull=False, expression__isnull=True)
                | models.Q(version__isnull=True, expression__isnull=False),
                name="run_counts_a_version_or_a_draft",
            ),
        ),
        # Last, so that going back removes the drafts before the version columns become required again.
        migrations.RunPython(migrations.RunPython.noop, delete_draft_counts),
    ]
