from __future__ import annotations

import pytest
from django.core.management import call_command

from jobs.models import Job
from jobs.schedules.models import Schedule
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


def test_it_refuses_to_run_without_debug(settings):
    from django.core.management.base import CommandError

    settings.DEBUG = False
    with pytest.raises(CommandError):
        call_command("demo_setup")
