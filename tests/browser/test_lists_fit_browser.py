"""Every admin list fits a 1440 px screen: no column behind a horizontal scrollbar, and more than seven rows
above the fold, with realistic (long) values in the widest columns."""
from __future__ import annotations

import pytest

from jobs import enqueue
from jobs.mail.services import email_send
from jobs.schedules.models import Schedule
from jobs.schedules.services import schedule_save
from jobs.staff import staff_jobs_act
from jobs.models import AuditAction, Job
from jobs.webhooks.models import WebhookEndpoint
from jobs.webhooks.services import webhook_send
from reports.services import report_request
from tests.browser.test_admin_browser import browser_page, shoot  # noqa: F401 (fixtures)
from tests.browser.test_console_browser import log_in

pytestmark = pytest.mark.django_db(transaction=True)

LISTS = {
    "list-jobs": "/admin/jobs/job/",
    "list-audit": "/admin/jobs/auditevent/",
    "list-outbound-emails": "/admin/mail/outboundemail/",
    "list-webhook-messages": "/admin/webhooks/webhookmessage/",
    "list-webhook-endpoints": "/admin/webhooks/webhookendpoint/",
    "list-schedules": "/admin/schedules/schedule/",
    "list-reports": "/admin/reports/report/",
}


@pytest.fixture
def busy_tenant(acme, alice):
    for n in range(12):
        WebhookEndpoint.objects.create(tenant=acme, url=f"https://hooks.customer-{n}.example.com/api/v2/incoming/events",
                                       description=f"Customer {n}'s order and invoice receiver (production)")
        email_send(tenant=acme, to=[f"accounts-payable-{n}@very-long-customer-name-{n}.example.com"],
                   template="notice", context={"subject": f"Invoice {1040 + n} is due in seven days, please pay",
                                               "body": "Thanks."})
        webhook_send(tenant=acme, event_type="invoice.payment_succeeded", payload={"invoice": n})
        job = enqueue("diagnostics.ping", tenant=acme, payload={"steps": n + 1})
        staff_jobs_act(action=AuditAction.CANCEL, user=alice, jobs=Job.objects.filter(pk=job.pk),
                       reason="a customer asked for it by phone")
        schedule_save(schedule=Schedule(tenant=acme, name=f"Nightly reconciliation of the ledger, region {n}",
                                        kind="diagnostics.ping", cron=f"{n} 2 * * 1-5", timezone="America/Los_Angeles",
                                        payload={"steps": 2}), user=alice)
        report_request(tenant=acme, user=alice, type="exports.tenant_data", format="csv",
                       title=f"Quarterly export of every job for the auditors, part {n}")


@pytest.mark.parametrize("name", LISTS)
def test_each_list_fits_a_1440_px_screen(browser_page, live_server, busy_tenant, name):
    page = browser_page
    log_in(page, live_server, "alice", LISTS[name])
    page.wait_for_selector("#result_list")
    overflow = page.evaluate("""() => { const box = document.querySelector('#changelist .results');
                                        return box.scrollWidth - box.clientWidth; }""")
    above_fold = page.evaluate("""() => Array.from(document.querySelectorAll('#result_list tbody tr'))
                                         .filter(row => row.getBoundingClientRect().bottom <= window.innerHeight).length""")
    shoot(page, name)
    assert overflow <= 0, f"{name}: {overflow} px of columns behind a scrollbar"
    assert above_fold > 7, f"{name}: only {above_fold} rows above the fold"
