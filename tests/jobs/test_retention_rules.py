"""Retention by kind (on the kind, overridable per tenant) and caps by count per tenant and state."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs import enqueue
from jobs.maintenance import retention_cleanup
from jobs.models import AuditAction, AuditEvent, Job, KindRetention, Status
from tenants.models import Tenant
from tests.jobs import kinds  # noqa: F401 (registers tests.echo and tests.short_lived)

pytestmark = pytest.mark.django_db(transaction=True)


def finished(tenant, kind: str, status: str, days_ago: float, *, pinned: bool = False) -> Job:
    job = enqueue(kind, tenant=tenant, payload={"text": "x"} if kind == "tests.echo" else {})
    when = timezone.now() - timedelta(days=days_ago)
    Job.objects.filter(pk=job.pk).update(status=status, finished_at=when, updated_at=when, pinned=pinned)
    return job


def surviving(*jobs: Job) -> set:
    return set(Job.objects.filter(pk__in=[job.pk for job in jobs]).values_list("pk", flat=True))


def test_a_kinds_own_retention_wins_over_the_tenants_and_a_tenant_may_set_its_own_for_the_kind(acme, globex):
    Tenant.objects.filter(pk=acme.pk).update(retention_succeeded_days=30)
    short = finished(acme, "tests.short_lived", Status.SUCCEEDED, 3)  # the kind keeps 1 day
    echo = finished(acme, "tests.echo", Status.SUCCEEDED, 3)  # the tenant keeps 30
    failed_short = finished(acme, "tests.short_lived", Status.FAILED, 1)  # the kind keeps failed 2 days
    KindRetention.objects.create(tenant=globex, kind="tests.short_lived", succeeded_days=10)
    theirs = finished(globex, "tests.short_lived", Status.SUCCEEDED, 3)  # globex keeps this kind 10 days
    theirs_old = finished(globex, "tests.short_lived", Status.SUCCEEDED, 11)
    theirs_failed = finished(globex, "tests.short_lived", Status.FAILED, 3)  # no own failed days: the kind's 2
    retention_cleanup()
    assert surviving(short, echo, failed_short, theirs, theirs_old, theirs_failed) == {
        echo.pk, failed_short.pk, theirs.pk}


def test_a_tenant_keeps_at_most_its_newest_n_of_a_state_and_pinned_ones_always(acme, globex, settings):
    settings.JOBS_KEEP_FAILED = 3  # the default for every tenant that sets none
    Tenant.objects.filter(pk=acme.pk).update(keep_failed=2)
    acme_failed = [finished(acme, "tests.echo", Status.FAILED, days) for days in (0.1, 0.2, 0.3, 0.4)]
    pinned = finished(acme, "tests.echo", Status.FAILED, 0.5, pinned=True)
    succeeded = [finished(acme, "tests.echo", Status.SUCCEEDED, 0.1 * n) for n in range(1, 5)]  # no cap
    globex_failed = [finished(globex, "tests.echo", Status.CANCELLED, 0.1 * n) for n in range(1, 6)]
    retention_cleanup()
    assert surviving(*acme_failed, pinned) == {acme_failed[0].pk, acme_failed[1].pk, pinned.pk}
    assert surviving(*succeeded) == {job.pk for job in succeeded}
    assert surviving(*globex_failed) == {job.pk for job in globex_failed[:3]}


def test_a_tenant_admin_sets_retention_for_a_kind_in_their_tenant_only_and_it_is_audited(acme, globex, alice,
                                                                                          charlie):
    client = Client()
    client.force_login(alice)
    form = client.get("/admin/jobs/kindretention/add/").content.decode()
    assert "Globex" not in form and "tests.short_lived" in form
    response = client.post("/admin/jobs/kindretention/add/", {"tenant": acme.pk, "kind": "tests.short_lived",
                                                               "failed_days": "90"})
    assert response.status_code == 302
    rule = KindRetention.objects.get()
    assert (rule.tenant, rule.kind, rule.succeeded_days, rule.failed_days) == (acme, "tests.short_lived", None, 90)
    event = AuditEvent.objects.get(action=AuditAction.RETENTION_CHANGE)
    assert (event.actor, event.tenant, event.outcome) == (
        alice, acme, "Succeeded: as before; failed and cancelled: 90 days.")
    refused = client.post("/admin/jobs/kindretention/add/", {"tenant": globex.pk, "kind": "tests.echo",
                                                              "failed_days": "1"})
    assert refused.status_code == 200 and KindRetention.objects.count() == 1  # not her tenant: not a choice
    client.force_login(charlie)  # globex's operator: not an admin, and not acme's
    assert client.get(f"/admin/jobs/kindretention/{rule.pk}/change/").status_code in (302, 403, 404)
