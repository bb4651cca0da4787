"""Staff actions through the admin: audited, role-checked, inline for small selections, in the background
for large ones; queue pause and resume; failure triage; live refresh; search."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import enqueue, relay, transport
from jobs.models import AuditAction, AuditEvent, AuditState, Job, QueueState, Status
from jobs.reconciler import reconcile
from jobs.selectors import failure_groups, job_list_for_user, queue_overview
from tests.jobs import kinds  # noqa: F401
from tests.jobs.helpers import run_until_settled, work

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/jobs/job/"


def failed_jobs(tenant, count: int, text: str = "x") -> list[Job]:
    jobs = [enqueue("tests.echo", tenant=tenant, payload={"text": f"{text}{i}"}) for i in range(count)]
    Job.objects.filter(pk__in=[j.pk for j in jobs]).update(status=Status.FAILED, finished_at=timezone.now(),
                                                           last_error="RuntimeError: boom")
    return jobs


def test_it_retries_hand_picked_jobs_inline_and_records_who_which_and_how_it_went(client, acme, alice):
    picked = failed_jobs(acme, 3)
    untouched = failed_jobs(acme, 1)[0]
    client.force_login(alice)
    response = client.post(CHANGELIST, {"action": "retry_jobs", "index": 0,
                                        "_selected_action": [str(j.pk) for j in picked]})
    assert response.status_code == 302
    assert set(Job.objects.filter(pk__in=[j.pk for j in picked]).values_list("status", flat=True)) <= {
        Status.PENDING, Status.QUEUED}
    assert Job.objects.get(pk=untouched.pk).status == Status.FAILED
    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.tenant, event.state) == (AuditAction.RETRY, alice, acme, AuditState.DONE)
    assert (event.requested, event.done, event.skipped, event.refused) == (3, 3, 0, 0)
    assert set(event.touched.values_list("job_id", flat=True)) == {j.pk for j in picked}
    work()
    job = Job.objects.get(pk=picked[0].pk)
    assert job.status == Status.SUCCEEDED
    attempt = job.attempt_set.get()
    assert (attempt.trigger, attempt.triggered_by) == ("manual", alice)
    page = client.get(f"{CHANGELIST}{job.pk}/change/").content.decode()
    assert "retry by alice" in page and "Manual retry" in page


def test_it_skips_jobs_not_in_a_state_the_action_applies_to_and_says_so(client, acme, alice):
    waiting = enqueue("tests.echo", tenant=acme, payload={"text": "w"})
    done = failed_jobs(acme, 1)[0]
    client.force_login(alice)
    client.post(CHANGELIST, {"action": "cancel_jobs", "index": 0, "_selected_action": [str(waiting.pk), str(done.pk)]})
    event = AuditEvent.objects.get()
    assert (event.done, event.skipped, event.state) == (1, 1, AuditState.DONE)
    assert event.outcome == "Cancel: 1 of 2 jobs cancelled; 1 skipped (not pending or scheduled or queued or retrying)."
    assert Job.objects.get(pk=waiting.pk).status == Status.CANCELLED
    assert Job.objects.get(pk=done.pk).status == Status.FAILED


def test_a_one_job_action_says_what_happened_and_names_the_job_in_the_audit_trail(client, acme, alice):
    job = failed_jobs(acme, 1)[0]
    client.force_login(alice)
    response = client.post(CHANGELIST, {"action": "retry_jobs", "index": 0, "_selected_action": [str(job.pk)]},
                           follow=True)
    event = AuditEvent.objects.get()
    assert event.target == f"job {job.short_id} (tests.echo)"
    assert event.outcome == f"Retry: 1 job queued (job {job.short_id}, tests.echo)."
    assert event.outcome in [str(message) for message in response.context["messages"]]
    # A deleted job is still named by its event.
    gone = failed_jobs(acme, 1, text="gone")[0]
    client.post(CHANGELIST, {"action": "delete_jobs", "index": 0, "_selected_action": [str(gone.pk)],
                             "confirm": "1", "reason": "test data"})
    delete = AuditEvent.objects.get(action=AuditAction.DELETE)
    assert not Job.objects.filter(pk=gone.pk).exists()
    assert (delete.target, delete.outcome) == (f"job {gone.short_id} (tests.echo)",
                                               f"Delete record: 1 job deleted (job {gone.short_id}, tests.echo).")


def test_a_large_filtered_action_asks_first_then_runs_as_a_tracked_background_job(client, acme, alice, settings):
    settings.JOBS_ADMIN_BULK_THRESHOLD = 5
    failed_jobs(acme, 12, text="bulk")
    other = enqueue("tests.echo", tenant=acme, payload={"text": "not-failed"})
    client.force_login(alice)
    url = f"{CHANGELIST}?status__exact=failed"
    asked = client.post(url, {"action": "retry_jobs", "index": 0, "select_across": "1",
                              "_selected_action": [str(Job.objects.filter(status="failed").first().pk)]})
    assert asked.status_code == 200 and b"confirm-count" in asked.content
    assert b"<strong>12</strong>" in asked.content
    assert not AuditEvent.objects.exists() and Job.objects.filter(status="failed").count() == 12

    confirmed = client.post(url, {"action": "retry_jobs", "index": 0, "select_across": "1", "confirm": "1",
                                  "reason": "provider outage over",
                                  "_selected_action": [str(Job.objects.filter(status="failed").first().pk)]})
    assert confirmed.status_code == 302
    event = AuditEvent.objects.get()
    assert (event.state, event.requested, event.reason) == (AuditState.RUNNING, 12, "provider outage over")
    assert event.selection == "status__exact=failed" and event.background_job is not None
    late = failed_jobs(acme, 1, text="late")[0]  # failed after the confirmation: not part of it

    background = run_until_settled(event.background_job)
    assert background.status == Status.SUCCEEDED and background.progress == 100
    event.refresh_from_db()
    assert (event.state, event.done, event.skipped, event.refused) == (AuditState.DONE, 12, 0, 0)
    assert Job.objects.get(pk=late.pk).status == Status.FAILED
    assert Job.objects.get(pk=other.pk).status != Status.CANCELLED
    assert Job.objects.filter(status=Status.FAILED).count() == 1


def test_clean_deletes_only_finished_jobs_older_than_the_given_days(client, acme, alice):
    old, recent = failed_jobs(acme, 2)
    Job.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=40))
    running = enqueue("tests.echo", tenant=acme, payload={"text": "r"})
    client.force_login(alice)
    ids = [str(old.pk), str(recent.pk), str(running.pk)]
    asked = client.post(CHANGELIST, {"action": "clean_jobs", "index": 0, "_selected_action": ids})
    assert asked.status_code == 200 and b'name="days"' in asked.content
    missing_days = client.post(CHANGELIST, {"action": "clean_jobs", "index": 0, "confirm": "1",
                                            "_selected_action": ids})
    assert b"This field is required" in missing_days.content and Job.objects.count() == 3
    client.post(CHANGELIST, {"action": "clean_jobs", "index": 0, "confirm": "1", "days": "30",
                             "_selected_action": ids})
    assert set(Job.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}
    event = AuditEvent.objects.get()
    assert (event.action, event.done, event.skipped) == (AuditAction.CLEAN, 1, 2)
    assert event.touched.get().job_id == old.pk  # the record of what was deleted outlives the rows


def test_a_paused_queue_keeps_its_waiting_jobs_in_the_database_and_resume_hands_them_over(client, acme, root):
    client.force_login(root)
    queued = enqueue("tests.echo", tenant=acme, payload={"text": "before"})  # queue "high"
    assert transport.get_queue("high").count == 1
    assert client.post(f"{CHANGELIST}queues/high/pause/").status_code == 302
    assert QueueState.objects.get(name="high").paused_at is not None
    assert Job.objects.get(pk=queued.pk).status == Status.PENDING  # taken back from Redis
    assert transport.get_queue("high").count == 0
    later = enqueue("tests.echo", tenant=acme, payload={"text": "during"})
    assert later.status == Status.PENDING
    reconcile()
    assert set(Job.objects.values_list("status", flat=True)) == {Status.PENDING}

    # A job pushed by a process that had not heard of the pause yet is refused at its claim.
    Job.objects.filter(pk=later.pk).update(status=Status.QUEUED)
    transport.push([transport.Handover(job_id=str(later.pk), queue="high", kind="tests.echo", tenant="acme",
                                       timeout=60, fresh=True)])
    work("high")
    assert Job.objects.get(pk=later.pk).attempts == 0

    assert client.post(f"{CHANGELIST}queues/high/resume/").status_code == 302
    relay.relay()
    work("high")
    assert set(Job.objects.values_list("status", flat=True)) == {Status.SUCCEEDED}
    assert list(AuditEvent.objects.order_by("pk").values_list("action", flat=True)) == [
        AuditAction.PAUSE_QUEUE, AuditAction.RESUME_QUEUE]


def test_only_superusers_pause_queues_because_every_tenant_shares_them(client, alice):
    client.force_login(alice)
    assert client.post(f"{CHANGELIST}queues/high/pause/").status_code == 403
    assert not QueueState.objects.exists()
    assert b'data-queue-op="pause"' not in client.get(f"{CHANGELIST}queues/").content


def test_cancel_waiting_jobs_of_a_queue_touches_only_the_users_tenants(client, acme, globex, alice):
    mine = [enqueue("tests.echo", tenant=acme, payload={"text": str(i)}) for i in range(3)]
    theirs = enqueue("tests.echo", tenant=globex, payload={"text": "g"})
    client.force_login(alice)
    client.post(f"{CHANGELIST}queues/high/cancel-waiting/")
    assert set(Job.objects.filter(pk__in=[j.pk for j in mine]).values_list("status", flat=True)) == {"cancelled"}
    assert Job.objects.get(pk=theirs.pk).status == Status.QUEUED
    assert transport.get_queue("high").job_ids == [str(theirs.pk)]


def test_the_queues_page_counts_by_status_recent_failures_and_tenants(client, acme, globex, alice):
    enqueue("tests.echo", tenant=acme, payload={"text": "q"})
    enqueue("tests.echo", tenant=globex, payload={"text": "q"})
    failed_jobs(acme, 2)
    rows = {row.name: row for row in queue_overview(jobs=job_list_for_user(user=alice))}
    high = rows["high"]
    assert (high.counts, high.failed_hour, high.failed_day) == (
        {"pending": 0, "scheduled": 0, "queued": 1, "running": 0, "retrying": 0}, 2, 2)
    assert high.tenants == [("Acme Corp", {"queued": 1})] and high.oldest_waiting is not None
    client.force_login(alice)
    page = client.get(f"{CHANGELIST}queues/").content.decode()
    assert "<svg" in page and "Globex" not in page and 'data-queue="high"' in page


def test_failure_triage_groups_alike_failures_and_retries_a_group(client, acme, alice):
    for number in (17, 23, 42):
        job = enqueue("tests.flaky", tenant=acme, payload={"fail_attempts": 9}, idempotency_key=f"k{number}")
        run_until_settled(job)
    odd = enqueue("tests.chatty", tenant=acme, payload={"reports": 1, "fail": True})
    run_until_settled(odd)
    groups = failure_groups(user=alice)
    assert sorted((g.kind, g.failed) for g in groups) == [("tests.chatty", 1), ("tests.flaky", 3)]
    flaky = next(g for g in groups if g.kind == "tests.flaky")
    assert flaky.tenants == ["Acme Corp"] and "boom on attempt" in flaky.error
    client.force_login(alice)
    page = client.get(f"{CHANGELIST}triage/").content.decode()
    assert flaky.fingerprint in page
    client.post(f"{CHANGELIST}triage/", {"fingerprint": flaky.fingerprint, "operation": "retry"})
    assert Job.objects.filter(kind="tests.flaky", status=Status.FAILED).count() == 0
    assert Job.objects.get(pk=odd.pk).status == Status.FAILED
    assert AuditEvent.objects.get().done == 3


def test_live_refresh_returns_the_rendered_status_of_the_users_jobs_only(client, acme, globex, alice):
    mine = enqueue("tests.echo", tenant=acme, payload={"text": "m"})
    theirs = enqueue("tests.echo", tenant=globex, payload={"text": "t"})
    client.force_login(alice)
    data = client.get(f"{CHANGELIST}live/", {"id": [str(mine.pk), str(theirs.pk), "not-a-uuid"]}).json()["jobs"]
    assert list(data) == [str(mine.pk)]
    assert data[str(mine.pk)]["status"] == "queued" and 'data-status="queued"' in data[str(mine.pk)]["status_html"]


def test_search_finds_a_job_by_full_id_short_id_payload_text_and_error(client, acme, alice):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "needle-in-payload"})
    other = failed_jobs(acme, 1)[0]
    Job.objects.filter(pk=other.pk).update(last_error="ConnectionError: smtp.example.net refused")
    client.force_login(alice)

    def found(term: str) -> set[str]:
        page = client.get(CHANGELIST, {"q": term}).content.decode()
        return {j.short_id for j in (job, other) if j.short_id in page}

    assert found(str(job.pk)) == {job.short_id}
    assert found(job.short_id) == {job.short_id}
    assert found("needle-in") == {job.short_id}
    assert found("smtp.example") == {other.short_id}
