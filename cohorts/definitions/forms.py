"""Forms of the definition pages: import, list filters, sharing, versions, duplicate."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from accounts.permissions import projects_for_user
from cohorts.expression import ExpressionError, parse_expression

MAX_IMPORT_BYTES = 2 * 1024 * 1024


class ProjectChoiceMixin:
    """A ``project`` field limited to the running projects the user works in."""

    def _limit_projects(self, user: User, *, required: bool) -> None:
        field = self.fields["project"]  # type: ignore[attr-defined]
        field.queryset = projects_for_user(user).order_by("title")
        field.required = required


class DefinitionImportForm(ProjectChoiceMixin, forms.Form):
    """ATLAS JSON uploaded as a file or pasted. ``clean`` parses and validates it; ``expression_errors`` holds
    the validator's ``(path, message)`` pairs so the page can show where each problem is."""

    name = forms.CharField(max_length=200, label=_("Name"))
    project = forms.ModelChoiceField(queryset=None, empty_label=_("No project"), label=_("Project"))
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, label=_("Description"))
    json_file = forms.FileField(required=False, label=_("ATLAS JSON file"))
    json_text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false", "class": "code"}),
        required=False,
        label=_("…or paste the JSON"),
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expression_errors: list[tuple[str, str]] = []
        self._limit_projects(user, required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        upload = cleaned.get("json_file")
        text = cleaned.get("json_text") or ""
        if upload:
            if upload.size > MAX_IMPORT_BYTES:
                raise ValidationError(_("The file is larger than 2 MB; a cohort definition is much smaller."))
            try:
                text = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ValidationError(_("The file is not UTF-8 text.")) from None
        if not text.strip():
            raise ValidationError(_("Upload an ATLAS JSON file or paste its content."))
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                _("This is not JSON: %(problem)s at line %(line)s, column %(column)s.")
                % {"problem": exc.msg, "line": exc.lineno, "column": exc.colno}
            ) from None
        # ATLAS exports either the bare expression or a whole definition with it under "expression".
        if isinstance(document, dict) and "expression" in document and "PrimaryCriteria" not in document:
            expression = document["expression"]
            if isinstance(expression, str):
                try:
                    expression = json.loads(expression)
                except json.JSONDecodeError:
                    raise ValidationError(_("The “expression” field is not JSON.")) from None
            document = expression
        try:
            parse_expression(document)
        except ExpressionError as exc:
            self.expression_errors = exc.errors
            raise ValidationError(_("The cohort expression is not valid; nothing was saved.")) from None
        cleaned["expression"] = document
        return cleaned


class ShareForm(forms.Form):
    """Share with the definition's project, or with one person by user name."""

    with_project = forms.BooleanField(required=False, label=_("Share with every member of the project"))
    username = forms.CharField(required=False, max_length=150, label=_("…or with one person (user name)"))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if bool(cleaned.get("with_project")) == bool((cleaned.get("username") or "").strip()):
            raise ValidationError(_("Choose the project or give one user name."))
        return cleaned


SORT_CHOICES = [
    ("-updated", _("Recently updated")),
    ("updated", _("Least recently updated")),
    ("name", _("Name A–Z")),
    ("-name", _("Name Z–A")),
    ("owner", _("Owner")),
    ("project", _("Project")),
]


OWNER_CHOICES = [("", _("Anyone")), ("me", _("Mine")), ("others", _("Shared with me"))]


class DefinitionListForm(forms.Form):
    """The list's search box and filters (GET). Invalid values fall back to the defaults, never to an error
    page: a stale bookmark still shows the list."""

    q = forms.CharField(required=False, label=_("Search name or description"), max_length=200)
    project = forms.ModelChoiceField(queryset=None, required=False, empty_label=_("All projects"), label=_("Project"))
    owner = forms.ChoiceField(required=False, choices=OWNER_CHOICES, label=_("Owner"))
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES, label=_("Sort by"))

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects_for_user(user).order_by("title")

    def filters(self) -> dict[str, Any]:
        data = self.cleaned_data if self.is_valid() else {}
        return {
            "project": data.get("project"),
            "search": data.get("q") or "",
            "owner": data.get("owner") or "",
            "sort": data.get("sort") or "-updated",
        }


class CompareForm(forms.Form):
    """Two version numbers to compare: ``a`` (older) and ``b`` (newer)."""

    a = forms.IntegerField(min_value=1, label=_("From version"))
    b = forms.IntegerField(min_value=1, label=_("To version"))


class DuplicateForm(forms.Form):
    """Where the copy goes and what it is called."""

    name = forms.CharField(required=False, max_length=200, label=_("Name of the copy"))
    project = forms.ModelChoiceField(queryset=None, required=False, empty_label=_("Same project"), label=_("Project"))

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects_for_user(user).order_by("title")


class UnshareForm(forms.Form):
    """Whom to take a share back from: one project or one person (by id, from the list on the page)."""

    project = forms.IntegerField(required=False, min_value=1)
    user = forms.IntegerField(required=False, min_value=1)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if (cleaned.get("project") is None) == (cleaned.get("user") is None):
            raise forms.ValidationError(_("Choose one project or one person."))
        return cleaned
