from __future__ import annotations

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from reports.models import ReportFormat
from reports.registry import ReportType


class ReportRequestForm(forms.Form):
    """What every report asks: the tenant, the format, a title, and whether to email a link.
    The type's own parameters come in a second form (prefix "p") beside this one."""

    tenant = forms.ModelChoiceField(queryset=None, empty_label=None)
    format = forms.ChoiceField()
    title = forms.CharField(max_length=200, required=False, help_text="Shown on the report; the type's name if empty.")
    notify = forms.BooleanField(required=False, label="Email me a link when it is ready")

    def __init__(self, *args, report_type: ReportType, tenants, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = tenants
        self.fields["format"].choices = [(fmt, ReportFormat(fmt).label) for fmt in report_type.formats]
        if not user.email:
            self.fields["notify"].disabled = True
            self.fields["notify"].help_text = "Your account has no email address."


def add_service_errors(error: ValidationError, form: forms.Form, parameters: forms.Form) -> None:
    """Put a service's field-named errors (`format`, `parameters.start`, ...) on the fields they name."""
    for name, messages in error.message_dict.items():
        target, field = (parameters, name.removeprefix("parameters.")) if name.startswith("parameters") else (form, name)
        if field not in target.fields:
            field = NON_FIELD_ERRORS if field in ("parameters", NON_FIELD_ERRORS) else None
        for message in messages:
            target.add_error(field, message)
