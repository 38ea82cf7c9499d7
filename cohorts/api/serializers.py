"""Serializers of the cohorts endpoints. Input serializers validate shapes only; expressions are validated by
``cohorts.expression.parse_expression`` inside the services, and their errors come back per JSON path."""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.api.fields import StrictCharField, StrictIntegerField
from cohorts.definitions.models import CohortDefinition, CohortDefinitionVersion
from cohorts.runs.choices import RunKind
from cohorts.runs.models import RunRequest
from cohorts.runs.services import MAX_SET_SIZE
from disclosure.selectors import rule_for
from warehouse.models import Source

#: ATLAS exports a few kilobytes; two megabytes of JSON is far past any real definition (the parser's own limits,
#: depth and number of criteria, apply after this).
MAX_EXPRESSION_CHARS = 2_000_000
RUNNABLE_KINDS = [(k.value, k.label) for k in (RunKind.COUNT, RunKind.ATTRITION, RunKind.DEMOGRAPHICS)]


class PerturbationSerializer(serializers.Serializer):
    ptable = serializers.CharField(help_text="The published perturbation table in force (docs/privacy.md).")
    max_adjustment = serializers.IntegerField(help_text="No count is moved further than this from the truth.")
    variance = serializers.CharField(help_text="The variance of the noise, as a fraction.")


class PrivacyRuleSerializer(serializers.Serializer):
    min_cell = serializers.IntegerField(help_text="Counts from 1 to min_cell - 1 are shown as '<min_cell'.")
    round_to = serializers.IntegerField(help_text="Counts are rounded to this (1: no rounding).")
    method = serializers.ChoiceField(
        choices=["perturbed", "exact"],
        help_text="perturbed: the cell-key method, the same persons always give the same number; exact: by a "
        "steward's grant to the project (never for partners).",
    )
    grant = serializers.IntegerField(allow_null=True, help_text="The exact-count grant in force, if any.")
    perturbation = PerturbationSerializer(required=False, help_text="The ptable, when the counts are perturbed.")
    description = serializers.CharField()
    short = serializers.CharField(help_text="The rule in a few characters.")


class SourceSerializer(serializers.ModelSerializer):
    organisation = serializers.CharField(source="organisation.name", read_only=True, allow_null=True)
    privacy = serializers.SerializerMethodField(help_text="The rule applied to your counts on this site.")
    ready = serializers.SerializerMethodField(help_text="Active and loaded: counts can run now.")
    # Blank until data is loaded, so not the model's enum.
    cdm_version = serializers.CharField(read_only=True, help_text="OMOP CDM version (5.3, 5.4), empty until loaded.")

    class Meta:
        model = Source
        fields = ["id", "key", "name", "organisation", "engine", "cdm_version", "loaded_at", "ready", "privacy"]
        read_only_fields = fields

    @extend_schema_field(PrivacyRuleSerializer)
    def get_privacy(self, source: Source) -> dict[str, Any]:
        return PrivacyRuleSerializer(rule_for(source=source, role=self.context["request"].user.role).as_dict()).data

    def get_ready(self, source: Source) -> bool:
        return bool(source.is_active and source.fingerprint)


class VersionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True)

    class Meta:
        model = CohortDefinitionVersion
        fields = ["number", "author", "note", "expression_hash", "created_at"]
        read_only_fields = fields


class DefinitionSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    latest_version = serializers.SerializerMethodField()

    class Meta:
        model = CohortDefinition
        fields = ["id", "name", "description", "project", "owner", "created_at", "updated_at", "latest_version"]
        read_only_fields = fields

    def get_latest_version(self, definition: CohortDefinition) -> int | None:
        if hasattr(definition, "latest_number"):
            return definition.latest_number
        return definition.versions.order_by("-number").values_list("number", flat=True).first()


