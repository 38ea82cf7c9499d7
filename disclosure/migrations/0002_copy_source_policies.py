"""Copy each site's privacy settings from warehouse.Source into its DisclosurePolicy (warehouse 0005 then drops
them from Source). Every source gets a row, defaults included, so that what each site discloses is written down
where an admin looks for it; backwards, the values go back onto the sources."""

from django.db import migrations

FIELDS = ("min_cell_size", "round_to", "aggregate_only_roles")


def policies_from_sources(apps, schema_editor):
    Source = apps.get_model("warehouse", "Source")
    DisclosurePolicy = apps.get_model("disclosure", "DisclosurePolicy")
    DisclosurePolicy.objects.bulk_create(
        DisclosurePolicy(source_id=source.pk, **{name: getattr(source, name) for name in FIELDS})
        for source in Source.objects.filter(disclosure_policy__isnull=True)
    )


def sources_from_policies(apps, schema_editor):
    Source = apps.get_model("warehouse", "Source")
    DisclosurePolicy = apps.get_model("disclosure", "DisclosurePolicy")
    for policy in DisclosurePolicy.objects.all():
        Source.objects.filter(pk=policy.source_id).update(**{name: getattr(policy, name) for name in FIELDS})


class Migration(migrations.Migration):
    dependencies = [
        ("disclosure", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(policies_from_sources, sources_from_policies),
    ]
