from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import RequestFactory

from jobs.models import Job
from jobs.schedules.models import Schedule
from jobs.webhooks import demo
from jobs.webhooks.models import WebhookEndpoint
from reports.models import Report
from tenants.models import Tenant

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_sets_up_demo_tenants_logins_jobs_reports_and_schedules_once(settings, capsys, tmp_path):
    settings.DEBUG = True
    settings.STORAGES = {**settings.STORAGES, "reports": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}}
    call_command("demo_setup")
    call_command("demo_setup")  # twice is harmless
    assert "alice" in capsys.readouterr().out
    assert set(Tenant.objects.values_list("slug", flat=True)) >= {"acme", "globex"}
    assert sorted(Report.objects.values_list("type", flat=True)) == ["exports.tenant_data", "jobs.activity"]
    assert Job.objects.filter(kind="reports.generate").count() == 1
    schedules = Schedule.objects.order_by("name")
    assert [(s.tenant.slug, s.name) for s in schedules] == [
        ("acme", "Health check every 5 minutes"), ("globex", "Nightly ping"), ("acme", "Weekly deep check")]
    assert all(schedule.next_fire_at for schedule in schedules)
    # Its webhook endpoints deliver to the development server's own receiver, on the port it runs on.
    call_command("demo_setup", port=8123)
    assert sorted(WebhookEndpoint.objects.values_list("url", flat=True)) == [
        "http://127.0.0.1:8123/demo/webhook-sink/down/", "http://127.0.0.1:8123/demo/webhook-sink/ok/"]


def test_the_demo_receiver_answers_or_is_down_as_a_real_one_would_and_only_in_development(client):
    factory = RequestFactory()
    down = demo.sink(factory.post("/demo/webhook-sink/down/"), "down")
    assert (down.status_code, down["Retry-After"]) == (503, "60")
    assert down._has_been_logged  # an outage on purpose: the development server does not log it as an error
    ok = demo.sink(factory.post("/demo/webhook-sink/ok/", headers={"Webhook-Id": "msg_1"}), "ok")
    assert (ok.status_code, json.loads(ok.content)) == (200, {"received": "msg_1"})
    assert client.post("/demo/webhook-sink/ok/").status_code == 404  # DEBUG off: not routed at all


def test_it_refuses_to_run_without_debug(settings):
    from django.core.management.base import CommandError

    settings.DEBUG = False
    with pytest.raises(CommandError):
        call_command("demo_setup")
