"""Forms of the cohort pages. They validate input and build expressions; the services write."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from accounts.permissions import projects_for_user
from cohorts.choices import RunKind
from cohorts.expression import ExpressionError, parse_expression

MAX_IMPORT_BYTES = 2 * 1024 * 1024


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
