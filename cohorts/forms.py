"""Forms of the cohort pages. They validate input and build expressions; the services write."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from accounts.permissions import projects_for_user
from cohorts.builder import DOMAINS, GENDERS, MAX_RULES, BuilderError, BuilderSpec, build_expression, parse_concept_ids
from cohorts.builder import rules_from_rows as _rules_from_rows
from cohorts.choices import RunKind
from cohorts.expression import ExpressionError, parse_expression

MAX_IMPORT_BYTES = 2 * 1024 * 1024
DOMAIN_CHOICES = [(key, words.capitalize()) for key, (_, words) in DOMAINS.items()]


class ProjectChoiceMixin:
    """A ``project`` field limited to the running projects the user works in."""

    def _limit_projects(self, user: Any, *, required: bool) -> None:
        field = self.fields["project"]  # type: ignore[attr-defined]
        field.queryset = projects_for_user(user).order_by("title")
        field.required = required


class DefinitionFilterForm(forms.Form):
    """The list's search box and project filter (GET)."""

    q = forms.CharField(required=False, label="Search", max_length=200)
    project = forms.ModelChoiceField(queryset=None, required=False, empty_label="All projects")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects_for_user(user).order_by("title")


class DefinitionImportForm(ProjectChoiceMixin, forms.Form):
    """ATLAS JSON uploaded as a file or pasted. ``clean`` parses and validates it; ``expression_errors`` holds
    the validator's ``(path, message)`` pairs so the page can show where each problem is."""

    name = forms.CharField(max_length=200)
    project = forms.ModelChoiceField(queryset=None, empty_label="No project")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    json_file = forms.FileField(required=False, label="ATLAS JSON file")
    json_text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false", "class": "code"}),
        required=False,
        label="…or paste the JSON",
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expression_errors: list[tuple[str, str]] = []
        self._limit_projects(user, required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        upload = cleaned.get("json_file")
        text = cleaned.get("json_text") or ""
        if upload:
            if upload.size > MAX_IMPORT_BYTES:
                raise ValidationError("The file is larger than 2 MB; a cohort definition is much smaller.")
            try:
                text = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ValidationError("The file is not UTF-8 text.") from None
        if not text.strip():
            raise ValidationError("Upload an ATLAS JSON file or paste its content.")
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"This is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
        # ATLAS exports either the bare expression or a whole definition with it under "expression".
        if isinstance(document, dict) and "expression" in document and "PrimaryCriteria" not in document:
            expression = document["expression"]
            if isinstance(expression, str):
                try:
                    expression = json.loads(expression)
                except json.JSONDecodeError:
                    raise ValidationError("The “expression” field is not JSON.") from None
            document = expression
        try:
            parse_expression(document)
        except ExpressionError as exc:
            self.expression_errors = exc.errors
            raise ValidationError("The cohort expression is not valid; nothing was saved.") from None
        cleaned["expression"] = document
        return cleaned


class BuilderForm(ProjectChoiceMixin, forms.Form):
    """The simple builder: an entry concept set, age, gender and rules (a formset of ``RuleForm``)."""

    name = forms.CharField(max_length=200)
    project = forms.ModelChoiceField(queryset=None, empty_label="No project")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    entry_domain = forms.ChoiceField(choices=DOMAIN_CHOICES, initial="condition", label="Domain")
    entry_concepts = forms.CharField(
        label="Concept ids",
        help_text="OMOP concept ids, separated by commas, e.g. 201826 (type 2 diabetes mellitus).",
        widget=forms.TextInput(attrs={"data-concept-input": "entry"}),
    )
    include_descendants = forms.BooleanField(required=False, initial=True, label="Include descendant concepts")
    first_only = forms.BooleanField(required=False, initial=True, label="First event in the person's history only")
    age_min = forms.IntegerField(required=False, min_value=0, max_value=150, label="Minimum age")
    age_max = forms.IntegerField(required=False, min_value=0, max_value=150, label="Maximum age")
    gender = forms.ChoiceField(
        choices=[("", "Any"), *((str(k), v.capitalize()) for k, v in GENDERS.items())], required=False
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limit_projects(user, required=False)

    def clean_entry_concepts(self) -> tuple[int, ...]:
        try:
            return parse_concept_ids(self.cleaned_data["entry_concepts"])
        except BuilderError as exc:
            raise ValidationError(str(exc)) from None

    def build(self, rule_rows: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The Circe JSON of the valid form and rule rows, or None with the errors added to the form."""
        data = self.cleaned_data
        try:
            spec = BuilderSpec(
                entry_domain=data["entry_domain"],
                entry_concept_ids=data["entry_concepts"],
                first_only=data["first_only"],
                include_descendants=data["include_descendants"],
                age_min=data.get("age_min"),
                age_max=data.get("age_max"),
                gender_concept_ids=(int(data["gender"]),) if data.get("gender") else (),
                rules=_rules_from_rows(rule_rows),
            )
            expression = build_expression(spec)
            parse_expression(expression)  # the builder's output is held to the same validator as an import
        except BuilderError as exc:
            field = exc.field_name if exc.field_name in self.fields else None
            self.add_error(field, str(exc))
            return None
        except ExpressionError as exc:
            self.add_error(None, str(exc))
            return None
        return expression


class RuleForm(forms.Form):
    """One inclusion rule: "has at least k <domain> events of <concepts> in the D days before the index date".

    The fields are laid out inside that sentence, so each widget carries its own accessible name."""

    name = forms.CharField(max_length=200, required=False, label="Rule name (optional)")
    at_least = forms.IntegerField(
        min_value=1,
        max_value=1000,
        initial=1,
        required=False,
        widget=forms.NumberInput(attrs={"aria-label": "At least"}),
    )
    domain = forms.ChoiceField(
        choices=DOMAIN_CHOICES, initial="drug", widget=forms.Select(attrs={"aria-label": "Domain of the events"})
    )
    concepts = forms.CharField(
        required=False,
        label="Concept ids",
        widget=forms.TextInput(attrs={"data-concept-input": "rule", "aria-label": "Concept ids, comma-separated"}),
    )
    days_before = forms.IntegerField(
        min_value=0,
        max_value=36500,
        initial=365,
        required=False,
        widget=forms.NumberInput(attrs={"aria-label": "Days before the entry date"}),
    )

    def clean_concepts(self) -> str:
        text = self.cleaned_data.get("concepts") or ""
        try:
            parse_concept_ids(text)
        except BuilderError as exc:
            raise ValidationError(str(exc)) from None
        return text


RuleFormSet = forms.formset_factory(RuleForm, extra=MAX_RULES, max_num=MAX_RULES, validate_max=True)


class RunForm(forms.Form):
    """Sites to count on, and the kind of result asked for (the button pressed)."""

    sources = forms.ModelMultipleChoiceField(
        queryset=None,
        widget=forms.CheckboxSelectMultiple,
        label="Sites",
        error_messages={"required": "Choose at least one site."},
    )
    kind = forms.ChoiceField(
        choices=[(k.value, k.label) for k in (RunKind.COUNT, RunKind.ATTRITION, RunKind.DEMOGRAPHICS)],
        initial=RunKind.COUNT,
    )

    def __init__(self, *args: Any, sources: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["sources"].queryset = sources
        self.fields["sources"].label_from_instance = lambda s: f"{s.name} ({s.key})"


class ShareForm(forms.Form):
    """Share with the definition's project, or with one person by user name."""

    with_project = forms.BooleanField(required=False, label="Share with every member of the project")
    username = forms.CharField(required=False, max_length=150, label="…or with one person (user name)")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if bool(cleaned.get("with_project")) == bool((cleaned.get("username") or "").strip()):
            raise ValidationError("Choose the project or give one user name.")
        return cleaned
