"""Forms of the definitions list, versions, duplicating and unsharing. They validate input; services write."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.permissions import projects_for_user

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

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
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

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
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
