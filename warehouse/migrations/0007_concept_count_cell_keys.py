"""The cell keys of the concept counts (computed at the sites). Counts stored before have none: the portal does
not release them until the site counts again."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('warehouse', '0006_source_projects'),
    ]

    operations = [
        migrations.AddField(
            model_name='conceptcount',
            name='person_key',
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='conceptcount',
            name='record_key',
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
    ]
