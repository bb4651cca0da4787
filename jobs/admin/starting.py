"""Starting jobs from the admin: a form made from a kind's payload schema, used to start a job of a public
kind ("Start a job") and to clone a job with its payload, optionally edited. The kind's own validation
decides; its errors land on the fields they name, and what was typed stays in the form."""
from __future__ import annotations


import json

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse

from jobs import staff
from jobs.models import Job
from jobs.registry import Kind, get_kind, kind_names, public_kind_names
from tenants.models import Role, Tenant
from tenants.selectors import tenant_ids_with_role

SYSTEM_CHOICE = "system"


def payload_fields(kind: Kind, initial: dict | None = None) -> dict[str, forms.Field]:
    """One form field per payload field of the kind, typed, with its default (or `initial`'s value)."""
    schema = kind.schema.model_json_schema()
    required = set(schema.get("required", ()))
    fields = {}
    for name, spec in schema.get("properties", {}).items():
        field = _field_for(spec, required=name in required)
        value = (initial or {}).get(name, spec.get("default"))
        if value is not None:
            field.initial = value
        field.label = spec.get("title") or name
        field.help_text = spec.get("description", "")
        fields[name] = field
    return fields


def payload_guide(kind: Kind) -> dict:
    """What a kind's payload holds, for a person typing one: each field with its type and default (or that it
    is required), and the defaults as a payload to start from."""
    schema = kind.schema.model_json_schema()
    required = set(schema.get("required", ()))
    fields, defaults = [], {}
    for name, spec in schema.get("properties", {}).items():
        types = [option.get("format") or option.get("type", "any") for option in spec.get("anyOf", [spec])]
        described = f"{name} ({' or '.join(types)})"
        if name in required:
            described += ", required"
        elif "default" in spec:
            described += f", default {json.dumps(spec['default'])}"
            defaults[name] = spec["default"]
        fields.append(described)
    return {"fields": fields, "defaults": defaults}


def _field_for(spec: dict, *, required: bool) -> forms.Field:
    options = [option for option in spec.get("anyOf", [spec]) if option.get("type") != "null"]
    nullable = len(options) < len(spec.get("anyOf", [spec]))
    option = options[0] if len(options) == 1 else {}
    required = required and not nullable
    kind = option.get("type")
    if "enum" in option:
        return forms.ChoiceField(choices=[(value, value) for value in option["enum"]], required=required)
    if kind == "integer":
        return forms.IntegerField(required=required, min_value=option.get("minimum"), max_value=option.get("maximum"))
    if kind == "number":
        return forms.FloatField(required=required, min_value=option.get("minimum"), max_value=option.get("maximum"))
    if kind == "boolean":
        return forms.BooleanField(required=False)
    if kind == "string" and option.get("format") is None:
        return forms.CharField(required=required, max_length=option.get("maxLength"), empty_value=None)
    # Dates, lists, objects and unions: JSON as the kind reads it (a date as "2026-12-07T10:00:00Z").
    return forms.JSONField(required=required, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
                           help_text="JSON")


