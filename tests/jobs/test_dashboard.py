"""The django-rq dashboard, used as a superuser through its own URLs: its buttons act on the record
(audited, role-checked), its numbers are set beside the record's, and no page is a 500."""
from __future__ import annotations

import re

import pytest
from django.test import Client
from django_rq.settings import get_queues_map

from jobs import enqueue, transport
from jobs.models import AuditAction, AuditEvent, Job, Status, Trigger
from jobs.reconciler import reconcile
from tests.jobs import kinds
from tests.jobs.helpers import work
from tests.planted import data_blob, plant

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dashboard(root) -> Client:
    client = Client()
    client.force_login(root)
    return client


def index(queue: str) -> int:
    return get_queues_map()[queue]


def failed_for_good(acme) -> Job:
    job = enqueue("tests.steered", tenant=acme, payload={"plan": ["give_up"] * 3})
    work()
    job.refresh_from_db()
    assert job.status == Status.FAILED
    return job


def events(action: str, user) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, actor=user))


def test_requeue_of_a_failed_job_is_a_manual_retry_by_the_superuser_and_it_runs_again(acme, root, dashboard):
    job = failed_for_good(acme)
    page = f"/admin/rq/queues/{index('default')}/{job.pk}/"
    assert dashboard.get(page).status_code == 200  # RQ keeps a copy of a job that failed for good

    response = dashboard.post(f"{page}requeue/", follow=True)

    assert response.status_code == 200
    [event] = events(AuditAction.RETRY, root)
    assert event.done == 1 and "django-rq dashboard" in event.selection
    job.refresh_from_db()
    assert job.status == Status.QUEUED and job.next_trigger == Trigger.MANUAL and job.next_triggered_by == root
    kinds.calls.clear()
    work()
    job.refresh_from_db()
    attempt = job.attempt_set.get(number=2)
    assert (attempt.trigger, attempt.triggered_by) == (Trigger.MANUAL, root)
    assert kinds.calls and kinds.calls[-1][1]["trigger"] == Trigger.MANUAL


def test_delete_of_a_queued_job_cancels_it_and_nothing_brings_it_back(acme, root, dashboard, settings):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "never"})
    url = f"/admin/rq/queues/{index('high')}/{job.pk}/delete/"
    confirm = dashboard.get(url)
    assert confirm.status_code == 200 and b"Cancel: it never runs" in confirm.content  # says what it does

    dashboard.post(url)

    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    assert [e.done for e in events(AuditAction.CANCEL, root)] == [1]
    assert transport.get_queue("high").job_ids == []
    settings.JOBS_LOST_AFTER_SECONDS = 0
    reconcile()
    kinds.calls.clear()
    work()
    job.refresh_from_db()
    assert (job.status, job.attempts, kinds.calls) == (Status.CANCELLED, 0, [])


def test_empty_queue_cancels_its_waiting_jobs_never_to_run_and_drops_what_has_no_record(
        acme, globex, root, dashboard, private_redis, settings):
    waiting = [enqueue("tests.echo", tenant=tenant, payload={"text": "x"}) for tenant in (acme, acme, globex)]
    other_queue = enqueue("tests.urgent", tenant=acme, payload={})
    plant(private_redis.client(), "nobodys", queue="high", data=data_blob("jobs.tasks.run_job", ["nobodys"]))

    response = dashboard.post(f"/admin/rq/queues/{index('high')}/empty/", follow=True)

    assert response.status_code == 200
    assert set(Job.objects.filter(pk__in=[j.pk for j in waiting]).values_list("status", flat=True)) == {
        Status.CANCELLED}
    assert Job.objects.get(pk=other_queue.pk).status == Status.QUEUED
    [cancel] = events(AuditAction.CANCEL, root)
    [removal] = events(AuditAction.RQ_REMOVE, root)
    assert cancel.done == 3 and "nobodys" in removal.outcome
    assert transport.get_queue("high").count == 0
    settings.JOBS_LOST_AFTER_SECONDS = 0
    reconcile()
    work()
    assert all(job.attempt_set.count() == 0 for job in waiting)


def test_bulk_actions_go_through_the_record(acme, root, dashboard):
    queued = [enqueue("tests.echo", tenant=acme, payload={"text": str(n)}) for n in range(2)]
    ids = [str(job.pk) for job in queued] + ["not-ours"]
    dashboard.post(f"/admin/rq/queues/actions/{index('high')}/", {"action": "requeue", "job_ids": ids})
    assert Job.objects.filter(status=Status.QUEUED).count() == 2  # nothing failed: nothing to retry
    dashboard.post(f"/admin/rq/queues/actions/{index('high')}/", {"action": "delete", "job_ids": ids})
    assert set(Job.objects.values_list("status", flat=True)) == {Status.CANCELLED}
    assert [e.done for e in events(AuditAction.CANCEL, root)] == [2]
    assert events(AuditAction.RQ_REMOVE, root)[0].requested == 1


def test_stop_from_the_dashboard_is_the_engines_stop(acme, root, dashboard):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    Job.objects.filter(pk=job.pk).update(status=Status.RUNNING)  # as a worker's claim leaves it
    dashboard.post(f"/admin/rq/queues/{index('high')}/{job.pk}/stop/")
    job.refresh_from_db()
    assert job.stop_requested_at is not None and "root" in job.last_error
    assert [e.done for e in events(AuditAction.STOP, root)] == [1]


