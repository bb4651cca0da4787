"""A tenant admin follows a stopped chain in the real admin and pauses their tenant with the kill switch."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from jobs import batches
from jobs.models import Job, Status
from tenants.models import Tenant
from tests.browser.test_admin_browser import browser_page, shoot  # noqa: F401 (fixture)
from tests.jobs import kinds  # noqa: F401  (registers the test kinds)
from tests.jobs.helpers import work

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_tenant_admin_sees_where_a_chain_stopped_and_pauses_the_tenant(browser_page, live_server, acme, globex,
                                                                          alice):
    page = browser_page
    chain = batches.chain_enqueue(tenant=acme, name="Nightly pipeline", steps=[
        ("tests.echo", {"text": "extract"}), ("tests.steered", {"plan": ["give_up"]}), ("tests.echo", {"text": "load"})])
    batches.batch_enqueue(kind="tests.echo", tenant=acme, name="Import 2026-12",
                          payloads=[{"text": str(n)} for n in range(12)])
    batches.batch_enqueue(kind="tests.echo", tenant=globex, name="Globex import", payloads=[{"text": "x"}])
    work()

    page.goto(f"{live_server.url}/admin/login/?next=/admin/jobs/batch/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-pw-1")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/jobs/batch/")
    listing = page.locator("#result_list")
    expect(listing).to_contain_text("Nightly pipeline")
    expect(listing).to_contain_text("1 succeeded, 1 failed, 1 cancelled, 0 to go")
    expect(listing).to_contain_text("12 succeeded, 0 failed, 0 cancelled, 0 to go")
    assert "Globex import" not in listing.inner_text()
    shoot(page, "batch-list")

    stopped = Job.objects.get(batch=chain, batch_position=3)
    page.goto(f"{live_server.url}/admin/jobs/job/{stopped.pk}/change/")
    section = page.locator("#batch")
    expect(section).to_contain_text("Chain Nightly pipeline (step 3 of 3)")
    expect(section).to_contain_text("Chain stopped: step 2 (tests.steered) failed.")
    shoot(page, "chain-member")

    page.goto(f"{live_server.url}/admin/tenants/tenant/")
    page.check(f"input[name=_selected_action][value='{acme.pk}']")
    page.select_option("select[name=action]", "pause_work")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("no job starts until resumed")
    expect(page.locator("#result_list")).to_contain_text("Paused since")
    shoot(page, "tenant-paused")
    assert Tenant.objects.get(pk=acme.pk).paused_at is not None
    assert Job.objects.filter(batch=chain, status=Status.SUCCEEDED).count() == 1
