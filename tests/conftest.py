"""The shared story: two tenants, acme and globex, and someone in every role: root (superuser), alice (acme's
admin), olga (acme's operator), victor (acme's viewer), charlie (globex's operator) and drifter (staff of no
tenant). Each logs in with "<name>-pw-1". make_staff makes anyone else a test needs. A private Redis."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from jobs import pusher, relay, transport
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
    # In this process enqueue() pushes before it returns, so a test may read Redis right after it. The
    # processes tests start (workers, the web) push from their thread as in production, and
    # tests/jobs/test_pusher.py covers the thread here.
    monkeypatch.setattr(settings, "JOBS_PUSH_IN_BACKGROUND", False)
    redis_server.client().flushall()
    yield redis_server
    pusher.flush(2)  # nothing a test left to push lands in the next test's Redis


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


def password(username: str) -> str:
    """The one password rule, so that a browser test can type any user's password."""
    return f"{username}-pw-1"


@pytest.fixture
def make_staff(db) -> Callable[..., User]:
    """make_staff(username, {tenant: role, ...}, **fields): a staff member with those memberships (none: staff of
    no tenant), for a test that needs someone besides the story: a second admin, a member being added."""
    def make(username: str, roles: dict[Tenant, str] | None = None, **fields) -> User:
        user = User.objects.create_user(username, password=password(username), is_staff=True, **fields)
        for tenant, role in (roles or {}).items():
            Membership.objects.create(user=user, tenant=tenant, role=role)
        return user
    return make


@pytest.fixture
def root(db) -> User:
    """Superuser: every tenant's data, the system's jobs, the django-rq dashboard."""
    return User.objects.create_superuser("root", password=password("root"))


@pytest.fixture
def alice(acme, make_staff) -> User:
    """Admin of acme."""
    return make_staff("alice", {acme: Role.ADMIN})


@pytest.fixture
def olga(acme, make_staff) -> User:
    """Operator of acme: retries, cancels and stops, deletes nothing."""
    return make_staff("olga", {acme: Role.OPERATOR})


@pytest.fixture
def victor(acme, make_staff) -> User:
    """Viewer of acme: reads only. The one with an email address, for the report links he asks to be mailed."""
    return make_staff("victor", {acme: Role.VIEWER}, email="victor@acme.test")


@pytest.fixture
def charlie(globex, make_staff) -> User:
    """Operator of globex only: should have no access to acme's jobs."""
    return make_staff("charlie", {globex: Role.OPERATOR})


@pytest.fixture
def drifter(make_staff) -> User:
    """Staff of no tenant: holds no role anywhere."""
    return make_staff("drifter")


@pytest.fixture
def smtp(settings):
    """The mail server outside the machine, replaced by a loopback SMTP sink that records what it took."""
    from tests.smtp import SmtpSink

    sink = SmtpSink()
    settings.MAILERS = sink.mailers()
    yield sink
    sink.close()
