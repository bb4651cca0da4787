"""Report types: `@report_type` registers a builder with its parameters form, formats and required role.

    from django import forms
    from reports.registry import ReportData, Table, report_type

    class OrdersParameters(forms.Form):
        start = forms.DateField()

    @report_type("shop.orders", title="Orders", parameters=OrdersParameters)
    def orders(*, tenant, params) -> ReportData:
        rows = Order.objects.filter(tenant=tenant, placed__gte=params["start"]).values_list("id", "total")
        return ReportData(tables=[Table("orders", "Orders", ["id", "total"], rows=lambda: rows.iterator())])

A builder returns tables whose rows are produced lazily (an iterator over a query), so a file of any
size is written with constant memory; it never writes files itself.
"""
from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ImproperlyConfigured, ValidationError

from reports.models import ReportFormat
from tenants.models import Role

GENERATE_KIND = "reports.generate"
ALL_FORMATS = (ReportFormat.PDF, ReportFormat.CSV, ReportFormat.JSON, ReportFormat.JSONL)


@dataclass
class Table:
    """One table of a report: a CSV or JSON Lines file of its own, a table in the PDF."""

    name: str  # the file's name in a zip and the key in JSON: letters, digits, underscores
    title: str
    columns: Sequence[str]
    rows: Callable[[], Iterable[Sequence[Any]]]  # called once, when the table is written
    count: Callable[[], int] | None = None  # rows expected, for progress; None when cheap to skip


@dataclass
class Chart:
    """Bars per label, one colour per series (stacked): drawn as inline SVG in the PDF."""

    title: str
    labels: Sequence[str]
    series: Sequence[tuple[str, Sequence[float]]]
    unit: str = ""


@dataclass
class ReportData:
    tables: list[Table]
    summary: list[tuple[str, Any]] = field(default_factory=list)
    chart: Chart | None = None


class NoParameters(forms.Form):
    pass


@dataclass(frozen=True)
class ReportType:
    name: str
    title: str
    description: str
    build: Callable[..., ReportData]
    parameters: type[forms.Form]
    formats: tuple[str, ...]
    role: str
    kind: str

    def parameters_form(self, data: Mapping[str, Any] | None = None, **kwargs) -> forms.Form:
        return self.parameters(data=data, **kwargs)

    def clean_parameters(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters as stored (JSON): checked by the type's form. Errors are named
        `parameters.<field>` (`parameters` for errors about several fields)."""
        form = self.parameters_form(data)
        if not form.is_valid():
            raise ValidationError({
                "parameters" if name == NON_FIELD_ERRORS else f"parameters.{name}": list(messages)
                for name, messages in form.errors.items()
            })
        unknown = sorted(set(data) - set(form.fields))
        if unknown:
            raise ValidationError({f"parameters.{name}": ["Unknown parameter."] for name in unknown})
        return {name: _stored(value) for name, value in form.cleaned_data.items()}

    def typed_parameters(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """Stored parameters back as the form's typed values (dates as dates)."""
        form = self.parameters_form(stored)
        if not form.is_valid():
            raise ValidationError({f"parameters.{name}": list(messages) for name, messages in form.errors.items()})
        return form.cleaned_data


    def describe_parameters(self, typed: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(label, value in words) per parameter, in the form's order: how a report states what it covers."""
        described = []
        for name, field in self.parameters_form().fields.items():
            value = typed.get(name)
            if isinstance(field, forms.ChoiceField):
                value = dict(field.choices).get(value, value)
            described.append((str(field.label or name.replace("_", " ").capitalize()), str(value) if value else "—"))
        return described


_types: dict[str, ReportType] = {}


def report_type(
    name: str,
    *,
    title: str,
    description: str = "",
    parameters: type[forms.Form] = NoParameters,
    formats: Sequence[str] = ALL_FORMATS,
    role: str = Role.VIEWER,
    kind: str = GENERATE_KIND,
) -> Callable[[Callable[..., ReportData]], Callable[..., ReportData]]:
    """Register `build(*, tenant, params) -> ReportData` as the report type `name`.

    `role` is the least tenant role that may request and download it; `kind` the job kind that
    generates it (heavy exports use their own kind for a longer timeout).
    """
    unknown = set(formats) - set(ReportFormat.values)
    if unknown:
        raise ImproperlyConfigured(f"report type {name!r}: unknown formats {sorted(unknown)}")

    def register(build: Callable[..., ReportData]) -> Callable[..., ReportData]:
        _types[name] = ReportType(name=name, title=title, description=description or (build.__doc__ or "").strip(),
                                  build=build, parameters=parameters, formats=tuple(formats), role=role, kind=kind)
        return build

    return register


def get_report_type(name: str) -> ReportType:
    """The registered type, or a ValidationError on the `type` field."""
    try:
        return _types[name]
    except KeyError:
        raise ValidationError({"type": [f"Unknown report type {name!r}."]}) from None


def report_type_title(name: str) -> str:
    """The type's title, or its name when no process here registers it any more."""
    return _types[name].title if name in _types else name


def report_types() -> list[ReportType]:
    return sorted(_types.values(), key=lambda kind: kind.title)


def _stored(value: Any) -> Any:
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_stored(item) for item in value]
    return value
