import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

import disclosure.models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("warehouse", "0004_concept_words"),
    ]

    operations = [
        migrations.CreateModel(
            name="DisclosurePolicy",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "min_cell_size",
                    models.PositiveIntegerField(
                        default=10,
                        help_text="Counts from 1 to this minus one are hidden.",
                        validators=[django.core.validators.MinValueValidator(1)],
                    ),
                ),
                (
                    "round_to",
                    models.PositiveIntegerField(
                        default=10,
                        help_text="Aggregate-only roles see counts rounded to this.",
                        validators=[django.core.validators.MinValueValidator(1)],
                    ),
                ),
                (
                    "aggregate_only_roles",
                    models.JSONField(
                        blank=True,
                        default=disclosure.models.default_aggregate_only_roles,
                        help_text="Roles that see rounded aggregate counts only (e.g. partner).",
                    ),
                ),
                (
                    "source",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="disclosure_policy",
                        to="warehouse.source",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "disclosure policies",
            },
        ),
    ]
