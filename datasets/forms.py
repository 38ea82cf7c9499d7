"""Forms of the dataset pages: they validate input; the services check permissions and write."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from datasets import catalogue
from datasets.choices import LegalBasis, OutputFormat
from datasets.services import MAX_WINDOW_DAYS

# The table labels are lazy translations: each choice reads "<table, in the reader's language>: <column>".
ALL_COLUMNS = [
    (f"{t.name}.{c}", format_lazy("{}: {}", t.label, c)) for t in catalogue.TABLES.values() for c in t.selectable
]
TABLE_CHOICES = [(t.name, t.label) for t in catalogue.TABLES.values()]


def selection_from(tables: list[str], columns: list[str]) -> dict[str, list[str]]:
    """{table: [columns]} from the ticked tables and ``table.column`` values."""
    selection: dict[str, list[str]] = {t: [] for t in tables}
    for value in columns:
        table, _dot, column = value.partition(".")
        if table not in selection:
            raise forms.ValidationError(_("Tick the table %(table)s to request its columns.") % {"table": table})
        selection[table].append(column)
    return selection


class DatasetRequestForm(forms.Form):
    sites = forms.ModelMultipleChoiceField(queryset=None, widget=forms.CheckboxSelectMultiple, label=_("Sites"))
    tables = forms.MultipleChoiceField(
        choices=TABLE_CHOICES, widget=forms.CheckboxSelectMultiple, label=_("Tables"), initial=["person"]
    )
    columns = forms.MultipleChoiceField(
        choices=ALL_COLUMNS,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label=_("Columns"),
        help_text=_("Person pseudonyms come with every table. Source values and free text are never offered."),
    )
    days_before = forms.IntegerField(min_value=0, max_value=MAX_WINDOW_DAYS, initial=365, label=_("Days before index"))
    days_after = forms.IntegerField(min_value=0, max_value=MAX_WINDOW_DAYS, initial=365, label=_("Days after index"))
    purpose = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=5000, label=_("Purpose"))
    legal_basis = forms.ChoiceField(choices=LegalBasis.choices, label=_("Legal basis"))
    document = forms.FileField(
        label=_("IRB approval or data-use agreement"),
        help_text=_("PDF, PNG or JPEG, at most 10 MB."),
        required=False,
    )
    retention_days = forms.IntegerField(min_value=1, max_value=365, initial=7, label=_("Retention (days)"))
    output_format = forms.ChoiceField(choices=OutputFormat.choices, initial=OutputFormat.CSV, label=_("Format"))

    def __init__(self, *args: Any, sites: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["sites"].queryset = sites
        self.fields["sites"].initial = list(sites)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if "tables" in data:
            try:
                data["selection"] = selection_from(data["tables"], data.get("columns", []))
            except forms.ValidationError as exc:
                self.add_error("columns", exc)
        return data


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", _("Approve")), ("reject", _("Reject"))])
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000, label=_("Reason")
    )
    columns = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label=_("Approved columns"),
        help_text=_("Untick columns to narrow the request."),
    )
    days_before = forms.IntegerField(min_value=0, required=False, label=_("Days before index"))
    days_after = forms.IntegerField(min_value=0, required=False, label=_("Days after index"))

    def __init__(self, *args: Any, requested: dict[str, list[str]], window: tuple[int, int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requested = requested
        choices = [
            (f"{t}.{c}", format_lazy("{}: {}", catalogue.TABLES[t].label, c))
            for t, cols in requested.items()
            for c in cols
        ]
        self.fields["columns"].choices = choices
        self.fields["columns"].initial = [value for value, _label in choices]
        self.fields["days_before"].initial, self.fields["days_after"].initial = window

    def narrowed_selection(self) -> dict[str, list[str]] | None:
        """None when every requested column stays; else the requested tables with the ticked columns."""
        ticked = set(self.cleaned_data.get("columns") or [])
        narrowed = {t: [c for c in cols if f"{t}.{c}" in ticked] for t, cols in self.requested.items()}
        return None if narrowed == self.requested else narrowed
