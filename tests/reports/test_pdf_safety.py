"""WeasyPrint renders only what the report is: no file:// reads, no network, bounded time and memory."""
from __future__ import annotations

import base64
import http.server
import io
import subprocess
import threading

import pytest

from reports.models import ReportState
from reports.pdf import BASE_URL, PdfRenderError, locked_fetcher, pdf_write
from reports.services import report_request, report_storage
from tests.jobs.helpers import work
from tests.reports.conftest import RANGE, pdf_text



def png() -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "#205e8c").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def listener():
    """A web server on this machine that records every request: anything it sees was fetched."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/css")
            self.end_headers()
            self.wfile.write(b"body { color: red }")

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()


@pytest.mark.django_db(transaction=True)
def test_a_hostile_title_is_printed_as_text_and_nothing_is_fetched(acme, alice, listener, tmp_path):
    url, seen = listener
    title = (f'<b>Q3</b><img src="file:///etc/passwd"><link rel="stylesheet" href="{url}/title.css">'
             f'<link href="http://169.254.169.254/">')
    report = report_request(tenant=acme, user=alice, type="jobs.audit", format="pdf", parameters=RANGE,
                            title=title)
    work()
    report.refresh_from_db()
    assert report.state == ReportState.READY, report.error
    path = tmp_path / "hostile.pdf"
    with report_storage().open(report.path, "rb") as stored:
        path.write_bytes(stored.read())
    text = " ".join(pdf_text(path).split())
    assert '<b>Q3</b><img src="file:///etc/passwd">' in text
    assert "169.254.169.254" in text and "root:" not in text
    assert seen == []


def test_raw_html_cannot_read_files_or_reach_the_network(listener, tmp_path, settings):
    """Even markup that escaping never lets through fetches nothing: the fetcher is the last line."""
    url, seen = listener
    html = f"""<html><head>
      <link rel="stylesheet" href="{url}/a.css">
      <link rel="attachment" href="file:///etc/passwd">
      <style>@import url("{url}/b.css"); body {{ background: url("file:///etc/hostname") }}</style>
      </head><body>
      <p>visible text</p>
      <img src="file:///etc/passwd"><img src="{url}/c.png"><img src="http://169.254.169.254/latest/meta-data/">
      <img src="/static/../../../../etc/passwd"><img src="{BASE_URL}static/%2e%2e/%2e%2e/etc/passwd">
      <iframe src="file:///etc/passwd"></iframe><object data="{url}/d"></object><embed src="file:///etc/passwd">
      <img src="data:image/png;base64,{png()}">
      </body></html>"""
    out = io.BytesIO()
    pdf_write(html, out)
    path = tmp_path / "raw.pdf"
    path.write_bytes(out.getvalue())
    assert "visible text" in pdf_text(path)
    assert seen == []
    attachments = subprocess.run(["pdfdetach", "-list", str(path)], capture_output=True, text=True, check=True)
    assert attachments.stdout.startswith("0 embedded files")
    assert b"root:x:0:0" not in out.getvalue()
    images = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True)
    assert len(images.stdout.strip().splitlines()) == 3  # the header, its rule, and the one data: image


def test_the_fetcher_serves_data_uris_and_static_files_only(listener):
    url, seen = listener
    fetcher = locked_fetcher()
    assert fetcher.fetch("data:text/plain,hello").read() == b"hello"
    css = fetcher.fetch(f"{BASE_URL}static/reports/report.css")
    assert b"@page" in css.read() and css.headers.get_content_type() == "text/css"
    for refused in ["file:///etc/passwd", f"{url}/x", "http://169.254.169.254/", "ftp://127.0.0.1/x",
                    f"{BASE_URL}static/../../config/settings.py", f"{BASE_URL}static/%2e%2e/%2e%2e/etc/passwd",
                    f"{BASE_URL}static//etc/passwd", f"{BASE_URL}other/path", "https://report.invalid.evil.test/"]:
        with pytest.raises(ValueError):
            fetcher.fetch(refused)
    assert seen == []


def test_a_render_over_its_memory_bound_fails_with_a_reason(settings):
    settings.REPORTS_PDF_MAX_MEMORY_MB = 250
    rows = "".join(f"<tr><td>{n}</td><td>row {n} of a long table</td></tr>" for n in range(5000))
    with pytest.raises(PdfRenderError, match="needed more than 250 MB"):
        pdf_write(f"<table>{rows}</table>", io.BytesIO())


def test_a_render_over_its_time_bound_is_stopped(settings):
    settings.REPORTS_PDF_TIMEOUT = 0.3
    with pytest.raises(PdfRenderError, match=r"longer than 0.3 s"):
        pdf_write("<p>slow enough: the child's start alone takes longer</p>", io.BytesIO())


@pytest.mark.django_db(transaction=True)
def test_a_report_whose_pdf_cannot_render_fails_without_retrying(acme, alice, history, settings):
    settings.REPORTS_PDF_TIMEOUT = 0.3
    report = report_request(tenant=acme, user=alice, type="jobs.activity", format="pdf", parameters=RANGE)
    work()
    report.refresh_from_db()
    report.job.refresh_from_db()
    assert report.state == ReportState.FAILED
    assert "longer than 0.3 s" in report.error
    assert (report.job.status, report.job.attempts) == ("failed", 1)
