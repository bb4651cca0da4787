"""Reports' story: acme has a month of jobs (some failed, with attempts), staff actions and a webhook
endpoint with deliveries; globex has its own, which must never show up in acme's files."""
from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

import pytest
from django.utils import timezone

from jobs.models import Attempt, AuditAction, AuditEvent, Job, Status
from jobs.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookMessage

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "reports"
DAY = datetime.date(2026, 11, 2)  # a Monday, in the range every test asks for


@pytest.fixture(autouse=True)
def report_files(settings, tmp_path):
    """Report files go to a folder of the test's own."""
    settings.STORAGES = {**settings.STORAGES, "reports": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "reports"), "base_url": None}}}
    settings.SITE_URL = "http://testserver"
    return tmp_path / "reports"


def at(day: int, hour: int = 10, seconds: float = 0) -> datetime.datetime:
    start = datetime.datetime.combine(DAY, datetime.time(hour), tzinfo=datetime.UTC)
    return start + datetime.timedelta(days=day - 1, seconds=seconds)


def make_job(tenant, *, kind: str, status: str, day: int, took: float | None = None, error: str = "",
             fingerprint: str = "") -> Job:
    created = at(day)
    started = created + datetime.timedelta(seconds=1) if took is not None else None
    finished = started + datetime.timedelta(seconds=took) if took is not None else None
    job = Job.objects.create(tenant=tenant, kind=kind, queue="default", status=status, created_at=created,
                             updated_at=finished or created, started_at=started, finished_at=finished, attempts=1,
                             payload={"owner": tenant.slug}, last_error=error, error_fingerprint=fingerprint)
    if started:
        Attempt.objects.create(job=job, number=1, started_at=started, heartbeat_at=finished, ended_at=finished,
                               outcome="succeeded" if status == Status.SUCCEEDED else "failed",
                               worker_name=f"{tenant.slug}-worker", error_message=error)
    return job


@pytest.fixture
def history(acme, globex, alice):
    """acme: 10 email.send jobs (8 succeeded taking 1..8 s, 2 failed alike), 3 report jobs, one
    queued; 2 staff actions; one endpoint with 3 good and 1 bad delivery. globex: a job and a secret."""
    for n in range(1, 9):
        make_job(acme, kind="email.send", status=Status.SUCCEEDED, day=n, took=float(n))
    for n in (3, 4):
        make_job(acme, kind="email.send", status=Status.FAILED, day=n, took=0.5,
                 error=f"SMTPRecipientsRefused: user{n}@acme.test refused", fingerprint="f" * 16)
    for n in (1, 2, 3):
        make_job(acme, kind="reports.generate", status=Status.SUCCEEDED, day=5, took=10.0 * n)
    make_job(acme, kind="email.send", status=Status.QUEUED, day=9)
    make_job(globex, kind="globex.secret-kind", status=Status.FAILED, day=2, took=1.0,
             error="globex-only-error", fingerprint="b" * 16)
    for action, day in ((AuditAction.RETRY, 3), (AuditAction.CANCEL, 4)):
        event = AuditEvent.objects.create(actor=alice, actor_name="alice", action=action, tenant=acme,
                                          target="2 jobs", reason="=HYPERLINK(\"http://evil\")", requested=2, done=2)
        AuditEvent.objects.filter(pk=event.pk).update(created_at=at(day))
    AuditEvent.objects.create(actor_name="charlie", action=AuditAction.RETRY, tenant=globex, target="globex-only")
    endpoint = WebhookEndpoint.objects.create(tenant=acme, url="https://hooks.acme.test/in", description="CRM",
                                              events=["job.failed"])
    WebhookEndpoint.objects.create(tenant=globex, url="https://hooks.globex.test/in", description="globex-only")
    message = WebhookMessage.objects.create(tenant=acme, endpoint=endpoint, event_type="job.failed", body="{}")
    for attempt, ok in enumerate((False, True, True, True), 1):
        delivery = WebhookDelivery.objects.create(message=message, attempt=attempt, url=endpoint.url,
                                                  status_code=200 if ok else 503, succeeded=ok, duration_ms=40,
                                                  error="" if ok else "HTTP 503 from the endpoint")
        WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=at(attempt))
    return {"endpoint": endpoint, "secret": endpoint.secret}


RANGE = {"start": "2026-11-01", "end": "2026-11-15"}  # the history, not the jobs the tests start


def pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True,
                          text=True).stdout


def pdf_pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, check=True, text=True).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


def pdf_to_png(path: Path, name: str) -> Path:
    """Page 1 as a PNG under tests/artifacts/reports/, for a person to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", str(path),
                    str(ARTIFACTS / name)], check=True)
    return ARTIFACTS / f"{name}.png"


def json_lines(raw: bytes) -> list[dict]:
    return [json.loads(line) for line in raw.decode().splitlines()]
