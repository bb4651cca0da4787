"""The built-in report types, on data the product owns: job activity, staff audit, webhook deliveries,
a job list, and a tenant's whole data as an export."""
from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterator

from django import forms
from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.models import Aggregate, Count, DurationField, ExpressionWrapper, F, Max, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from jobs.models import UNFINISHED, Attempt, AuditAction, AuditEvent, Job, Status
from jobs.registry import tenant_kind_names
from jobs.webhooks.models import WebhookDelivery, WebhookEndpoint
from reports.models import ReportFormat
from reports.registry import Chart, ReportData, Table, report_type
from tenants.models import Membership, Role

EXPORT_KIND = "exports.tenant_data"


class DateRange(forms.Form):
    start = forms.DateField(label="From", help_text="First day, inclusive.",
                            widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", help_text="Last day, inclusive.", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        today = timezone.localdate()
        self.fields["start"].initial = today - datetime.timedelta(days=29)
        self.fields["end"].initial = today

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                self.add_error("end", "Must be on or after the start date.")
            elif (end - start).days + 1 > settings.REPORTS_MAX_RANGE_DAYS:
                self.add_error("end", f"The range is {(end - start).days + 1} days; at most "
                                      f"{settings.REPORTS_MAX_RANGE_DAYS} days.")
        return data


def window(params: dict) -> tuple[datetime.datetime, datetime.datetime]:
    """The date range as [start of the first day, start of the day after the last) in the site's time zone."""
    zone = timezone.get_current_timezone()
    start = datetime.datetime.combine(params["start"], datetime.time.min, tzinfo=zone)
    end = datetime.datetime.combine(params["end"] + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone)
    return start, end


def days(params: dict) -> list[datetime.date]:
    return [params["start"] + datetime.timedelta(days=n) for n in range((params["end"] - params["start"]).days + 1)]


def _kind_choices() -> list[tuple[str, str]]:
    # Reports are a tenant's: the platform's own kinds never run for one.
    return [("", "Every kind"), *((name, name) for name in tenant_kind_names())]


class Percentile(Aggregate):
    """PostgreSQL's continuous percentile of an ordered set (durations here)."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()

    def __init__(self, expression, fraction: float, **extra) -> None:
        super().__init__(expression, fraction=float(fraction), **extra)


DURATION = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
TIMED = Q(status__in=(Status.SUCCEEDED, Status.FAILED), started_at__isnull=False, finished_at__isnull=False)


def _seconds(value: datetime.timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def _rate(succeeded: int, failed: int) -> float | None:
    return round(100 * succeeded / (succeeded + failed), 1) if succeeded + failed else None


def _percentiles(jobs: QuerySet) -> dict[str, tuple]:
    """(p50, p95, max) duration per kind; in SQL on PostgreSQL, in Python elsewhere."""
    timed = jobs.filter(TIMED)
    if connection.vendor == "postgresql":
        rows = timed.values("kind").annotate(p50=Percentile(DURATION, 0.5), p95=Percentile(DURATION, 0.95),
                                             longest=Max(DURATION)).order_by()
        return {row["kind"]: (row["p50"], row["p95"], row["longest"]) for row in rows}
    durations: dict[str, list[datetime.timedelta]] = defaultdict(list)
    for kind, took in timed.annotate(took=DURATION).values_list("kind", "took").iterator():
        durations[kind].append(took)
    result = {}
    for kind, values in durations.items():
        values.sort()
        result[kind] = (_continuous(values, 0.5), _continuous(values, 0.95), values[-1])
    return result


def _continuous(ordered: list[datetime.timedelta], fraction: float) -> datetime.timedelta:
    """PERCENTILE_CONT: interpolated between the two nearest ranks."""
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class JobActivityParameters(DateRange):
    kind = forms.ChoiceField(required=False, choices=_kind_choices, help_text="Only this kind of job.")


@report_type("jobs.activity", title="Job activity", parameters=JobActivityParameters)
def job_activity(*, tenant, params) -> ReportData:
    """Per kind: counts by status, success rate, duration percentiles; the top failures; jobs per day."""
    start, end = window(params)
    jobs = Job.objects.filter(tenant=tenant, created_at__gte=start, created_at__lt=end)
    if params.get("kind"):
        jobs = jobs.filter(kind=params["kind"])
    counts = list(jobs.values("kind").annotate(
        total=Count("pk"), succeeded=Count("pk", filter=Q(status=Status.SUCCEEDED)),
        failed=Count("pk", filter=Q(status=Status.FAILED)), cancelled=Count("pk", filter=Q(status=Status.CANCELLED)),
        unfinished=Count("pk", filter=Q(status__in=UNFINISHED)),
    ).order_by("kind"))
    timings = _percentiles(jobs)
    by_kind = [(row["kind"], row["total"], row["succeeded"], row["failed"], row["cancelled"], row["unfinished"],
                _rate(row["succeeded"], row["failed"]), *map(_seconds, timings.get(row["kind"], (None,) * 3)))
               for row in counts]
    failures = list(jobs.filter(status=Status.FAILED).exclude(error_fingerprint="")
                    .values("error_fingerprint", "kind")
                    .annotate(failures=Count("pk"), last_seen=Max("finished_at"), example=Max("last_error"))
                    .order_by("-failures", "kind")[: settings.REPORTS_TOP_FAILURES])
    per_day = {row["day"]: row for row in jobs.annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
               .values("day").annotate(succeeded=Count("pk", filter=Q(status=Status.SUCCEEDED)),
                                       failed=Count("pk", filter=Q(status=Status.FAILED)), total=Count("pk"))
               .order_by()}
    span = days(params)
    series = [(name, [per_day.get(day, {}).get(key, 0) for day in span]) for name, key in
              [("Succeeded", "succeeded"), ("Failed", "failed")]]
    series.append(("Other", [per_day.get(day, {}).get("total", 0) - series[0][1][i] - series[1][1][i]
                             for i, day in enumerate(span)]))
    total, succeeded, failed = (sum(row[key] for row in counts) for key in ("total", "succeeded", "failed"))
    return ReportData(
        summary=[("Jobs", total), ("Succeeded", succeeded), ("Failed", failed),
                 ("Success rate", f"{_rate(succeeded, failed)} %" if succeeded + failed else "no finished jobs")],
        chart=Chart("Jobs per day", [day.strftime("%m-%d") for day in span], series, unit="jobs"),
        tables=[
            Table("by_kind", "By kind", ["kind", "total", "succeeded", "failed", "cancelled", "unfinished",
                                         "success_rate_pct", "p50_seconds", "p95_seconds", "max_seconds"],
                  rows=lambda: by_kind),
            Table("top_failures", "Top failures", ["fingerprint", "kind", "failures", "last_seen", "example_error"],
                  rows=lambda: [(row["error_fingerprint"], row["kind"], row["failures"], row["last_seen"],
                                 (row["example"] or "").strip().splitlines()[0][:300] if row["example"] else "")
                                for row in failures]),
        ],
    )


class AuditParameters(DateRange):
    action = forms.ChoiceField(required=False, choices=[("", "Every action"), *AuditAction.choices])


@report_type("jobs.audit", title="Staff audit", parameters=AuditParameters)
def staff_audit(*, tenant, params) -> ReportData:
    """Every staff action on the tenant in the range: who, what, on what, why, and how it went."""
    start, end = window(params)
    events = AuditEvent.objects.filter(tenant=tenant, created_at__gte=start, created_at__lt=end)
    if params.get("action"):
        events = events.filter(action=params["action"])
    labels = dict(AuditAction.choices)
    columns = ["created_at", "actor", "action", "target", "selection", "reason", "requested", "done", "skipped",
               "refused", "state", "outcome"]

    def rows() -> Iterator[tuple]:
        for row in events.order_by("created_at", "id").values_list(
                "created_at", "actor_name", "action", "target", "selection", "reason", "requested", "done",
                "skipped", "refused", "state", "outcome").iterator(chunk_size=2000):
            yield row[:2] + (labels.get(row[2], row[2]),) + row[3:]

    per_action = dict(events.values_list("action").annotate(n=Count("pk")).order_by())
    names = sorted(per_action)
    return ReportData(
        summary=[("Actions", sum(per_action.values())),
                 ("Staff members", events.values("actor_name").distinct().count())],
        chart=Chart("Actions by type", [labels.get(name, name) for name in names],
                    [("Actions", [per_action[name] for name in names])], unit="actions") if names else None,
        tables=[Table("actions", "Staff actions", columns, rows=rows, count=events.count)],
    )


class JobListParameters(DateRange):
    status = forms.ChoiceField(required=False, choices=[("", "Every status"), *Status.choices])
    kind = forms.ChoiceField(required=False, choices=_kind_choices)


JOB_COLUMNS = ["id", "kind", "queue", "status", "attempts", "created_at", "started_at", "finished_at",
               "duration_seconds", "source", "progress", "last_error"]


@report_type("jobs.list", title="Job list", parameters=JobListParameters,
             formats=(ReportFormat.CSV, ReportFormat.JSONL, ReportFormat.JSON, ReportFormat.PDF))
def job_list(*, tenant, params) -> ReportData:
    """Every job created in the range, one row each: for spreadsheets and other systems."""
    start, end = window(params)
    jobs = Job.objects.filter(tenant=tenant, created_at__gte=start, created_at__lt=end)
    for name in ("status", "kind"):
        if params.get(name):
            jobs = jobs.filter(**{name: params[name]})
    return ReportData(tables=[job_table(jobs)], summary=[("Jobs", jobs.count())])


def job_table(jobs: QuerySet[Job]) -> Table:
    rows = jobs.order_by().annotate(took=DURATION).values_list(
        "id", "kind", "queue", "status", "attempts", "created_at", "started_at", "finished_at", "took", "source",
        "progress", "last_error")
    return Table("jobs", "Jobs", JOB_COLUMNS, rows=lambda: rows.iterator(chunk_size=5000), count=jobs.count)


if apps.is_installed("jobs.webhooks"):
    @report_type("webhooks.deliveries", title="Webhook deliveries", parameters=DateRange)
    def webhook_deliveries(*, tenant, params) -> ReportData:
        """Per endpoint: delivery attempts, success rate, last failure; then every failed attempt."""
        start, end = window(params)
        deliveries = WebhookDelivery.objects.filter(message__tenant=tenant, created_at__gte=start,
                                                    created_at__lt=end)
        per_endpoint = {row["message__endpoint"]: row for row in deliveries.values("message__endpoint").annotate(
            messages=Count("message", distinct=True), attempts=Count("pk"),
            ok=Count("pk", filter=Q(succeeded=True)), bad=Count("pk", filter=Q(succeeded=False)),
            last_failure=Max("created_at", filter=Q(succeeded=False))).order_by()}
        endpoints = list(WebhookEndpoint.objects.filter(tenant=tenant).order_by("pk"))
        rows = []
        for endpoint in endpoints:
            row = per_endpoint.get(endpoint.pk, {})
            ok, bad = row.get("ok", 0), row.get("bad", 0)
            state = "disabled" if endpoint.disabled_at else ("active" if endpoint.active else "paused")
            rows.append((endpoint.pk, endpoint.url, endpoint.description, state, row.get("messages", 0),
                         row.get("attempts", 0), ok, bad, _rate(ok, bad), row.get("last_failure")))
        failed = deliveries.filter(succeeded=False).order_by("created_at", "pk").values_list(
            "created_at", "message__endpoint", "message__endpoint__url", "message__event_type", "message_id",
            "attempt", "status_code", "duration_ms", "error")
        ok_total, bad_total = sum(row[6] for row in rows), sum(row[7] for row in rows)
        return ReportData(
            summary=[("Endpoints", len(endpoints)), ("Delivery attempts", ok_total + bad_total),
                     ("Succeeded", ok_total), ("Failed", bad_total),
                     ("Success rate", f"{_rate(ok_total, bad_total)} %" if ok_total + bad_total else "no deliveries")],
            chart=Chart("Delivery attempts per endpoint", [f"#{row[0]} {row[2] or row[1]}"[:24] for row in rows],
                        [("Succeeded", [row[6] for row in rows]), ("Failed", [row[7] for row in rows])],
                        unit="attempts") if rows else None,
            tables=[
                Table("endpoints", "Endpoints", ["endpoint", "url", "description", "state", "messages", "attempts",
                                                 "succeeded", "failed", "success_rate_pct", "last_failure_at"],
                      rows=lambda: rows),
                Table("failures", "Failed attempts", ["created_at", "endpoint", "url", "event_type", "message",
                                                      "attempt", "status_code", "duration_ms", "error"],
                      rows=lambda: failed.iterator(chunk_size=2000), count=failed.count),
            ],
        )


@report_type("exports.tenant_data", title="Tenant data export", role=Role.ADMIN, kind=EXPORT_KIND,
             formats=(ReportFormat.CSV, ReportFormat.JSONL))
def tenant_data(*, tenant, params) -> ReportData:
    """Everything the product holds for the tenant: jobs with their attempts, members, webhook endpoints
    (without secrets) and deliveries. A zip with one file per table."""
    jobs = Job.objects.filter(tenant=tenant).order_by()
    job_rows = jobs.values_list("id", "kind", "queue", "status", "payload", "result", "progress",
                                "progress_message", "attempts", "max_attempts", "created_at", "run_at", "started_at",
                                "finished_at", "source", "idempotency_key", "pinned", "last_error")
    attempts = Attempt.objects.filter(job__tenant=tenant).order_by()
    attempt_rows = attempts.values_list("job_id", "number", "trigger", "worker_name", "hostname", "pid", "started_at",
                                        "ended_at", "outcome", "error_type", "error_message")
    members = Membership.objects.filter(tenant=tenant).order_by("user__username").values_list(
        "user__username", "user__email", "role", "created_at")
    tables = [
        Table("jobs", "Jobs", ["id", "kind", "queue", "status", "payload", "result", "progress", "progress_message",
                               "attempts", "max_attempts", "created_at", "run_at", "started_at", "finished_at",
                               "source", "idempotency_key", "pinned", "last_error"],
              rows=lambda: job_rows.iterator(chunk_size=5000), count=jobs.count),
        Table("attempts", "Attempts", ["job_id", "number", "trigger", "worker", "hostname", "pid", "started_at",
                                       "ended_at", "outcome", "error_type", "error_message"],
              rows=lambda: attempt_rows.iterator(chunk_size=5000), count=attempts.count),
        Table("memberships", "Members", ["username", "email", "role", "created_at"], rows=lambda: members.iterator()),
    ]
    if apps.is_installed("jobs.webhooks"):
        # Named columns, never the model: the signing secrets stay out of every export.
        endpoints = WebhookEndpoint.objects.filter(tenant=tenant).order_by("pk").values_list(
            "id", "url", "description", "events", "active", "created_at", "last_success_at", "disabled_at",
            "disabled_reason")
        deliveries = WebhookDelivery.objects.filter(message__tenant=tenant).order_by()
        delivery_rows = deliveries.values_list("message_id", "message__endpoint", "message__event_type", "attempt",
                                               "created_at", "url", "status_code", "duration_ms", "succeeded", "error")
        tables += [
            Table("webhook_endpoints", "Webhook endpoints", ["id", "url", "description", "events", "active",
                                                             "created_at", "last_success_at", "disabled_at",
                                                             "disabled_reason"], rows=lambda: endpoints.iterator()),
            Table("webhook_deliveries", "Webhook deliveries", ["message", "endpoint", "event_type", "attempt",
                                                               "created_at", "url", "status_code", "duration_ms",
                                                               "succeeded", "error"],
                  rows=lambda: delivery_rows.iterator(chunk_size=5000), count=deliveries.count),
        ]
    return ReportData(tables=tables)