class DefinitionDetailSerializer(DefinitionSerializer):
    expression = serializers.SerializerMethodField(help_text="The latest version's ATLAS/Circe expression.")

    class Meta(DefinitionSerializer.Meta):
        fields = [*DefinitionSerializer.Meta.fields, "expression"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_expression(self, definition: CohortDefinition) -> dict[str, Any] | None:
        latest = definition.latest_version()
        return latest.expression if latest else None


class DefinitionCreateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200, single_line=True)
    description = StrictCharField(max_length=5000, required=False, allow_blank=True, default="")
    project = StrictIntegerField(
        required=False, allow_null=True, default=None, min_value=1, help_text="Id of a project you work in."
    )
    expression = serializers.JSONField(help_text="The ATLAS/Circe cohort expression (a JSON object).")

    def validate_name(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("Give the definition a name.")
        return value.strip()

    def validate_expression(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("The expression must be a JSON object (ATLAS cohort expression).")
        return value


class DefinitionImportSerializer(DefinitionCreateSerializer):
    expression = serializers.JSONField(
        help_text="The ATLAS JSON as exported: the expression object, a whole ATLAS definition with it under "
        "'expression', or the file's text as a string."
    )

    def validate_expression(self, value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            if len(value) > MAX_EXPRESSION_CHARS:
                raise serializers.ValidationError("The ATLAS JSON is too large for a cohort definition.")
            try:
                value = json.loads(value)
            except (ValueError, RecursionError) as exc:
                raise serializers.ValidationError(f"The ATLAS JSON is not valid JSON ({exc}).") from None
        # ATLAS exports either the bare expression or a whole definition with it under "expression".
        if isinstance(value, dict) and "expression" in value and "PrimaryCriteria" not in value:
            value = value["expression"]
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except (ValueError, RecursionError):
                    raise serializers.ValidationError("The 'expression' inside the ATLAS JSON is not JSON.") from None
        return super().validate_expression(value)


class VersionCreateSerializer(serializers.Serializer):
    expression = serializers.JSONField(help_text="The new ATLAS/Circe expression (a JSON object).")
    note = StrictCharField(max_length=500, single_line=True, required=False, allow_blank=True, default="")

    def validate_expression(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("The expression must be a JSON object (ATLAS cohort expression).")
        return value


class ShareSerializer(serializers.Serializer):
    project = StrictIntegerField(required=False, min_value=1, help_text="Share with this project's members…")
    username = StrictCharField(required=False, max_length=150, single_line=True, help_text="…or with one person.")

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if ("project" in data) == bool((data.get("username") or "").strip()):
            raise serializers.ValidationError("Give either a project or one user name.")
        return data


class SharedSerializer(serializers.Serializer):
    projects = serializers.ListField(child=serializers.IntegerField())
    users = serializers.ListField(child=serializers.CharField())


class RunCreateSerializer(serializers.Serializer):
    definition = StrictIntegerField(min_value=1)
    kind = serializers.ChoiceField(choices=RUNNABLE_KINDS, default=RunKind.COUNT)
    sources = serializers.ListField(
        child=StrictCharField(max_length=40, single_line=True),
        min_length=1,
        max_length=100,
        help_text="Keys of the sites to count on (see sources/).",
    )


class RunSetCreateSerializer(serializers.Serializer):
    definitions = serializers.ListField(
        child=StrictIntegerField(min_value=1),
        min_length=1,
        max_length=MAX_SET_SIZE,
        help_text="Ids of the definitions to count together (their latest versions).",
    )
    kind = serializers.ChoiceField(choices=RUNNABLE_KINDS, default=RunKind.COUNT)
    sources = serializers.ListField(
        child=StrictCharField(max_length=40, single_line=True),
        min_length=1,
        max_length=100,
        help_text="Keys of the sites to count every definition on (see sources/).",
    )


class ComparisonCreateSerializer(serializers.Serializer):
    definitions = serializers.ListField(
        child=StrictIntegerField(min_value=1),
        min_length=2,
        max_length=4,
        help_text="Ids of the 2 to 4 definitions to compare (their latest versions), in the order A, B, C, D.",
    )
    sources = serializers.ListField(
        child=StrictCharField(max_length=40, single_line=True),
        min_length=1,
        max_length=100,
        help_text="Keys of the sites to compare on: sites where you may count every definition (see sources/).",
    )


class RunRequestSerializer(serializers.ModelSerializer):
    definition = serializers.IntegerField(source="definition_id", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True, allow_null=True)

    class Meta:
        model = RunRequest
        fields = ["id", "kind", "definition", "version", "created_at", "cancelled_at"]
        read_only_fields = fields


# --- the result, exactly as ``run_selectors.run_request_result`` gives it (privacy applied) ---------------------


class ProtectedCountSerializer(serializers.Serializer):
    value = serializers.IntegerField(allow_null=True, help_text="null when hidden")
    display = serializers.CharField(help_text="What to show, e.g. '1,230' or '<10'.")
    hidden = serializers.BooleanField()


class FederatedTotalSerializer(ProtectedCountSerializer):
    lower_bound = serializers.IntegerField()
    hidden_sites = serializers.IntegerField()


class StepSerializer(ProtectedCountSerializer):
    name = serializers.CharField()


class DerivedNumberSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True, help_text="null when hidden or not available")
    display = serializers.CharField(
        allow_blank=True, help_text="What to show, e.g. '12' or '87.5%'; 'hidden' when an operand is hidden."
    )
    hidden = serializers.BooleanField()


class AttritionStepSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    name = serializers.CharField()
    kept = ProtectedCountSerializer(help_text="Meeting this rule and every rule before it.")
    lost = DerivedNumberSerializer(help_text="The step before (or the initial row) minus kept, both as released.")
    percent = DerivedNumberSerializer(help_text="Kept as a % of the initial row, both as released.")
    own = ProtectedCountSerializer(help_text="Meeting this rule alone.")
    own_percent = DerivedNumberSerializer(help_text="The rule alone as a % of the initial row, both as released.")


class AttritionModeSerializer(serializers.Serializer):
    initial = ProtectedCountSerializer(
        allow_null=True, help_text="Before any inclusion rule; null for results counted before it was computed."
    )
    initial_percent = DerivedNumberSerializer()
    steps = AttritionStepSerializer(many=True)


class AttritionTableSerializer(serializers.Serializer):
    person = AttritionModeSerializer(help_text="By person (Circe's mode 1: each person's best event).")
    event = AttritionModeSerializer(
        allow_null=True, help_text="By event (Circe's mode 0); null for results counted before it was computed."
    )


class ProgressSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    total = serializers.IntegerField()
    label = serializers.CharField(allow_blank=True)


class SiteResultSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    source = serializers.CharField()
    site = serializers.CharField()
    state = serializers.CharField()
    progress = ProgressSerializer()
    queued_at = serializers.CharField(allow_null=True)
    started_at = serializers.CharField(allow_null=True)
    finished_at = serializers.CharField(allow_null=True)
    database_seconds = serializers.FloatField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    engine = serializers.CharField(
        allow_blank=True,
        help_text="What answered the site's count: 'count-store' (the PostgreSQL site's columnar copy, used only "
        "while it holds the CDM as it is now), 'postgresql' or 'duckdb'; empty until it has answered.",
    )
    engine_note = serializers.CharField(
        allow_blank=True, help_text="Why the site's count store did not answer, when it keeps one (else empty)."
    )
    privacy = PrivacyRuleSerializer()
    persons = ProtectedCountSerializer(required=False)
    breakdown_withheld = serializers.BooleanField(
        required=False,
        help_text="The site's count is under its threshold: no per-rule counts, attrition steps or demographics "
        "are released for it (inclusion_rules and attrition are empty, demographics absent).",
    )
    inclusion_rules = StepSerializer(many=True, required=False)
    attrition = StepSerializer(many=True, required=False)
    attrition_table = AttritionTableSerializer(
        required=False,
        allow_null=True,
        help_text="The attrition with its initial row, lost and percentages, by person and by event; null when "
        "the site's count is hidden. Lost and percentages are computed from the released counts only, and hidden "
        "wherever one of them is.",
    )
    demographics = serializers.DictField(
        required=False,
        help_text="Only when the site's count is shown. Every bucket of fixed categories (all age groups by sex, "
        "sexes, races, ethnicities, five-year periods of the index year), in a fixed order, each count protected "
        "like persons: an empty or hidden bucket is '<10' alike. Top concepts of the year before index "
        "(top_at_index, index_lookback_days: 365; 30 in older results): only those whose count is shown. Each row "
        "has percent (of the cohort); age groups, sexes and top concepts also the site population's count "
        "(population), population_percent and smd (standardized difference), computed from released counts only "
        "and null where a count they need is hidden; population: the population's released total and definition "
        "(absent in results stored before the sites computed it, or when its total is hidden).",
    )


class RunResultSerializer(serializers.Serializer):
    request = serializers.IntegerField()
    kind = serializers.CharField()
    definition = serializers.IntegerField()
    version = serializers.IntegerField(allow_null=True, help_text="null for a count of the builder's unsaved draft")
    draft = serializers.BooleanField(help_text="A count of the builder's unsaved draft (no version saved).")
    finished = serializers.BooleanField()
    state = serializers.ChoiceField(choices=["queued", "running", "finished"])
    cancelled = serializers.BooleanField()
    total = FederatedTotalSerializer(allow_null=True)
    total_privacy = PrivacyRuleSerializer()
    sites_answered = serializers.IntegerField()
    sites = SiteResultSerializer(many=True)
    merged_breakdown_withheld = serializers.BooleanField(
        help_text="Two or more sites answered with demographics, but the merged total is hidden (a site's count is "
        "under its threshold): no merged demographics are released."
    )
    merged_attrition_withheld = serializers.BooleanField(
        help_text="Two or more sites answered, but one's count is hidden: no attrition of the sites together."
    )
    merged_attrition = serializers.DictField(
        required=False,
        help_text="The attrition of the answering sites together (two or more, every one shown), like a site's "
        "attrition_table with a 'privacy' rule (the strictest): each count is the sites' cells summed and released "
        "as the merged total is; lost and percentages come from those released numbers.",
    )
    merged_demographics = serializers.DictField(
        required=False,
        help_text="Demographics summed over the sites that answered (two or more), only when the merged total is "
        "shown: a bucket is exact only where every site shows it, else its visible part plus how much is hidden, "
        "never a subtracted number. Percentages, population and smd as in a site's demographics, over the same "
        "sites; none for a merged count with a hidden part.",
    )
    can_cancel = serializers.BooleanField()
