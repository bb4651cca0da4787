"""Priorities within a queue: among a queue's waiting jobs, higher goes first, while the database holds them
(a paused queue, a tenant at its limit) and, above the default, in RQ's list too."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from jobs import enqueue, enqueue_many, relay, transport
from jobs.models import Attempt, Job, Status
from jobs.schedules.models import Schedule
from jobs.schedules.services import schedule_run_now, schedule_save
from jobs.staff import staff_queue_pause, staff_queue_resume
from tenants.models import Tenant
from tests.jobs import kinds  # noqa: F401 (registers tests.echo)
from tests.jobs.helpers import work

pytestmark = pytest.mark.django_db(transaction=True)


def started_order() -> list[str]:
    return list(Attempt.objects.order_by("started_at", "id").values_list("job__payload__text", flat=True))


def echo(tenant, text: str, priority: int = 5) -> Job:
    return enqueue("tests.echo", tenant=tenant, payload={"text": text}, priority=priority)


def test_on_resuming_a_paused_queue_the_highest_priority_starts_first_then_the_oldest(acme, root):
    staff_queue_pause(name="high", user=root)
    for text, priority in [("normal 1", 5), ("low", 2), ("normal 2", 5), ("urgent", 9), ("higher", 7)]:
        echo(acme, text, priority)
    assert transport.get_queue("high").count == 0  # all held in the database
    staff_queue_resume(name="high", user=root)
    relay.relay()
    work("high")
    assert started_order() == ["urgent", "higher", "normal 1", "normal 2", "low"]


def test_a_tenant_at_its_limit_hands_over_its_highest_priority_job_next(acme):
    Tenant.objects.filter(pk=acme.pk).update(concurrency_limit=1)
    relay.forget_tenant_load()
    echo(acme, "first")
    for text, priority in [("normal", 5), ("low", 1), ("urgent", 10)]:
        echo(acme, text, priority)
    assert Job.objects.filter(status=Status.PENDING).count() == 3
    work("high")  # each finished job frees the one slot; the refill picks by priority
    assert started_order() == ["first", "urgent", "normal", "low"]


def test_in_rqs_list_a_job_above_the_default_goes_ahead_of_those_waiting(acme):
    Tenant.objects.filter(pk=acme.pk).update(concurrency_limit=0)
    relay.forget_tenant_load()
    echo(acme, "waiting 1")
    echo(acme, "waiting 2")
    echo(acme, "urgent", 8)
    enqueue_many("tests.echo", tenant=acme, payloads=[{"text": "bulk low"}], priority=3)
    work("high")
    # Below the default, RQ's list keeps arrival order: the database cannot reorder what RQ already holds.
    assert started_order() == ["urgent", "waiting 1", "waiting 2", "bulk low"]


@pytest.mark.parametrize("priority", [0, 11, "high", 5.0, True])
def test_a_priority_out_of_range_is_refused_naming_it_and_nothing_is_stored(acme, priority):
    with pytest.raises(ValidationError) as refused:
        echo(acme, "x", priority)
    assert "from 1 to 10" in refused.value.message_dict["priority"][0]
    assert not Job.objects.exists()


def test_a_schedule_starts_its_jobs_with_its_priority(acme, alice):
    schedule = schedule_save(schedule=Schedule(tenant=acme, name="urgent sync", kind="diagnostics.ping",
                                               cron="0 * * * *", priority=8), user=alice)
    run = schedule_run_now(schedule=schedule, user=alice)
    assert run.job.priority == 8
