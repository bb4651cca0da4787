"""Batches and chains: aggregate counts, one callback with the counts when all finish, retrying the failed
members; chains run step after step, a failure stops them and every member shows it; the reconciler
repairs what a killed worker left undone."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from jobs import batches
from jobs.models import Batch, Job, Status
from jobs.reconciler import reconcile
from tests.jobs import kinds  # noqa: F401  (registers the test kinds)
from tests.jobs.helpers import work as drain

pytestmark = pytest.mark.django_db


@pytest.fixture
def work(django_capture_on_commit_callbacks):
    """Drain the queues, running what the jobs left for after commit (a callback's hand-over) as it comes."""
    def run() -> None:
        for _ in range(3):
            with django_capture_on_commit_callbacks(execute=True) as callbacks:
                drain()
            if not callbacks:
                return
    return run


@pytest.fixture(autouse=True)
def no_limit(settings):
    settings.JOBS_TENANT_CONCURRENCY = 0  # tests/jobs/test_fairness.py covers limits


def callbacks() -> list[dict]:
    return [args for name, args in kinds.calls if name == "tests.batch_done"]


def members(batch: Batch) -> list[Job]:
    return list(batch.members.order_by("batch_position", "id"))


def test_a_batch_calls_back_once_with_the_counts_when_all_finish(acme, django_capture_on_commit_callbacks, work):
    kinds.calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        batch = batches.batch_enqueue(kind="tests.flaky", tenant=acme, name="import",
                                      payloads=[{"fail_attempts": 0}] * 4 + [{"fail_attempts": 9}],
                                      callback_kind="tests.batch_done", callback_payload={"note": "rows"})
    for _ in range(4):  # the failing member retries twice before it fails for good
        work()
        Job.objects.filter(batch=batch, status=Status.RETRYING).update(run_at=batch.created_at)
        reconcile()
    work()
    batch.refresh_from_db()
    assert batch.finished_at is not None and batch.total == 5
    assert callbacks() == [{"batch": batch.pk, "succeeded": 4, "failed": 1, "cancelled": 0, "note": "rows"}]
    assert batch.callback_job.status == Status.SUCCEEDED
    assert batches.batch_counts(batch=batch)[Status.SUCCEEDED] == 4


def test_retrying_a_batchs_failed_members_reopens_it_and_calls_back_again(acme, alice,
                                                                          django_capture_on_commit_callbacks, work):
    kinds.calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        batch = batches.batch_enqueue(kind="tests.steered", tenant=acme, name="sync",
                                      payloads=[{"plan": ["succeed"]}, {"plan": ["give_up", "succeed"]}],
                                      callback_kind="tests.batch_done")
    work()
    assert [c["failed"] for c in callbacks()] == [1]
    with django_capture_on_commit_callbacks(execute=True):
        retried = batches.batch_retry_failed(batch=Batch.objects.get(pk=batch.pk), user=alice)
    assert len(retried) == 1
    work()
    assert [(c["succeeded"], c["failed"]) for c in callbacks()] == [(1, 1), (2, 0)]


def test_a_chain_runs_its_steps_one_after_the_other(acme, django_capture_on_commit_callbacks, work):
    kinds.calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        chain = batches.chain_enqueue(tenant=acme, name="onboard", callback_kind="tests.batch_done", steps=[
            ("tests.echo", {"text": "one"}), ("tests.urgent", {"text": "two"}), ("tests.echo", {"text": "three"})])
    first, second, third = members(chain)
    assert (first.status, second.status, third.status) == (Status.QUEUED, Status.SCHEDULED, Status.SCHEDULED)
    assert second.run_at is None and second.progress_message == "Waiting for step 1 of the chain to succeed."
    work()
    order = [args.get("text") for name, args in kinds.calls if name in ("tests.echo", "tests.urgent")]
    assert order == ["one", "two", "three"]  # "two" is on the critical queue, yet waited for "one"
    assert {job.status for job in members(chain)} == {Status.SUCCEEDED}
    assert callbacks()[0]["succeeded"] == 3


def test_a_failed_step_stops_the_chain_and_every_member_says_so(client, acme, alice,
                                                                 django_capture_on_commit_callbacks, work):
    with django_capture_on_commit_callbacks(execute=True):
        chain = batches.chain_enqueue(tenant=acme, name="pipeline", steps=[
            ("tests.echo", {"text": "ok"}), ("tests.steered", {"plan": ["give_up"]}),
            ("tests.echo", {"text": "never"}), ("tests.echo", {"text": "never either"})])
    work()
    statuses = [job.status for job in members(chain)]
    assert statuses == [Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.CANCELLED]
    stopped = members(chain)[2]
    assert stopped.last_error == "Chain stopped: step 2 (tests.steered) failed." and stopped.attempts == 0
    client.force_login(alice)
    for job in members(chain):
        page = client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
        assert "Chain pipeline" in page and "Chain stopped: step 2" in page and "Failed" in page
    listing = client.get("/admin/jobs/batch/").content.decode()
    assert "pipeline" in listing and "1 succeeded, 1 failed, 2 cancelled, 0 to go" in listing

    # Retrying the failed step puts the steps it stopped back in line.
    with django_capture_on_commit_callbacks(execute=True):
        batches.batch_retry_failed(batch=chain, user=alice)
    assert [job.status for job in members(chain)][2:] == [Status.SCHEDULED, Status.SCHEDULED]


def test_the_reconciler_starts_a_step_whose_predecessor_succeeded_behind_a_dead_workers_back(
        acme, django_capture_on_commit_callbacks, work):
    with django_capture_on_commit_callbacks(execute=True):
        chain = batches.chain_enqueue(tenant=acme, name="resilient", callback_kind="tests.batch_done",
                                      steps=[("tests.echo", {"text": "a"}), ("tests.echo", {"text": "b"})])
    first, second = members(chain)
    # The worker committed step 1's success and died before the signal moved the chain on.
    Job.objects.filter(pk=first.pk).update(status=Status.SUCCEEDED)
    assert reconcile().batches >= 1
    work()
    assert Job.objects.get(pk=second.pk).status == Status.SUCCEEDED
    reconcile()
    chain.refresh_from_db()
    assert chain.finished_at is not None and chain.callback_job is not None


def test_bad_members_are_refused_naming_the_step_and_nothing_is_stored(acme):
    with pytest.raises(ValidationError) as excinfo:
        batches.chain_enqueue(tenant=acme, name="bad", callback_kind="tests.batch_done",
                              callback_payload={"colour": "red"},
                              steps=[("tests.echo", {"text": "ok"}), ("tests.echo", {"text": 3}), ("nope", {})])
    errors = excinfo.value.message_dict
    assert {"steps[1].payload.text", "steps[2].kind", "callback.payload.colour"} <= set(errors)
    with pytest.raises(ValidationError) as excinfo:
        batches.batch_enqueue(kind="tests.echo", tenant=acme, name=" ", payloads=[])
    assert set(excinfo.value.message_dict) == {"name", "payloads"}
    assert not Batch.objects.exists() and not Job.objects.exists()
