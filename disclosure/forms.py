"""Forms of the exact-count grants page."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import Project, User
from accounts.permissions import running_projects_q
from warehouse.models import Source


class ExactCountGrantForm(forms.Form):
    """The steward's choices are the sites of their organisation and the running projects counting on them; the
    service checks the rest (dates, membership, the pair) and says what is wrong."""

    project = forms.ModelChoiceField(label=_("Project"), queryset=Project.objects.none())
    source = forms.ModelChoiceField(label=_("Site"), queryset=Source.objects.none())
    reason = forms.CharField(
        label=_("Reason and IRB protocol"),
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Why the project needs exact counts at this site, and the protocol that approves it."),
    )
    ends_at = forms.DateField(
        label=_("Last day"),
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("After this day the counts are perturbed again; the project's end ends the grant too."),
    )

    def __init__(self, *args: Any, steward: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sources = Source.objects.filter(organisation_id=steward.organisation_id).order_by("key")
        self.fields["source"].queryset = sources
        self.fields["project"].queryset = (
            Project.objects.filter(running_projects_q(), sources__in=sources).distinct().order_by("title")
        )


class ExactCountRevokeForm(forms.Form):
    reason = forms.CharField(label=_("Reason for the revocation"), widget=forms.Textarea(attrs={"rows": 2}))
