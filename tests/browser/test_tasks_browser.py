"""In the real admin, a tenant's operator finds the Django tasks their tenant started: listed by the
task's path, its page showing the call's arguments, each attempt and its error."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from jobs import tenant_context
from tests.browser.test_admin_browser import browser_page, shoot  # noqa: F401 (fixtures)
from tests.browser.test_operations_browser import log_in
from tests.jobs import django_tasks
from tests.jobs.helpers import work

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_operator_follows_a_failed_django_task_in_the_admin(browser_page, live_server, acme, olga):
    page = browser_page
    with tenant_context(acme, user=olga):
        failed = django_tasks.fails.enqueue()
        django_tasks.add.enqueue(20, b=22)
    work()
    log_in(page, live_server, "olga", "olga-pw-1", "/admin/jobs/job/?kind=tests.jobs.django_tasks.fails")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    page.click(f"text={failed.id[-8:]}")
    content = page.locator("#content-main")
    expect(content).to_contain_text("Django task")
    expect(content).to_contain_text('"args": []')
    expect(content).to_contain_text("This task failed on purpose")
    shoot(page, "django-task-job")
