"""PDF rendering with WeasyPrint, locked down.

The URL fetcher serves `data:` URIs and the project's own static files and refuses everything else:
no `file://`, no network, so no redirects. Every render runs in a child process with a wall-clock
limit (REPORTS_PDF_TIMEOUT) and an address-space limit (REPORTS_PDF_MAX_MEMORY_MB): a report that
would take the worker down takes only the child.

    python -m reports.pdf IN.html OUT.pdf   (what the child runs; Django settings from the environment)
"""
from __future__ import annotations

import logging
import mimetypes
import os
import posixpath
import shutil
import subprocess
import sys
import tempfile
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from django.conf import settings

logger = logging.getLogger(__name__)

# Relative URLs in report templates resolve against this; only its static part is served.
BASE_URL = "https://report.invalid/"


class PdfRenderError(Exception):
    pass


def _static_prefix() -> str:
    return BASE_URL + settings.STATIC_URL.lstrip("/")


def locked_fetcher():
    """A WeasyPrint URL fetcher for data: URIs and the project's static files, nothing else."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class LockedURLFetcher(URLFetcher):
        def __init__(self) -> None:
            super().__init__(allowed_protocols=("data",), allow_redirects=False, timeout=1)

        def fetch(self, url: str, headers=None) -> URLFetcherResponse:
            if url.startswith(_static_prefix()):
                return _static_file(url)
            if urlsplit(url).scheme.lower() != "data":
                logger.warning("report render: refused to fetch %.200s", url)
                raise ValueError(f"Refused: reports may use data: URIs and static files only, not {url[:200]}")
            return super().fetch(url, headers)

    return LockedURLFetcher()


def _static_file(url: str):
    from django.contrib.staticfiles import finders
    from weasyprint.urls import URLFetcherResponse

    relative = unquote(urlsplit(url).path)[len(urlsplit(_static_prefix()).path):]
    normal = posixpath.normpath(relative)
    if normal.startswith(("/", "..")) or normal != relative or "\\" in relative or "\0" in relative:
        raise ValueError(f"Refused static path {relative[:200]!r}")
    found = finders.find(normal)
    if not found:
        raise ValueError(f"No static file {normal!r}")
    with open(found, "rb") as handle:
        body = handle.read()
    content_type = mimetypes.guess_type(normal)[0] or "application/octet-stream"
    return URLFetcherResponse(url, body, {"Content-Type": content_type})


def pdf_from_html(html: str, out: BinaryIO | str) -> None:
    """Render in this process (the child calls this). Tests call it to watch the fetcher."""
    from weasyprint import HTML

    HTML(string=html, base_url=BASE_URL, url_fetcher=locked_fetcher()).write_pdf(out)


OUT_OF_MEMORY = ("MemoryError", "Cannot allocate memory", "Fatal Python error")


def pdf_write(html: str, out: BinaryIO) -> None:
    """Render `html` to `out` in a child process bounded in time and memory; PdfRenderError if it fails."""
    with tempfile.TemporaryDirectory(prefix="report-pdf-") as folder:
        source, target = os.path.join(folder, "in.html"), os.path.join(folder, "out.pdf")
        with open(source, "w", encoding="utf-8") as handle:
            handle.write(html)
        env = {**os.environ, "REPORTS_PDF_CHILD_MEMORY_MB": str(settings.REPORTS_PDF_MAX_MEMORY_MB)}
        try:
            child = subprocess.run([sys.executable, "-m", "reports.pdf", source, target], env=env,
                                   capture_output=True, timeout=settings.REPORTS_PDF_TIMEOUT, cwd=settings.BASE_DIR)
        except subprocess.TimeoutExpired:
            raise PdfRenderError(f"The PDF took longer than {settings.REPORTS_PDF_TIMEOUT:g} s to render.") from None
        if child.returncode != 0:
            errors = child.stderr.decode(errors="replace")
            lines = errors.strip().splitlines()
            reason = lines[-1] if lines else f"exit status {child.returncode}"
            # Out of memory, a child may not manage a traceback at all ("Fatal Python error: ... lost
            # sys.stderr"), so the whole of stderr is read, not only its last line.
            if child.returncode < 0 or any(sign in errors for sign in OUT_OF_MEMORY):
                reason = (f"The PDF needed more than {settings.REPORTS_PDF_MAX_MEMORY_MB} MB to render "
                          f"({reason}).")
            raise PdfRenderError(reason[:500])
        with open(target, "rb") as rendered:
            shutil.copyfileobj(rendered, out)


def _child_main(source: str, target: str) -> None:
    import resource

    limit = int(os.environ.get("REPORTS_PDF_CHILD_MEMORY_MB", "0")) * 1024 * 1024
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    with open(source, encoding="utf-8") as handle:
        html = handle.read()
    pdf_from_html(html, target)


if __name__ == "__main__":
    _child_main(sys.argv[1], sys.argv[2])
