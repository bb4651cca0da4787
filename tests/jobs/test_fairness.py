"""Fairness between tenants: a tenant's concurrency limit holds its surplus in the database with the reason,
a freed slot hands over the next job at once, other tenants go straight to RQ, kinds cap their own jobs,
queue priority holds within a tenant, refills never overshoot; and the kill switch pauses, resumes and
cancels a tenant's work, audited."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connections
from django.utils import timezone

from jobs import enqueue, enqueue_many, relay, signals, transport
from jobs.models import ACTIVE_STATUSES, AuditAction, AuditEvent, Job, Status
from jobs.staff import staff_tenant_cancel_waiting, staff_tenant_pause, staff_tenant_resume
from tenants.models import Tenant
from tests.jobs import kinds  # noqa: F401  (registers the test kinds)
from tests.jobs.helpers import work

pytestmark = pytest.mark.django_db


def active(tenant: Tenant) -> int:
    return Job.objects.filter(tenant=tenant, status__in=ACTIVE_STATUSES).count()


def in_redis(queue: str = "high") -> list[str]:
    return transport.get_queue(queue).job_ids


def held(tenant: Tenant) -> list[Job]:
    return list(Job.objects.filter(tenant=tenant, status=Status.PENDING).order_by("id"))


@pytest.fixture
def limited(acme) -> Tenant:
    Tenant.objects.filter(pk=acme.pk).update(concurrency_limit=5)
    relay.forget_tenant_load()
    acme.refresh_from_db()
    return acme


def test_it_holds_what_is_over_a_tenants_limit_pending_with_the_reason(limited, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        jobs = enqueue_many("tests.echo", tenant=limited, payloads=[{"text": str(n)} for n in range(20)])
    assert active(limited) == 5 and len(in_redis()) == 5
    assert in_redis() == [str(job.pk) for job in jobs[:5]]  # the oldest first
    waiting = held(limited)
    assert len(waiting) == 15 and {job.progress_message for job in waiting} == {relay.HELD_AT_LIMIT}


def test_a_freed_slot_hands_over_the_next_held_job_without_a_relay_pass(limited, django_capture_on_commit_callbacks,
                                                                          monkeypatch):
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_many("tests.echo", tenant=limited, payloads=[{"text": str(n)} for n in range(20)])
    seen = []
    signals.job_started.connect(lambda sender, job, **kw: seen.append(active(limited)), weak=False, dispatch_uid="f1")
    monkeypatch.setattr(relay, "relay", lambda **kw: pytest.fail("no periodic pass is needed"))
    try:
        work()  # one burst: each finished job's slot brings in the next held one
    finally:
        signals.job_started.disconnect(dispatch_uid="f1")
    assert Job.objects.filter(tenant=limited, status=Status.SUCCEEDED).count() == 20
    assert len(seen) == 20 and max(seen) <= 5


def test_other_tenants_go_straight_to_rq_behind_at_most_the_limit(limited, globex, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_many("tests.echo", tenant=limited, payloads=[{"text": str(n)} for n in range(200)])
        theirs = enqueue("tests.echo", tenant=globex, payload={"text": "b"})
    assert theirs.status == Status.QUEUED and theirs.progress_message == ""
    assert in_redis().index(str(theirs.pk)) == 5  # behind acme's five, not its two hundred


def test_a_kind_caps_its_own_jobs_per_tenant(acme, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        capped = enqueue_many("tests.capped", tenant=acme, payloads=[{"text": str(n)} for n in range(6)])
        other = enqueue("tests.echo", tenant=acme, payload={"text": "not capped"})
    statuses = [Job.objects.get(pk=job.pk).status for job in capped]
    assert statuses.count(Status.QUEUED) == 2 and statuses.count(Status.PENDING) == 4
    assert Job.objects.get(pk=other.pk).status == Status.QUEUED
    assert {job.progress_message for job in held(acme)} == {relay.HELD_KIND_LIMIT}
    work()
    assert Job.objects.filter(kind="tests.capped", status=Status.SUCCEEDED).count() == 6


def test_within_a_tenant_held_jobs_go_by_queue_priority(limited, django_capture_on_commit_callbacks):
    Tenant.objects.filter(pk=limited.pk).update(concurrency_limit=1)
    relay.forget_tenant_load()
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_many("tests.echo", tenant=limited, payloads=[{"text": str(n)} for n in range(3)])
        urgent = enqueue("tests.urgent", tenant=limited, payload={"text": "now"})
    kinds.calls.clear()
    work()
    order = [name for name, _ in kinds.calls]
    assert order.index("tests.urgent") <= 1  # after the one already queued, ahead of the older echoes
    assert Job.objects.get(pk=urgent.pk).status == Status.SUCCEEDED


def test_due_retries_over_the_limit_wait_pending_and_the_periodic_pass_hands_them_over(limited):
    jobs = [enqueue("tests.echo", tenant=limited, payload={"text": str(n)}) for n in range(8)]
    past = timezone.now() - timedelta(seconds=1)
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(status=Status.RETRYING, run_at=past, attempts=1)
    transport.get_connection().flushall()
    assert relay.relay() == 5
    assert active(limited) == 5
    waiting = held(limited)
    assert len(waiting) == 3 and {job.progress_message for job in waiting} == {relay.HELD_AT_LIMIT}


@pytest.mark.django_db(transaction=True)
def test_refills_racing_for_one_tenant_never_overshoot_its_limit(limited):
    Job.objects.bulk_create([Job(tenant=limited, kind="tests.echo", queue="high", payload={"text": str(n)},
                                 status=Status.PENDING) for n in range(40)])
    barrier = threading.Barrier(4)

    def refill_some():
        barrier.wait()
        try:
            for _ in range(5):
                relay.refill(limited.pk)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=refill_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert active(limited) == 5 and len(in_redis()) == 5


# --- the kill switch -----------------------------------------------------------------------------------


def test_pausing_a_tenant_takes_its_jobs_back_and_starts_none_until_resumed(acme, globex, alice,
                                                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        queued = [enqueue("tests.echo", tenant=acme, payload={"text": str(n)}) for n in range(3)]
        theirs = enqueue("tests.echo", tenant=globex, payload={"text": "globex"})
    assert len(in_redis()) == 4
    with django_capture_on_commit_callbacks(execute=True):
        staff_tenant_pause(tenant=acme, user=alice, reason="runaway import")
    assert in_redis() == [str(theirs.pk)]  # acme's were taken back; globex carries on
    later = enqueue("tests.echo", tenant=acme, payload={"text": "later"})
    assert later.status == Status.PENDING and later.progress_message == relay.HELD_PAUSED
    # A worker that pops one of acme's ids anyway (it was in flight) finds its claim refused.
    transport.push([transport.Handover(job_id=str(queued[0].pk), queue="high", kind="tests.echo", tenant="acme",
                                       timeout=30, fresh=False)])
    Job.objects.filter(pk=queued[0].pk).update(status=Status.QUEUED)
    work()
    assert Job.objects.get(pk=theirs.pk).status == Status.SUCCEEDED
    assert not Job.objects.filter(tenant=acme, status=Status.SUCCEEDED).exists()
    assert relay.relay() == 0
    with django_capture_on_commit_callbacks(execute=True):
        staff_tenant_resume(tenant=acme, user=alice)
    work()
    assert Job.objects.filter(tenant=acme, status=Status.SUCCEEDED).count() == 4
    events = list(AuditEvent.objects.filter(tenant=acme).order_by("created_at").values_list("action", "reason"))
    assert events == [(AuditAction.TENANT_PAUSE, "runaway import"), (AuditAction.TENANT_RESUME, "")]


def test_cancelling_everything_a_tenant_has_waiting_is_one_audited_action(acme, globex, alice,
                                                                           django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_many("tests.echo", tenant=acme, payloads=[{"text": str(n)} for n in range(60)])
        enqueue("tests.echo", tenant=acme, payload={"text": "later"}, delay=3600)
        theirs = enqueue("tests.echo", tenant=globex, payload={"text": "keep"})
    event = staff_tenant_cancel_waiting(tenant=acme, user=alice)
    assert (event.action, event.done) == (AuditAction.CANCEL, 61)
    assert not Job.objects.filter(tenant=acme).exclude(status=Status.CANCELLED).exists()
    assert Job.objects.get(pk=theirs.pk).status == Status.QUEUED


def test_only_a_tenants_admins_and_superusers_hold_the_kill_switch(client, acme, olga, charlie):
    for user in (olga, charlie):
        for act in (staff_tenant_pause, staff_tenant_resume, staff_tenant_cancel_waiting):
            with pytest.raises(PermissionDenied):
                act(tenant=acme, user=user)
    client.force_login(charlie)
    response = client.post("/admin/tenants/tenant/", {"action": "pause_work", "_selected_action": [acme.pk]})
    assert response.status_code in (200, 302, 403)
    assert Tenant.objects.get(pk=acme.pk).paused_at is None


def test_a_tenant_admin_pauses_their_tenant_from_the_admin(client, acme, alice):
    client.force_login(alice)
    client.post("/admin/tenants/tenant/", {"action": "pause_work", "_selected_action": [acme.pk]})
    acme.refresh_from_db()
    assert acme.paused_at is not None and acme.paused_by == alice
    assert "Paused since" in client.get("/admin/tenants/tenant/").content.decode()
    client.post("/admin/tenants/tenant/", {"action": "resume_work", "_selected_action": [acme.pk]})
    assert Tenant.objects.get(pk=acme.pk).paused_at is None


def test_a_tenant_admin_cannot_raise_their_own_concurrency_limit(client, acme, alice):
    client.force_login(alice)
    page = client.get(f"/admin/tenants/tenant/{acme.pk}/change/").content.decode()
    assert 'name="concurrency_limit"' not in page


def test_job_ids_made_in_one_process_keep_their_order_within_a_millisecond():
    from jobs.models import new_job_id

    ids = [new_job_id() for _ in range(20_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(job_id.version == 7 for job_id in ids[:10])


@pytest.mark.parametrize("limit", [50, 0])
def test_a_kinds_rate_limit_hands_over_at_most_that_many_a_second_per_tenant(acme, globex, settings, limit,
                                                                            django_capture_on_commit_callbacks):
    import time_machine

    settings.JOBS_TENANT_CONCURRENCY = limit  # with or without a concurrency limit as well
    with time_machine.travel(timezone.now().replace(microsecond=0), tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            mine = [enqueue("tests.rated", tenant=acme, payload={"text": str(n)}) for n in range(8)]
            theirs = enqueue("tests.rated", tenant=globex, payload={"text": "their own three a second"})
        assert [job.status for job in mine].count(Status.QUEUED) == 3 and theirs.status == Status.QUEUED
        assert {job.progress_message for job in held(acme)} == {relay.HELD_RATE}
        assert relay.relay() == 0  # this second's three are spent
        clock.shift(1)
        assert relay.relay() == 3
        clock.shift(1)
        assert relay.relay() == 2 and not held(acme)


def test_a_kinds_cap_holds_for_tenants_without_a_limit_of_their_own(acme, settings, django_capture_on_commit_callbacks):
    settings.JOBS_TENANT_CONCURRENCY = 0
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_many("tests.capped", tenant=acme, payloads=[{"text": str(n)} for n in range(6)])
    transport.get_connection().flushall()
    Job.objects.filter(status=Status.QUEUED).update(status=Status.PENDING)  # as if Redis had been down
    assert relay.relay() == 2 and active(acme) == 2


def test_a_held_enqueue_with_room_under_the_limit_goes_at_once_and_one_at_the_limit_asks_nothing(
        limited, django_capture_on_commit_callbacks, monkeypatch):
    # Admission stops at half the limit (5 of 10); a refill at commit still hands the next five over,
    # and the process's picture of the load counts them, so the eleventh is held without a refill.
    Tenant.objects.filter(pk=limited.pk).update(concurrency_limit=10)
    relay.forget_tenant_load()
    jobs = []
    for n in range(10):
        with django_capture_on_commit_callbacks(execute=True):
            jobs.append(enqueue("tests.echo", tenant=limited, payload={"text": str(n)}))
    assert [Job.objects.get(pk=job.pk).status for job in jobs] == [Status.QUEUED] * 10
    assert len(in_redis()) == 10
    refills = []
    monkeypatch.setattr(relay, "refill", lambda *a, **kw: refills.append(a) or 0)
    with django_capture_on_commit_callbacks(execute=True):
        eleventh = enqueue("tests.echo", tenant=limited, payload={"text": "over"})
    assert eleventh.status == Status.PENDING and eleventh.progress_message == relay.HELD_AT_LIMIT
    assert refills == []


def test_a_job_held_at_its_kinds_cap_goes_at_once_when_the_cap_has_room(acme, settings,
                                                                        django_capture_on_commit_callbacks):
    settings.JOBS_TENANT_CONCURRENCY = 0  # the tenant has no limit of its own; the kind caps at 2
    relay.forget_tenant_load()
    first, second = [], []
    with django_capture_on_commit_callbacks(execute=True):
        first.append(enqueue("tests.capped", tenant=acme, payload={"text": "1"}))
    with django_capture_on_commit_callbacks(execute=True):
        second.append(enqueue("tests.capped", tenant=acme, payload={"text": "2"}))  # over half the cap: held
    assert second[0].progress_message == relay.HELD_KIND_LIMIT
    assert Job.objects.get(pk=second[0].pk).status == Status.QUEUED  # and handed over at commit
    with django_capture_on_commit_callbacks(execute=True):
        third = enqueue("tests.capped", tenant=acme, payload={"text": "3"})
    assert Job.objects.get(pk=third.pk).status == Status.PENDING
    assert sorted(in_redis()) == sorted([str(first[0].pk), str(second[0].pk)])
