"""Source.projects takes over from accounts' Project.sources (accounts 0005) on the same table, with the same
columns (project_id, source_id): state only, no row moves."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("warehouse", "0005_source_privacy_moved_to_disclosure"),
        ("accounts", "0005_project_sources_declared_by_warehouse"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="source",
                    name="projects",
                    field=models.ManyToManyField(
                        blank=True, db_table="accounts_project_sources", related_name="sources", to="accounts.project"
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
