from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from jobs import enqueue, enqueue_many, transport
from jobs.models import Job, Status
from tests.jobs import kinds  # noqa: F401  (registers the test kinds)


def queued_ids(queue: str = "high") -> list[str]:
    return [raw.decode() for raw in transport.get_queue(queue).connection.lrange(f"rq:queue:{queue}", 0, -1)]


def errors_of(excinfo) -> dict[str, list[str]]:
    return excinfo.value.message_dict


@pytest.mark.django_db(transaction=True)
def test_it_hands_the_job_to_rq_only_after_commit(acme):
    with transaction.atomic():
        job = enqueue("tests.echo", tenant=acme, payload={"text": "hi"})
        assert queued_ids() == []
    assert queued_ids() == [str(job.pk)]
    rq_job = transport.get_queue("high").fetch_job(str(job.pk))
    assert rq_job.args == [str(job.pk)]
    assert rq_job.func_name == "jobs.tasks.run_job"
    assert rq_job.meta == {"kind": "tests.echo", "tenant": "acme"}
    assert "tests.echo" in rq_job.description and "acme" in rq_job.description


@pytest.mark.django_db(transaction=True)
def test_it_stores_nothing_in_redis_when_the_transaction_rolls_back(acme):
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("tests.echo", tenant=acme, payload={"text": "hi"})
        raise RuntimeError("rollback")
    assert Job.objects.count() == 0
    assert queued_ids() == []


@pytest.mark.django_db
def test_it_stores_the_payload_with_defaults_and_the_kind_settings(acme, alice):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "hi"}, user=alice)
    job.refresh_from_db()
    assert job.payload == {"text": "hi", "count": 1, "when": None}
    assert (job.queue, job.max_attempts, job.enqueued_by, job.source) == ("high", 2, alice, "view")


