"""The admin's Redis outage banner: on every admin page while Redis is down, with the number of jobs
waiting to be handed over (the user's tenants' only), and Redis asked once per few seconds per process."""
from __future__ import annotations

import pytest

from jobs.models import Status
from jobs.ops import probes
from tests.ops.conftest import jobs_in

pytestmark = pytest.mark.django_db

BANNER = 'id="redis-outage"'
PAGES = ["/admin/", "/admin/jobs/job/", "/admin/jobs/job/queues/", "/admin/tenants/tenant/"]


def test_it_shows_the_banner_with_the_waiting_count_on_every_admin_page_while_redis_is_down(
        client, acme, globex, alice, root, redis_server):
    jobs_in(acme, Status.PENDING, 2)
    jobs_in(globex, Status.PENDING, 3)
    jobs_in(acme, Status.QUEUED, 1)  # already in RQ: nothing to hand over
    redis_server.stop()
    client.force_login(alice)
    for page in PAGES:
        body = client.get(page).content.decode()
        assert BANNER in body, page
        assert "Redis is unreachable" in body and "<strong>2 job(s)</strong> of your tenants waiting" in body, page

    client.force_login(root)
    body = client.get("/admin/jobs/job/").content.decode()
    assert "<strong>5 job(s)</strong> waiting to be handed over" in body


def test_it_says_more_than_the_count_limit(client, acme, alice, redis_server, settings):
    settings.JOBS_ADMIN_COUNT_LIMIT = 2
    jobs_in(acme, Status.PENDING, 3)
    redis_server.stop()
    client.force_login(alice)
    assert "<strong>More than 2 job(s)</strong>" in client.get("/admin/").content.decode()


def test_it_shows_no_banner_while_redis_answers(client, acme, alice):
    jobs_in(acme, Status.PENDING, 2)
    client.force_login(alice)
    for page in PAGES:
        assert BANNER not in client.get(page).content.decode(), page


def test_it_asks_redis_once_per_cache_period_not_on_every_page(client, alice, monkeypatch, settings):
    settings.OPS_REDIS_STATE_CACHE_SECONDS = 60
    looks = []
    real = probes.redis_state
    monkeypatch.setattr(probes, "redis_state", lambda: looks.append(1) or real())
    client.force_login(alice)
    for page in PAGES:
        client.get(page)
    assert len(looks) == 1
    settings.OPS_REDIS_STATE_CACHE_SECONDS = 0
    client.get("/admin/")
    assert len(looks) == 2


def test_it_shows_no_banner_to_visitors_of_the_login_page(client, redis_server):
    redis_server.stop()
    assert BANNER not in client.get("/admin/login/").content.decode()
