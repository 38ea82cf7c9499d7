"""When a site's worker last read its CDM's fingerprint (cached counts are served only while it is recent), and
when an existing CDM was attached rather than loaded by Soyang."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('warehouse', '0007_concept_count_cell_keys'),
    ]

    operations = [
        migrations.AddField(
            model_name='source',
            name='fingerprint_checked_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='source',
            name='attached_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
