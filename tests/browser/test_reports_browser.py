"""A tenant member asks for a report from the site's own pages in a real browser, watches the status
page turn to ready without reloading, and downloads the PDF; then finds it in the admin."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect

from reports.models import Report
from tests.browser.test_admin_browser import SCREENSHOTS, browser_page, shoot  # noqa: F401 (fixture)
from tests.support import FAST_ENGINE_ENV, Process

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def report_worker(private_redis, settings, tmp_path):
    """A real worker process; it and the live server share one reports folder."""
    folder = tmp_path / "reports"
    settings.STORAGES = {**settings.STORAGES, "reports": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(folder), "base_url": None}}}
    process = Process("rqworker", "default", redis_url=private_redis.url,
                      env={**FAST_ENGINE_ENV, "REPORTS_ROOT": str(folder)})
    yield process
    process.terminate()


def test_a_member_requests_a_pdf_watches_it_finish_and_downloads_it(browser_page, live_server, report_worker, acme,
                                                                     globex, victor, tmp_path):
    page = browser_page

    page.goto(f"{live_server.url}/reports/")
    page.wait_for_url("**/accounts/login/**")
    page.fill("#id_username", "victor")
    page.fill("#id_password", "victor-pw-1")
    page.click("button[type=submit]")
    page.wait_for_url("**/reports/")
    page.click("text=New report")
    choices = page.locator(".types").inner_text()
    assert "Job activity" in choices and "Tenant data export" not in choices  # a viewer's choices
    page.click("text=Staff audit")

    assert page.locator("#id_tenant option").all_inner_texts() == ["Acme Corp"]  # never globex
    page.select_option("#id_format", "pdf")
    page.fill("#id_title", "<b>Audit</b> for the board")
    page.fill("#id_p-start", "2026-11-20")
    page.fill("#id_p-end", "2026-11-01")
    page.click("button[type=submit]")
    expect(page.locator(".has-errors")).to_contain_text("Must be on or after the start date.")
    assert page.input_value("#id_title") == "<b>Audit</b> for the board"  # what was typed is kept
    shoot(page, "report-form-errors")

    page.fill("#id_p-start", "2026-11-01")
    page.fill("#id_p-end", "2026-11-20")
    page.check("#id_notify")
    page.click("button[type=submit]")
    page.wait_for_url("**/reports/*-*/")
    page.evaluate("window.__stayedPut = true")
    expect(page.locator('[data-field="state_label"]')).to_have_text("Ready", timeout=60_000)
    expect(page.locator('[data-field="download_url"]')).to_be_visible()
    assert page.evaluate("window.__stayedPut") is True  # it followed along without reloading
    shoot(page, "report-status-ready")

    with page.expect_download() as caught:
        page.click('[data-field="download_url"]')
    saved = tmp_path / "downloaded.pdf"
    caught.value.save_as(saved)
    assert saved.read_bytes().startswith(b"%PDF-")
    text = subprocess.run(["pdftotext", str(saved), "-"], capture_output=True, text=True, check=True).stdout
    assert "<b>Audit</b> for the board" in text and "Acme Corp" in text
    report = Report.objects.get()
    assert (report.requested_by, report.notify, report.rows) == (victor, True, 0)

    page.goto(f"{live_server.url}/admin/reports/report/")
    expect(page.locator("#result_list")).to_contain_text("<b>Audit</b> for the board")
    shoot(page, "admin-reports")