@pytest.mark.parametrize(
    ("kind", "payload", "field", "message"),
    [
        ("tests.nope", {}, "kind", "Unknown job kind 'tests.nope'."),
        ("tests.echo", {}, "payload.text", "Field required."),
        ("tests.echo", {"text": 5}, "payload.text", "Input should be a valid string."),
        ("tests.echo", {"text": "x", "count": "3"}, "payload.count", "Input should be a valid integer."),
        ("tests.echo", {"text": "x", "colour": "red"}, "payload.colour", "Unknown field."),
        ("tests.echo", {"text": "x", "when": "yesterday"}, "payload.when", "Input should be a valid datetime"),
        ("tests.echo", {"text": {1, 2}}, "payload.text", "Not JSON-serialisable"),
        ("tests.echo", {"text": float("nan")}, "payload.text", "Not JSON-serialisable"),
        ("tests.echo", ["text"], "payload", "Must be a JSON object, not list."),
        ("tests.echo", {"text": "x" * 70_000}, "payload", "the limit is 65536 bytes"),
        ("tests.echo", {"text": "nul \x00 inside"}, "payload.text", "NUL character"),
        ("tests.parent", {"pin": "1", "api_token": "a\x00"}, "payload.api_token", "NUL character"),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_it_rejects_bad_input_naming_the_field_and_stores_nothing(acme, kind, payload, field, message):
    with pytest.raises(ValidationError) as excinfo:
        enqueue(kind, tenant=acme, payload=payload)
    errors = errors_of(excinfo)
    assert field in errors, errors
    assert any(message in text for text in errors[field]), errors
    assert Job.objects.count() == 0
    assert queued_ids() == []


@pytest.mark.django_db
def test_it_refuses_an_inactive_tenant(acme):
    acme.active = False
    acme.save()
    with pytest.raises(ValidationError) as excinfo:
        enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    assert errors_of(excinfo) == {"tenant": ["Tenant 'acme' is inactive."]}
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_naive_run_at_and_a_long_idempotency_key(acme):
    naive = timezone.now().replace(tzinfo=None)
    with pytest.raises(ValidationError) as excinfo:
        enqueue("tests.echo", tenant=acme, payload={"text": "x"}, run_at=naive)
    assert "run_at" in errors_of(excinfo)
    with pytest.raises(ValidationError) as excinfo:
        enqueue("tests.echo", tenant=acme, payload={"text": "x"}, run_at=timezone.now() + timedelta(days=11 * 365))
    assert errors_of(excinfo) == {"run_at": ["Must be within ten years from now."]}
    with pytest.raises(ValidationError) as excinfo:
        enqueue("tests.echo", tenant=acme, payload={"text": "x"}, idempotency_key="k" * 201)
    assert "idempotency_key" in errors_of(excinfo)
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_returns_the_unfinished_job_for_the_same_idempotency_key(acme, globex):
    first = enqueue("tests.echo", tenant=acme, payload={"text": "a"}, idempotency_key="order-7")
    again = enqueue("tests.echo", tenant=acme, payload={"text": "b"}, idempotency_key="order-7")
    other_tenant = enqueue("tests.echo", tenant=globex, payload={"text": "c"}, idempotency_key="order-7")
    assert again.pk == first.pk
    assert other_tenant.pk != first.pk
    assert Job.objects.count() == 2
    assert queued_ids().count(str(first.pk)) == 1


@pytest.mark.django_db(transaction=True)
def test_the_database_enforces_the_key_even_without_the_service(acme):
    from django.db import IntegrityError

    Job.objects.create(tenant=acme, kind="tests.echo", queue="high", idempotency_key="k", status=Status.PENDING)
    with pytest.raises(IntegrityError):
        Job.objects.create(tenant=acme, kind="tests.echo", queue="high", idempotency_key="k", status=Status.QUEUED)


@pytest.mark.django_db(transaction=True)
def test_it_accepts_the_key_again_once_the_earlier_job_finished(acme):
    first = enqueue("tests.echo", tenant=acme, payload={"text": "a"}, idempotency_key="k")
    Job.objects.filter(pk=first.pk).update(status=Status.SUCCEEDED)
    second = enqueue("tests.echo", tenant=acme, payload={"text": "a"}, idempotency_key="k")
    assert second.pk != first.pk


@pytest.mark.django_db(transaction=True)
def test_it_keeps_a_future_job_scheduled_out_of_redis(acme):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"}, run_at=timezone.now() + timedelta(hours=1))
    assert job.status == Status.SCHEDULED
    assert queued_ids() == []


def test_it_takes_a_run_at_with_any_offset_python_allows(acme):
    far_east = (timezone.now() + timedelta(hours=1)).astimezone(timezone.get_fixed_timezone(23 * 60))
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"}, run_at=far_east)
    job.refresh_from_db()
    assert job.status == Status.SCHEDULED and job.run_at == far_east


@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_job_pending_when_redis_is_down_and_the_call_succeeds(acme, private_redis):
    private_redis.stop()
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    job.refresh_from_db()
    assert job.status == Status.PENDING
    # While Redis is known to be down, new jobs are stored pending without another attempt.
    second = enqueue("tests.echo", tenant=acme, payload={"text": "y"})
    assert Job.objects.get(pk=second.pk).status == Status.PENDING
    private_redis.start()


@pytest.mark.django_db(transaction=True)
def test_enqueue_many_stores_all_and_hands_them_over_in_one_go(acme, settings):
    settings.JOBS_TENANT_CONCURRENCY = 0  # no limit (tests/jobs/test_fairness.py has the limited case)
    jobs = enqueue_many("tests.echo", tenant=acme, payloads=[{"text": str(i)} for i in range(250)])
    assert Job.objects.filter(status=Status.QUEUED).count() == 250
    assert sorted(queued_ids()) == sorted(str(job.pk) for job in jobs)


@pytest.mark.django_db(transaction=True)
def test_enqueue_many_rejects_the_whole_batch_naming_the_bad_payload(acme):
    with pytest.raises(ValidationError) as excinfo:
        enqueue_many("tests.echo", tenant=acme, payloads=[{"text": "ok"}, {"text": 3}, {}])
    errors = errors_of(excinfo)
    assert set(errors) == {"payloads[1].payload.text", "payloads[2].payload.text"}
    assert not Job.objects.exists()
    assert queued_ids() == []
