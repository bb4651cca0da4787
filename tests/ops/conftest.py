"""Operations tests: an ops webhook receiver on loopback (the remote endpoint), jobs in given states."""
from __future__ import annotations

import http.server
import json
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import enqueue
from jobs.models import Job
from jobs.ops import probes


class Receiver:
    """The ops team's webhook receiver: answers every POST with `status` and keeps what it got."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ops-hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_HTTP = settings.WEBHOOKS_ALLOW_LOOPBACK = True
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fresh_redis_state():
    """Each test sees Redis as it is now, not as an earlier test's cached look saw it."""
    probes.forget_redis_state()
    yield
    probes.forget_redis_state()


def jobs_in(tenant, status: str, count: int = 1, *, ago: timedelta = timedelta(0), kind: str = "diagnostics.ping",
            **fields) -> list[Job]:
    """`count` jobs of `tenant` moved straight to `status`, last updated `ago`."""
    jobs = [enqueue(kind, tenant=tenant, payload={}) for _ in range(count)]
    when = timezone.now() - ago
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(status=status, updated_at=when, **fields)
    return list(Job.objects.filter(pk__in=[job.pk for job in jobs]))
