"""The cell keys of a review's projected counts (computed at the site). Reviews projected before have none:
their counts are shown to the site's stewards only."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('datasets', '0004_site_jobs'),
    ]

    operations = [
        migrations.AddField(
            model_name='sitereview',
            name='cohort_persons_key',
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='sitereview',
            name='projected_row_keys',
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
