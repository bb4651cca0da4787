"""Limits by kind across every tenant (an SMTP relay's rate, a partner API's concurrency), enforced by the
relay with tenants served in turn."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import enqueue, relay, transport
from jobs.models import ACTIVE_STATUSES, Attempt, Job, Status
from jobs.ops.checks import global_limits_check
from jobs.registry import GlobalLimit, global_limits
from tenants.models import Tenant
from tests.jobs import kinds  # noqa: F401 (registers the test kinds)
from tests.jobs.helpers import work

pytestmark = pytest.mark.django_db(transaction=True)


def queued_in_redis() -> int:
    return transport.get_queue("high").count


def test_a_kind_at_its_global_concurrency_waits_saying_so_and_tenants_take_turns(acme, globex):
    for tenant in (acme, globex):
        Tenant.objects.filter(pk=tenant.pk).update(concurrency_limit=0)  # no tenant limit: only the kind's
    relay.forget_tenant_load()
    theirs_first = [enqueue("tests.global_capped", tenant=acme, payload={"n": n}) for n in range(6)]
    ours = enqueue("tests.global_capped", tenant=globex, payload={"n": 100})
    assert Job.objects.filter(kind="tests.global_capped", status__in=ACTIVE_STATUSES).count() == 2
    assert queued_in_redis() == 2
    waiting = Job.objects.get(pk=theirs_first[-1].pk)
    assert (waiting.status, waiting.progress_message) == (
        Status.PENDING, "Waiting: tests.global_capped is at its global limit of 2 at once.")
    work("high")  # every finished job frees the kind's slot: its refill hands over the next, in turn
    assert Job.objects.filter(kind="tests.global_capped", status=Status.SUCCEEDED).count() == 7
    order = list(Attempt.objects.order_by("started_at", "id").values_list("job_id", flat=True))
    # globex's one job waits behind at most one turn of acme's, not behind acme's backlog
    assert order.index(ours.pk) <= 3


def test_a_kinds_global_rate_hands_over_at_most_that_many_a_second(acme, globex):
    Tenant.objects.filter(pk=acme.pk).update(concurrency_limit=0)  # one tenant without a limit, one with
    relay.forget_tenant_load()
    started, first_second = time.monotonic(), int(time.time())
    jobs = [enqueue("tests.global_rated", tenant=tenant, payload={"n": n}) for n in range(5) for tenant in
            (acme, globex)]
    seconds = int(time.time()) - first_second + 1  # the rate is counted per calendar second
    handed = queued_in_redis()
    assert handed <= 3 * seconds and Job.objects.filter(status=Status.PENDING).count() == 10 - handed
    assert Job.objects.filter(status=Status.PENDING).first().progress_message == (
        "Waiting: tests.global_rated is at its global rate of 3/s.")
    while queued_in_redis() < 10 and time.monotonic() - started < 10:
        relay.relay()  # what the scheduler's tick does every second
        time.sleep(0.2)
    assert queued_in_redis() == 10 and len(jobs) == 10
    assert time.monotonic() - started >= 2  # ten at three a second: at least three seconds' worth


def test_settings_override_a_kinds_own_limits(settings):
    settings.JOBS_KIND_LIMITS = {"tests.global_capped": {"global_concurrency": 0, "global_rate": 20},
                                 "email.send": {"global_rate": 50}}
    limits = global_limits()
    assert limits["tests.global_capped"] == GlobalLimit(concurrency=None, rate=20)
    assert limits["email.send"] == GlobalLimit(concurrency=None, rate=50)
    assert limits["tests.global_rated"] == GlobalLimit(rate=3)


# --- limits by queue -------------------------------------------------------------------------------------


def test_a_queue_at_its_global_concurrency_holds_every_kind_on_it_and_tenants_take_turns(acme, globex, settings):
    settings.JOBS_QUEUE_LIMITS = {"high": {"global_concurrency": 2}}  # acme and globex keep their own limit of 50
    mine = [enqueue("tests.echo", tenant=acme, payload={"text": str(n)}) for n in range(5)]
    theirs = enqueue("tests.echo", tenant=globex, payload={"text": "theirs"})
    assert queued_in_redis() == 2
    assert Job.objects.filter(queue="high", status__in=ACTIVE_STATUSES).count() == 2
    waiting = Job.objects.get(pk=mine[-1].pk)
    assert (waiting.status, waiting.progress_message) == (
        Status.PENDING, "Waiting: queue high is at its global limit of 2 at once.")
    relay.refill(acme.pk)  # a tenant's own refill takes nothing from a queue limited across tenants
    assert queued_in_redis() == 2
    work("high")
    assert Job.objects.filter(status=Status.SUCCEEDED).count() == 6
    order = list(Attempt.objects.order_by("started_at", "id").values_list("job_id", flat=True))
    assert order.index(theirs.pk) <= 3  # globex's one job waits for one turn of acme's, not its backlog


def test_a_queues_global_rate_and_a_kind_limited_on_its_own_are_apart(acme, settings):
    settings.JOBS_QUEUE_LIMITS = {"high": {"global_rate": 1}}
    first_second = int(time.time())
    for text in "abcd":
        enqueue("tests.echo", tenant=acme, payload={"text": text})
    seconds = int(time.time()) - first_second + 1  # the rate is counted per calendar second
    own = enqueue("tests.global_capped", tenant=acme, payload={})  # under its kind's limit only
    assert Job.objects.get(pk=own.pk).status == Status.QUEUED
    handed = Job.objects.filter(kind="tests.echo", status=Status.QUEUED).count()
    held = Job.objects.filter(kind="tests.echo", status=Status.PENDING)
    assert 1 <= handed <= seconds and held.count() == 4 - handed
    assert set(held.values_list("progress_message", flat=True)) == {"Waiting: queue high is at its global rate of 1/s."}


def test_the_system_check_names_a_bad_queue_limit_and_a_kind_under_two(settings):
    settings.JOBS_QUEUE_LIMITS = {"high": {"global_concurrency": 5}, "nowhere": {"global_rate": 2},
                                  "low": {"global_rate": "fast"}}
    found = [(problem.id, problem.msg) for problem in global_limits_check(None)]
    assert [msg for id_, msg in found if id_ == "ops.E006"][0].startswith("JOBS_QUEUE_LIMITS names ['nowhere']")
    assert "'low'" in [msg for id_, msg in found if id_ == "ops.E007"][0]
    under_two = [msg.split()[0] for id_, msg in found if id_ == "ops.W002"]
    assert under_two == ["tests.global_capped", "tests.global_rated"]  # both on "high", limited on their own


def test_unused_hand_overs_go_back_to_the_second_they_were_taken_from(private_redis):
    assert transport.rate_take("t:k", 3, 3, second=1000) == 3
    assert transport.rate_take("t:k", 3, 3, second=1001) == 3  # the next second: its own three
    transport.rate_return("t:k", 2, second=1000)  # given back after the clock moved on
    assert transport.rate_take("t:k", 3, 3, second=1001) == 0  # the next second is not pushed over its limit
    assert transport.rate_take("t:k", 3, 3, second=1000) == 2


def test_the_bounded_pick_chooses_what_ranking_every_waiting_row_would(acme, globex, settings, monkeypatch):
    settings.JOBS_KIND_LIMITS = {"tests.echo": {"global_rate": 1}}  # everything held: nothing handed over yet
    initech = Tenant.objects.create(name="Initech", slug="initech")
    paused = Tenant.objects.create(name="Paused", slug="paused", paused_at=timezone.now())
    for tenant, count in ((acme, 30), (globex, 3), (initech, 1), (paused, 5)):
        for n in range(count):
            enqueue("tests.echo", tenant=tenant, payload={"text": str(n)}, priority=1 + n % 10)
    retry = enqueue("tests.echo", tenant=globex, payload={"text": "due retry"})
    Job.objects.filter(pk=retry.pk).update(status=Status.RETRYING, run_at=timezone.now() - timedelta(seconds=5))
    relay.forget_tenant_load()
    scope = relay.global_scope("tests.echo", "high")
    now = timezone.now()
    bounded = relay._pick_across_tenants(scope, now, 12)
    monkeypatch.setattr("jobs.postgres.supported", lambda: False)
    ranked = relay._pick_across_tenants(scope, now, 12)
    assert [row[0] for row in bounded] == [row[0] for row in ranked]
    tenants = [row[8] for row in bounded]
    assert paused.pk not in tenants and {acme.pk, globex.pk, initech.pk} <= set(tenants) and len(bounded) == 12
    assert retry.pk in [row[0] for row in bounded]


def test_the_queues_page_shows_each_limit_and_what_waits_for_it_within_the_users_tenants(
        acme, globex, alice, root, client, settings):
    settings.JOBS_QUEUE_LIMITS = {"low": {"global_rate": 5}}
    for tenant, count in ((acme, 4), (globex, 6)):
        for n in range(count):
            enqueue("tests.global_capped", tenant=tenant, payload={"n": n})
    client.force_login(alice)
    page = client.get("/admin/jobs/job/queues/")
    rows = {row.scope.subject: row for row in page.context["limits"]}
    assert list(rows) == ["tests.global_capped", "tests.global_rated", "queue low"]
    capped = rows["tests.global_capped"]
    assert capped.busy + capped.waiting == 4 and capped.busy <= 2  # acme's only: globex's are not alice's to count
    html = page.content.decode()
    assert 'data-limit="kind:tests.global_capped"' in html and "(your tenants)" in html
    client.force_login(root)
    capped = {row.scope.subject: row for row in client.get("/admin/jobs/job/queues/").context["limits"]}[
        "tests.global_capped"]
    assert (capped.busy, capped.waiting) == (2, 8)


def test_a_due_retry_held_by_a_global_limit_says_so_not_that_its_tenant_is_at_its_limit(acme, settings):
    settings.JOBS_QUEUE_LIMITS = {"high": {"global_concurrency": 1}}  # acme keeps its own limit of 50
    enqueue("tests.echo", tenant=acme, payload={"text": "holds the one slot"})
    retry = enqueue("tests.echo", tenant=acme, payload={"text": "due retry"})
    Job.objects.filter(pk=retry.pk).update(status=Status.RETRYING, run_at=timezone.now() - timedelta(seconds=1),
                                           progress_message="")
    relay.relay()  # the tenant's refill leaves it to the queue's, which holds it with the reason
    held = Job.objects.get(pk=retry.pk)
    assert (held.status, held.progress_message) == (
        Status.PENDING, "Waiting: queue high is at its global limit of 1 at once.")
