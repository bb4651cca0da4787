"""The staff admin in a real browser: Debian's chromium driven by Playwright, a live server, a real worker.

Screenshots land in tests/artifacts/screenshots/ for a person to look at.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from jobs import enqueue
from jobs.models import Job, Status
from tests.support import FAST_ENGINE_ENV, HttpReceiver, Process, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


@pytest.fixture
def browser_page(live_server, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes between
    # browser steps are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: ./run test installs it"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(20_000)
        yield page
        browser.close()
        # Inside Playwright's context the ORM gets a connection of its own, which Django's teardown never
        # sees: left open, it keeps the test database from being dropped at the end of the session.
        connections.close_all()


@pytest.fixture
def worker(private_redis):
    process = Process("rqworker", "high", "default", redis_url=private_redis.url, env=FAST_ENGINE_ENV)
    yield process
    process.terminate()


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def progress_of(page, job: Job) -> int:
    return int(page.locator(f'.job-progress[data-live-job="{job.pk}"] progress').first.get_attribute("value"))


def test_it_shows_an_operator_their_tenants_live_jobs_and_audits_a_retry(
        browser_page, live_server, worker, acme, globex, olga):
    page = browser_page
    theirs = enqueue("diagnostics.ping", tenant=globex, payload={})
    long_running = enqueue("diagnostics.ping", tenant=acme, payload={"seconds": 10, "steps": 10})
    failing = enqueue("diagnostics.ping", tenant=acme, payload={"fail_times": 3})

    page.goto(f"{live_server.url}/admin/login/?next=/admin/jobs/job/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", "olga-pw-1")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/jobs/job/")
    listing = page.locator("#result_list").inner_text()
    assert long_running.short_id in listing and failing.short_id in listing
    assert theirs.short_id not in listing and "Globex" not in page.content()

    # The bar moves while the page stays put: a marker set now survives, so nothing reloaded it.
    page.evaluate("window.__stayedPut = true")
    page.wait_for_function(
        f"""() => {{ const bar = document.querySelector('.job-progress[data-live-job="{long_running.pk}"] progress');
                    return bar && Number(bar.value) > 0; }}""", timeout=30_000)
    first = progress_of(page, long_running)
    page.wait_for_function(
        f"""() => Number(document.querySelector('.job-progress[data-live-job="{long_running.pk}"] progress').value)
                  > {first}""", timeout=30_000)
    assert progress_of(page, long_running) > first
    assert page.evaluate("window.__stayedPut") is True
    assert page.locator(f'.job-status[data-live-job="{long_running.pk}"]').first.get_attribute(
        "data-status") == "running"
    shoot(page, "changelist")

    wait_for(lambda: Job.objects.get(pk=failing.pk).status == Status.FAILED, timeout=60, what="the job to fail")
    page.goto(f"{live_server.url}/admin/jobs/job/{failing.pk}/change/")
    assert page.locator("tr.attempt").count() == 3
    page.click("button[data-job-action=retry]")
    page.wait_for_url(f"**/admin/jobs/job/{failing.pk}/change/")
    assert "Retry: 1 job queued" in page.locator("ul.messagelist").inner_text()
    wait_for(lambda: Job.objects.get(pk=failing.pk).status == Status.SUCCEEDED, timeout=60,
             what="the retried job to succeed")
    page.reload()
    fourth = page.locator('tr.attempt[data-attempt="4"]')
    assert "Manual retry by olga" in fourth.inner_text() and "Succeeded" in fourth.inner_text()
    assert "retry by olga" in page.locator("#timeline").inner_text()
    shoot(page, "job-detail")

    page.goto(f"{live_server.url}/admin/jobs/auditevent/")
    retry_row = page.locator("#result_list tbody tr").filter(has_text="olga").filter(has_text="Retry")
    expect(retry_row).to_have_count(1)
    retry_row.locator("a").first.click()
    expect(page.locator(".field-jobs_touched")).to_contain_text(failing.short_id)

    page.goto(f"{live_server.url}/admin/jobs/job/queues/")
    assert page.locator('tr[data-queue="default"]').count() == 1
    assert page.locator("svg[role=img]").count() == 1
    assert "Globex" not in page.content()
    shoot(page, "queues")


def test_it_lets_a_tenant_admin_add_an_endpoint_see_its_secret_once_and_follow_deliveries(
        browser_page, live_server, private_redis, acme, alice, settings):
    from standardwebhooks.webhooks import Webhook

    from jobs import webhooks
    from jobs.relay import relay
    from jobs.webhooks.models import WebhookDelivery

    settings.WEBHOOKS_ALLOW_HTTP = settings.WEBHOOKS_ALLOW_LOOPBACK = True  # the receiver is on loopback
    receiver = HttpReceiver((500, {}, b"busy, try later"), (200, {}, b"thanks"), path="/hooks")
    settings.WEBHOOKS_ALLOWED_PORTS = [*settings.WEBHOOKS_ALLOWED_PORTS, receiver.port]  # a loopback port of its own
    worker = Process("rqworker", "default", redis_url=private_redis.url,
                     env={**FAST_ENGINE_ENV, "WEBHOOKS_ALLOW_HTTP": "true", "WEBHOOKS_ALLOW_LOOPBACK": "true",
                          "WEBHOOKS_ALLOWED_PORTS": f"443,8443,{receiver.port}"})
    page = browser_page
    try:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/webhooks/webhookendpoint/add/")
        page.fill("#id_username", "alice")
        page.fill("#id_password", "alice-pw-1")
        page.click("input[type=submit]")
        page.wait_for_url("**/webhookendpoint/add/")
        page.select_option("#id_tenant", str(acme.pk))
        page.fill("#id_url", "http://169.254.169.254/latest/meta-data/")
        page.fill("#id_description", "Billing system")
        page.click("input[name=_save]")
        expect(page.locator(".errorlist")).to_contain_text("link-local address")
        shoot(page, "webhook-endpoint-refused")

        page.fill("#id_url", receiver.url)
        page.click("input[name=_save]")
        secret = page.locator("#webhook-secret").input_value()
        assert secret.startswith("whsec_")
        expect(page.locator("#content-main")).to_contain_text("It is not shown again")
        shoot(page, "webhook-secret-once")
        page.click("text=Done")
        page.wait_for_url("**/change/")
        assert secret not in page.content()

        [message] = webhooks.send(acme, "invoice.paid", {"invoice": 1042})
        wait_for(lambda: WebhookDelivery.objects.filter(message=message).exists(), timeout=20, what="first delivery")
        Job.objects.filter(pk=message.job_id).update(run_at=message.created_at)  # its retry is due now
        relay()
        wait_for(lambda: WebhookDelivery.objects.filter(message=message, succeeded=True).exists(), timeout=20,
                 what="the retried delivery")
        for headers, body in receiver.requests:  # the same id both times, each signed with the shown secret
            assert headers["webhook-id"] == message.pk
            assert Webhook(secret).verify(body, headers)["data"] == {"invoice": 1042}

        page.goto(f"{live_server.url}/admin/webhooks/webhookmessage/")
        page.locator("#result_list tbody tr th a").first.click()  # the first column links to the message
        page.wait_for_url("**/change/")
        inline = page.locator(".inline-group")
        expect(inline).to_contain_text("busy, try later")
        expect(inline).to_contain_text("thanks")
        assert secret not in page.content()
        shoot(page, "webhook-deliveries")
    finally:
        worker.terminate()
        receiver.close()
