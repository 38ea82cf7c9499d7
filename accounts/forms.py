"""Forms of the accounts pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.approvals import STEWARD_GRANTABLE_ROLES
from accounts.choices import AccountStatus, Role
from accounts.models import Organisation, Project, User
from accounts.permissions import is_admin


class ProjectForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
    purpose = forms.CharField(label=_("Purpose"), widget=forms.Textarea(attrs={"rows": 4}))
    approval_number = forms.CharField(label=_("IRB or approval number"), max_length=100)
    principal_investigator = forms.ModelChoiceField(label=_("Principal investigator"), queryset=User.objects.none())
    starts_on = forms.DateField(label=_("Starts on"), widget=forms.DateInput(attrs={"type": "date"}))
    expires_on = forms.DateField(label=_("Expires on"), widget=forms.DateInput(attrs={"type": "date"}))
    sources = forms.ModelMultipleChoiceField(
        label=_("Sources"), queryset=Project._meta.get_field("sources").related_model.objects.none()
    )

    def __init__(self, *args: Any, creator: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["principal_investigator"].queryset = (
            User.objects.filter(status=AccountStatus.APPROVED, is_active=True)
            .exclude(role=Role.PARTNER)
            .exclude(pk=creator.pk)
            .order_by("username")
        )
        # The Source model, reached through the relation warehouse declares (Source.projects, seen from here as
        # project.sources): accounts never imports warehouse.
        source_model = Project._meta.get_field("sources").related_model
        sources = source_model._default_manager.all()
        if not is_admin(creator):
            sources = sources.filter(organisation_id=creator.organisation_id)
        self.fields["sources"].queryset = sources

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("starts_on") and data.get("expires_on") and data["expires_on"] < data["starts_on"]:
            raise forms.ValidationError(_("The project cannot expire before it starts."))
        return data


class AccountDecisionForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[
            ("approve", _("Approve")),
            ("reject", _("Reject")),
            ("suspend", _("Suspend")),
            ("reinstate", _("Reinstate")),
        ]
    )
    organisation = forms.ModelChoiceField(
        label=_("Organisation"),
        queryset=Organisation.objects.all(),
        required=False,
        empty_label=_("Organisation (to approve)"),
    )
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, required=False)
    reason = forms.CharField(label=_("Reason"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, reviewer: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not is_admin(reviewer):
            # A steward approves into its own organisation, as researcher or partner.
            self.fields["organisation"].queryset = Organisation.objects.filter(pk=reviewer.organisation_id)
            self.fields["role"].choices = [(role.value, role.label) for role in STEWARD_GRANTABLE_ROLES]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("decision") == "approve" and not (data.get("organisation") and data.get("role")):
            raise forms.ValidationError(_("Approving an account needs an organisation and a role."))
        if data.get("decision") in ("reject", "suspend") and not (data.get("reason") or "").strip():
            raise forms.ValidationError(_("Give a reason."))
        return data


class MembershipDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", _("Approve")), ("reject", _("Reject")), ("revoke", _("Revoke"))])
    reason = forms.CharField(label=_("Reason"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("decision") in ("reject", "revoke") and not (data.get("reason") or "").strip():
            raise forms.ValidationError(_("Give a reason."))
        return data