class StartForm(forms.Form):
    """Tenant, the kind's payload fields (prefixed `payload-`) and a reason for the audit log."""

    tenant = forms.ChoiceField(label="Tenant")
    reason = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
                             help_text="Optional; stored in the audit record.")

    def __init__(self, *args, kind: Kind, tenants: list[Tenant], system: bool, initial_payload: dict | None = None,
                 locked: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        choices = [(str(t.pk), t.name) for t in tenants] + ([(SYSTEM_CHOICE, "(none: a system job)")] if system else [])
        self.fields["tenant"].choices = choices
        if len(choices) == 1:
            self.fields["tenant"].initial = choices[0][0]
        for name, field in payload_fields(kind, initial_payload).items():
            field.disabled = locked  # a clone as it was: the kind is not one staff may give a payload of their own
            self.fields[f"payload-{name}"] = field
        self.order_fields(["tenant", *self.payload_field_names(), "reason"])

    def payload_field_names(self) -> list[str]:
        return [name for name in self.fields if name.startswith("payload-")]

    def payload(self) -> dict:
        """The payload typed in: empty optional fields left out, so the kind's defaults apply."""
        return {name.removeprefix("payload-"): self.cleaned_data[name] for name in self.payload_field_names()
                if self.cleaned_data.get(name) not in (None, "")}

    def add_kind_errors(self, error: ValidationError) -> None:
        """The kind's own verdict, on the fields it names (`payload.report_id`); the rest on the form."""
        for key, messages in error.message_dict.items():
            name = f"payload-{key.removeprefix('payload.').split('.')[0]}"
            self.add_error(name if name in self.fields else None,
                           [f"{key}: {message}" if name not in self.fields else message for message in messages])


class StartPages:
    """The job admin's "Start a job" page and each job's "Clone" page."""

    def start_view(self, request):
        kinds = self.startable_kinds(request)
        if not kinds:
            raise PermissionDenied("Starting jobs needs the operator role in a tenant.")
        chosen = request.POST.get("kind") or request.GET.get("kind") or ""
        if chosen not in kinds:
            return self.page(request, "admin/jobs/job/start.html", title="Start a job", kinds=kinds, form=None,
                             chosen=chosen)
        return self._start_form(request, get_kind(chosen), title="Start a job", kinds=kinds)

    def clone_view(self, request, object_id):
        job = self.get_object(request, object_id)
        if job is None:
            raise Http404("No such job.")
        if not self.has_role(request, Role.OPERATOR, job):
            raise PermissionDenied(f"Cloning a job of {job.tenant or 'the system'} needs the operator role there.")
        try:
            kind = get_kind(job.kind)
        except ValidationError:
            raise Http404(f"The kind {job.kind} is no longer registered; this job cannot be cloned.") from None
        return self._start_form(request, kind, title=f"Clone job {job.short_id}", clone_of=job)

    def startable_kinds(self, request) -> list[str]:
        if request.user.is_superuser:
            return kind_names()
        return public_kind_names() if self._operator_tenants(request) else []

    def _operator_tenants(self, request) -> list[Tenant]:
        tenants = Tenant.objects.filter(active=True).order_by("name")
        if request.user.is_superuser:
            return list(tenants)
        return list(tenants.filter(pk__in=tenant_ids_with_role(user=request.user, role=Role.OPERATOR)))

    def _start_form(self, request, kind: Kind, *, title: str, kinds: list[str] | None = None,
                    clone_of: Job | None = None):
        if clone_of is not None:
            tenants = [clone_of.tenant] if clone_of.tenant else []
            system = clone_of.tenant is None
        else:
            tenants = self._operator_tenants(request)
            system = request.user.is_superuser and kind.system
        locked = not (kind.public or request.user.is_superuser)
        form = StartForm(request.POST if request.method == "POST" else None, kind=kind, tenants=tenants, system=system,
                         initial_payload=clone_of.payload if clone_of else None, locked=locked)
        if request.method == "POST" and form.is_valid():
            tenant = None if form.cleaned_data["tenant"] == SYSTEM_CHOICE else next(
                t for t in tenants if str(t.pk) == form.cleaned_data["tenant"])
            try:
                event, job = staff.staff_job_start(kind=kind.name, tenant=tenant, payload=form.payload(),
                                                   user=request.user, reason=form.cleaned_data["reason"],
                                                   clone_of=clone_of)
            except ValidationError as exc:
                form.add_kind_errors(exc)
            else:
                self.message_user(request, f"{event.get_action_display()}: {event.outcome}")
                return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))
        return self.page(request, "admin/jobs/job/start.html", title=title, kinds=kinds, form=form, chosen=kind.name,
                         kind=kind, clone_of=clone_of, locked=locked)
