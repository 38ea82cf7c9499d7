"""The privacy settings of a site now live in disclosure.DisclosurePolicy; disclosure 0002 copied them there."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("warehouse", "0004_concept_words"),
        ("disclosure", "0002_copy_source_policies"),
    ]

    operations = [
        migrations.RemoveField(model_name="source", name="aggregate_only_roles"),
        migrations.RemoveField(model_name="source", name="min_cell_size"),
        migrations.RemoveField(model_name="source", name="round_to"),
    ]
