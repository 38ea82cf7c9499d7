"""The form that starts a count."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from cohorts.runs.choices import RunKind


class RunForm(forms.Form):
    """Sites to count on, and the kind of result asked for (the button pressed)."""

    sources = forms.ModelMultipleChoiceField(
        queryset=None,
        widget=forms.CheckboxSelectMultiple,
        label=_("Sites"),
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


class ComparisonForm(forms.Form):
    """The sites to compare the chosen definitions on (those where every one of them may be counted)."""

    sources = forms.ModelMultipleChoiceField(
        queryset=None,
        widget=forms.CheckboxSelectMultiple,
        label=_("Sites"),
        error_messages={"required": _("Choose at least one site.")},
    )

    def __init__(self, *args: Any, sources: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["sources"].queryset = sources
        self.fields["sources"].label_from_instance = lambda s: f"{s.name} ({s.key})"
