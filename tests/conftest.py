"""The shared story: two tenants (acme, globex), an owner, a member, an outsider; a private Redis."""
from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from jobs import relay, transport
from tenants.models import Membership, Role, Tenant
from tests.support import RedisServer


def pytest_collection_modifyitems(config, items) -> None:
    """In a parallel run (`-n`), tests that start worker processes take turns on one xdist worker, and
    the browser's on another: each waits on processes of its own, and two at once on a small machine
    would slow each other past their timing bounds. The rest spread over every worker."""
    for item in items:
        if "tests/browser/" in item.nodeid:
            item.add_marker(pytest.mark.xdist_group("browser"))
        elif item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.xdist_group("processes"))


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture(autouse=True)
def private_redis(redis_server, monkeypatch):
    """Every test talks to the session's private redis-server, emptied before the test."""
    if not redis_server.is_up():
        redis_server.start()
    point_rq_at(redis_server.url, monkeypatch)
    redis_server.client().flushall()
    yield redis_server


def point_rq_at(url: str, monkeypatch) -> None:
    from config.settings import with_redis_timeouts

    queues = {name: {**config, "URL": with_redis_timeouts(url)} for name, config in settings.RQ_QUEUES.items()}
    monkeypatch.setattr(settings, "RQ_QUEUES", queues)
    monkeypatch.setattr(settings, "REDIS_URL", url)
    transport._queues.clear()
    monkeypatch.setattr("jobs.relay._redis_down_until", 0.0)
    relay.forget_paused_cache()
    relay.forget_tenant_load()


@pytest.fixture
def processes():
    """manage.py subprocesses a test starts (tests.support.Process); all stopped when it ends."""
    started = []
    yield started
    for process in started:
        process.terminate()


@pytest.fixture
def acme(db) -> Tenant:
    return Tenant.objects.create(name="Acme Corp", slug="acme")


@pytest.fixture
def globex(db) -> Tenant:
    return Tenant.objects.create(name="Globex Inc", slug="globex")


@pytest.fixture
def alice(acme):
    """Admin of acme."""
    user = get_user_model().objects.create_user("alice", password="pw-alice", is_staff=True)
    Membership.objects.create(user=user, tenant=acme, role=Role.ADMIN)
    return user


@pytest.fixture
def charlie(globex):
    """Staff of globex only: should have no access to acme's jobs."""
    user = get_user_model().objects.create_user("charlie", password="pw-charlie", is_staff=True)
    Membership.objects.create(user=user, tenant=globex, role=Role.OPERATOR)
    return user


@pytest.fixture
def smtp(settings):
    """The mail server outside the machine, replaced by a loopback SMTP sink that records what it took."""
    from tests.smtp import SmtpSink

    sink = SmtpSink()
    settings.MAILERS = sink.mailers()
    yield sink
    sink.close()