def test_requeue_all_retries_the_queues_failed_jobs_and_delete_all_deletes_their_records(acme, root, dashboard):
    first, second = failed_for_good(acme), failed_for_good(acme)
    base = f"/admin/rq/queues/{index('default')}/"
    assert dashboard.get(f"{base}requeue-all/").status_code == 200
    dashboard.post(f"{base}requeue-all/")
    assert set(Job.objects.values_list("status", flat=True)) == {Status.QUEUED}
    assert events(AuditAction.RETRY, root)[0].done == 2
    work()
    assert set(Job.objects.values_list("status", flat=True)) == {Status.FAILED}
    dashboard.post(f"{base}failed/clear/")
    assert not Job.objects.filter(pk__in=[first.pk, second.pk]).exists()
    assert events(AuditAction.DELETE, root)[0].done == 2
    assert transport.get_queue("default").failed_job_registry.get_job_ids() == []


def test_enqueue_is_not_offered_and_says_where_to_go(acme, dashboard, private_redis):
    plant(private_redis.client(), "deferred-one", where="deferred")
    response = dashboard.post(f"/admin/rq/queues/{index('default')}/deferred-one/enqueue/")
    assert response.status_code == 200 and b"not offered" in response.content
    assert transport.get_queue("default").count == 0


def test_the_home_page_sets_rqs_numbers_beside_the_records_and_sees_the_scheduler(acme, dashboard):
    failed_for_good(acme)
    enqueue("tests.steered", tenant=acme, payload={"plan": ["fail", "succeed"]})
    work()  # this one will be retried: retrying in the record, not in RQ's failed registry
    transport.scheduler_beat("sched-1")
    page = dashboard.get("/admin/rq/").content.decode()
    row = re.search(r'<tr data-queue="default">(.*?)</tr>', page, re.S).group(1)
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    # queued, started, failed, finished, deferred, scheduled | workers | pending, queued, running, later, failed
    assert cells[3] == "1" and cells[-1] == "1" and cells[-2] == "1"
    assert "1 scheduler process" in page and "No running cron schedulers" not in page
    transport.scheduler_beat("sched-1", alive=False)
    assert "No scheduler process is running" in dashboard.get("/admin/rq/").content.decode()


def test_the_job_page_links_to_the_dashboard_only_while_rq_holds_the_job_with_the_right_queue(
        acme, dashboard):
    held = enqueue("tests.echo", tenant=acme, payload={"text": "x"})  # queue "high"
    page = dashboard.get(f"/admin/jobs/job/{held.pk}/change/").content.decode()
    assert f'href="/admin/rq/queues/{index("high")}/{held.pk}/"' in page
    assert dashboard.get(f"/admin/rq/queues/{index('high')}/{held.pk}/").status_code == 200
    work()
    page = dashboard.get(f"/admin/jobs/job/{held.pk}/change/").content.decode()
    assert "In the RQ dashboard" not in page  # succeeded: RQ keeps nothing of it


def test_every_dashboard_page_answers_without_a_server_error(acme, globex, dashboard, private_redis):
    failed_for_good(acme)
    enqueue("tests.echo", tenant=globex, payload={"text": "queued"})
    for where in ("queue", "failed", "finished", "deferred", "scheduled", "started", "expired-started"):
        plant(private_redis.client(), f"foreign-{where}", queue="high", where=where)
    pages = ["/admin/rq/", "/admin/rq/stats.json"]
    for number in get_queues_map().values():
        base = f"/admin/rq/queues/{number}/"
        pages += [base, f"{base}details/", f"{base}finished/", f"{base}failed/", f"{base}scheduled/",
                  f"{base}started/", f"{base}deferred/", f"{base}empty/", f"{base}requeue-all/",
                  f"{base}failed/clear/", f"/admin/rq/workers/{number}/", f"/admin/rq/schedulers/{number}/"]
    for job_id in [str(pk) for pk in Job.objects.values_list("pk", flat=True)] + ["foreign-queue", "foreign-failed"]:
        for queue, number in get_queues_map().items():
            base = f"/admin/rq/queues/{number}/{job_id}/"
            pages += [base, f"{base}delete/", f"{base}requeue/", f"{base}stop/", f"{base}enqueue/"]
    answered = {page: dashboard.get(page).status_code for page in pages}
    assert {page: status for page, status in answered.items() if status >= 500} == {}
    assert answered["/admin/rq/"] == 200


def test_only_superusers_reach_any_dashboard_page_or_action(acme, alice, client):
    job = failed_for_good(acme)
    client.force_login(alice)  # tenant admin: staff, not superuser
    base = f"/admin/rq/queues/{index('default')}/"
    for url in ("/admin/rq/", base, f"{base}{job.pk}/", f"{base}{job.pk}/requeue/", f"{base}empty/"):
        assert client.post(url).status_code == 403
    job.refresh_from_db()
    assert job.status == Status.FAILED


@pytest.mark.parametrize("header", ["Bearer été", "Bearer \u2603", "Bearer", "Basic abc", "bearer  ", "Bearer " + "x" * 5000])
def test_any_authorization_header_gets_401_never_500_on_token_routes(header, settings):
    settings.RQ_API_TOKEN = "t" * 40
    settings.METRICS_TOKEN = "m" * 40
    client = Client(raise_request_exception=False)
    for url in ("/admin/rq/stats.json", "/admin/rq/metrics", "/metrics", "/api/v1/jobs"):
        assert client.get(url, HTTP_AUTHORIZATION=header).status_code in (401, 403), url
