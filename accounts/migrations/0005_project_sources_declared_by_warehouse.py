"""Project.sources is now declared on the other side, as warehouse.Source.projects (warehouse 0006), so that no
model of accounts refers to warehouse. State only: the table accounts_project_sources and its rows stay."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_api_token"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.RemoveField(model_name="project", name="sources")],
            database_operations=[],
        ),
    ]
