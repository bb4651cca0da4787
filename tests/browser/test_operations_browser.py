"""In the real admin: a tenant admin makes an API token (shown once), uses it, and revokes it; with Redis
down, every admin page shows the outage banner with the number of jobs waiting to be handed over."""
from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from jobs import enqueue
from jobs.api.models import ApiToken
from jobs.ops import probes
from tests.browser.test_admin_browser import browser_page, shoot  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def log_in(page, live_server, username: str, password: str, next_url: str) -> None:
    page.goto(f"{live_server.url}/admin/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_url}")


def test_a_tenant_admin_makes_uses_and_revokes_an_api_token(browser_page, live_server, acme, globex, alice):
    page = browser_page
    log_in(page, live_server, "alice", "alice-pw-1", "/admin/api/apitoken/add/")
    assert "Globex" not in page.locator("#id_tenant").inner_text()
    page.select_option("#id_tenant", label="Acme Corp")
    page.fill("#id_name", "billing service")
    page.select_option("#id_scope", "read-write")
    page.click("input[name=_save]")
    expect(page.locator("#content-main")).to_contain_text("It is not shown again")
    secret = page.input_value("#api-token")
    assert secret.startswith("tj_") and len(secret) > 40
    expect(page.locator(".breadcrumbs")).to_contain_text("API tokens")
    shoot(page, "api-token-once")
    token = ApiToken.objects.get(name="billing service")
    assert secret not in (token.key_hash, token.prefix) and token.created_by == alice

    headers = {"Authorization": f"Bearer {secret}"}
    made = requests.post(f"{live_server.url}/api/v1/jobs", json={"kind": "diagnostics.ping", "payload": {}},
                         headers=headers, timeout=10)
    assert made.status_code == 201, made.text
    assert requests.get(f"{live_server.url}/api/v1/jobs", headers=headers, timeout=10).json()["items"][0]["id"] == \
        made.json()["id"]

    page.click("text=Done")
    page.wait_for_url(f"**/admin/api/apitoken/{token.pk}/change/")
    assert secret not in page.content()  # never shown again
    page.click("text=Revoke token")
    page.click("input[value='Revoke token']")
    expect(page.locator(".messagelist")).to_contain_text("revoked: requests with it are refused")
    expect(page.locator("input[name=_save]")).to_have_count(0)  # a revoked token is a record: nothing to save
    shoot(page, "api-token-revoked")
    refused = requests.get(f"{live_server.url}/api/v1/jobs", headers=headers, timeout=10)
    assert refused.status_code == 401 and refused.json()["error"]["code"]
    page.goto(f"{live_server.url}/admin/api/apitoken/")
    expect(page.locator("#result_list")).to_contain_text("Revoked")


def test_a_superuser_makes_a_platform_token_that_reads_every_queue_and_no_tenants_jobs(browser_page, live_server,
                                                                                        acme, root, settings):
    settings.JOBS_QUEUE_LIMITS = {"default": {"global_rate": 1}}
    for n in range(3):
        enqueue("diagnostics.ping", tenant=acme, payload={"steps": n + 1})  # one a second: some wait
    page = browser_page
    log_in(page, live_server, "root", "root-pw-1", "/admin/api/apitoken/add/")
    expect(page.locator(".field-tenant .help")).to_contain_text("Empty for a platform token")
    page.fill("#id_name", "runbooks")  # the tenant left empty
    page.select_option("#id_scope", "read-write")
    page.click("input[name=_save]")
    secret = page.input_value("#api-token")
    headers = {"Authorization": f"Bearer {secret}"}
    queues = requests.get(f"{live_server.url}/api/v1/platform/queues", headers=headers, timeout=10)
    assert queues.status_code == 200 and {row["name"] for row in queues.json()} >= {"default", "high"}
    paused = requests.post(f"{live_server.url}/api/v1/queues/low/pause", json={"reason": "drill"}, headers=headers,
                           timeout=10)
    assert paused.status_code == 200, paused.text
    jobs = requests.get(f"{live_server.url}/api/v1/jobs", headers=headers, timeout=10)
    assert jobs.status_code == 403 and jobs.json()["error"]["code"] == "platform_token"
    page.goto(f"{live_server.url}/admin/api/apitoken/")
    row = page.locator("#result_list tbody tr").filter(has_text="runbooks")
    expect(row).to_contain_text("Platform")
    shoot(page, "api-token-platform-list")
    page.goto(f"{live_server.url}/admin/jobs/auditevent/")
    expect(page.locator("#result_list")).to_contain_text("Read through the API")
    expect(page.locator("#result_list")).to_contain_text("Pause queue")
    shoot(page, "api-token-platform-audit")
    page.goto(f"{live_server.url}/admin/jobs/job/queues/")
    expect(page.locator('tr[data-queue="low"] .paused')).to_contain_text("paused since")
    limit = page.locator('#global-limits tr[data-limit="queue:default"]')
    expect(limit).to_contain_text("queue default")
    waiting = int(limit.locator("td").nth(4).inner_text())
    assert 1 <= waiting <= 2  # one a second was handed over
    limit.locator("a").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(waiting)
    page.goto(f"{live_server.url}/admin/jobs/job/queues/")
    shoot(page, "queues-global-limits")


def test_the_admin_shows_a_banner_while_redis_is_unreachable(browser_page, live_server, redis_server, acme, root,
                                                              settings):
    page = browser_page
    settings.OPS_REDIS_STATE_CACHE_SECONDS = 0  # each page looks again
    log_in(page, live_server, "root", "root-pw-1", "/admin/")
    expect(page.locator("#redis-outage")).to_have_count(0)
    redis_server.stop()
    try:
        probes.forget_redis_state()
        for _ in range(3):
            enqueue("diagnostics.ping", tenant=acme, payload={})  # kept pending: nowhere to hand them
        page.goto(f"{live_server.url}/admin/jobs/job/")
        banner = page.locator("#redis-outage")
        expect(banner).to_contain_text("Redis is unreachable")
        expect(banner).to_contain_text("3 job(s)")
        shoot(page, "redis-outage-banner")
    finally:
        redis_server.start()
