"""Operations tests: an ops webhook receiver on loopback (the remote endpoint), jobs in given states."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import enqueue
from jobs.models import Job
from jobs.ops import probes
from tests.support import HttpReceiver


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_HTTP = settings.WEBHOOKS_ALLOW_LOOPBACK = True
    server = HttpReceiver(path="/ops-hook")
    settings.WEBHOOKS_ALLOWED_PORTS = [*settings.WEBHOOKS_ALLOWED_PORTS, server.port]  # a loopback port of its own
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fresh_redis_state():
    """Each test sees Redis as it is now, not as an earlier test's cached look saw it."""
    probes.forget_redis_state()
    yield
    probes.forget_redis_state()


def jobs_in(tenant, status: str, count: int = 1, *, ago: timedelta = timedelta(0), kind: str = "diagnostics.ping",
            **fields) -> list[Job]:
    """`count` jobs of `tenant` moved straight to `status`, last updated `ago`."""
    jobs = [enqueue(kind, tenant=tenant, payload={}) for _ in range(count)]
    when = timezone.now() - ago
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(status=status, updated_at=when, **fields)
    return list(Job.objects.filter(pk__in=[job.pk for job in jobs]))
