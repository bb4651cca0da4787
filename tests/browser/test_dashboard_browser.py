"""In the real browser, a superuser on the django-rq dashboard: the home page sets RQ's numbers beside the
record's, a failed job's page says what it is, "Requeue" retries it (a worker runs it again), and
"Empty queue" asks first, then cancels the queue's waiting jobs."""
from __future__ import annotations

import pytest
from django_rq.settings import get_queues_map
from playwright.sync_api import expect

from jobs import enqueue, transport
from jobs.models import AuditAction, AuditEvent, Job, Status
from tests.browser.test_admin_browser import browser_page, shoot  # noqa: F401 (fixtures)
from tests.browser.test_operations_browser import log_in
from tests.jobs import kinds  # noqa: F401 (registers the tests. kinds)
from tests.jobs.helpers import work

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_superuser_requeues_and_empties_through_the_dashboard(browser_page, live_server, acme, root):
    page = browser_page
    failed = enqueue("tests.steered", tenant=acme, payload={"plan": ["give_up", "succeed"]})
    work()
    transport.scheduler_beat("scheduler-1")
    default, high = get_queues_map()["default"], get_queues_map()["high"]

    log_in(page, live_server, "root", "root-pw-1", "/admin/rq/")
    row = page.locator('tr[data-queue="default"]')
    expect(row.locator("td").nth(3)).to_have_text("1")  # RQ's failed copy ...
    expect(row.locator("td").nth(12)).to_have_text("1")  # ... and the record's failed job
    expect(page.locator("#content-main")).to_contain_text("1 scheduler process")
    shoot(page, "rq-dashboard-home")

    page.goto(f"{live_server.url}/admin/rq/queues/{default}/failed/")
    expect(page.locator("td.rq-record")).to_have_text("Failed")
    page.click(f"text={failed.pk}")
    expect(page.locator(".rq-record-note")).to_contain_text("The job itself is its record")
    expect(page.locator("input[name=Enqueue]")).to_be_hidden()
    shoot(page, "rq-dashboard-job")
    page.click("input[name=requeue]")
    expect(page.locator(".messagelist")).to_contain_text("Retry: 1 job queued")
    work()
    assert Job.objects.get(pk=failed.pk).status == Status.SUCCEEDED

    waiting = [enqueue("tests.echo", tenant=acme, payload={"text": str(n)}) for n in range(3)]
    page.goto(f"{live_server.url}/admin/rq/queues/{high}/")
    expect(page.locator("td.rq-record")).to_have_count(3)
    page.click("text=Empty Queue")
    expect(page.locator("#content-main")).to_contain_text("is cancelled and never runs")
    shoot(page, "rq-dashboard-empty-confirm")
    page.click("input[value='Yes, empty']")
    expect(page.locator(".messagelist")).to_contain_text("Cancel: 3 jobs cancelled")
    assert set(Job.objects.filter(pk__in=[j.pk for j in waiting]).values_list("status", flat=True)) == {
        Status.CANCELLED}
    assert AuditEvent.objects.filter(action=AuditAction.RETRY, actor_name="root").count() == 1
