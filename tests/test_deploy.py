"""What docs/deploy.md promises, with real processes: the Procfile's commands run, SIGTERM lets the
current job finish, workers find Redis through Sentinel, and the web process behind its proxy."""
from __future__ import annotations

import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from jobs import enqueue
from jobs.models import Job, Outcome, Status
from reports.models import Report
from reports.services import report_signed_url
from tests.jobs.helpers import status_of
from tests.support import FAST_ENGINE_ENV, ROOT, Process, database_url, free_port, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def procfile_process(name: str, redis_url: str, *extra: str, env=None) -> Process:
    """The Procfile's command for `name`, run as written (plus `extra` arguments)."""
    argv = shlex.split(procfile()[name])
    assert argv[:2] == ["python", "manage.py"], argv
    return Process(*argv[2:], *extra, redis_url=redis_url, env={**FAST_ENGINE_ENV, **(env or {})})


def test_the_procfile_names_web_worker_scheduler_and_release():
    entries = procfile()
    assert set(entries) == {"release", "web", "worker", "scheduler"}
    assert "rqworker critical high default low" in entries["worker"]
    assert "--serializer rq.serializers.JSONSerializer" in entries["worker"]
    # gunicorn accepts the configuration it is given.
    gunicorn = Path(sys.executable).with_name("gunicorn")
    web = shlex.split(entries["web"])
    checked = subprocess.run([str(gunicorn), *web[1:], "--check-config"], cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "SECRET_KEY": "x", "DATABASE_URL": database_url()}, timeout=60)
    assert checked.returncode == 0, checked.stderr


def test_sigterm_lets_the_current_job_finish_and_takes_no_new_one(acme, private_redis, processes):
    running = enqueue("diagnostics.ping", tenant=acme, payload={"seconds": 3, "steps": 6})
    worker = procfile_process("worker", private_redis.url)
    processes.append(worker)
    wait_for(lambda: status_of(running) == Status.RUNNING, timeout=20, what="the job to start")
    waiting = enqueue("diagnostics.ping", tenant=acme, payload={})
    os.kill(worker.pid, signal.SIGTERM)  # the worker only, as KillMode=mixed and platforms do
    exit_code = worker.popen.wait(timeout=30)
    assert exit_code == 0, worker.output()
    attempt = Job.objects.get(pk=running.pk).attempt_set.get()
    assert (status_of(running), attempt.outcome) == (Status.SUCCEEDED, Outcome.SUCCEEDED)
    assert attempt.ended_at is not None
    assert status_of(waiting) == Status.QUEUED  # left for the next worker, not started and dropped
    assert not Job.objects.get(pk=waiting.pk).attempt_set.exists()


def test_a_second_sigterm_ends_the_job_and_it_is_run_again(acme, private_redis, processes):
    job = enqueue("diagnostics.ping", tenant=acme, payload={"seconds": 20, "steps": 20})
    worker = procfile_process("worker", private_redis.url)
    wait_for(lambda: status_of(job) == Status.RUNNING, timeout=20, what="the job to start")
    os.kill(worker.pid, signal.SIGTERM)
    time.sleep(1.5)  # RQ ignores a second signal within a second of the first
    os.kill(worker.pid, signal.SIGTERM)  # cold shutdown: the horse is killed
    worker.popen.wait(timeout=30)
    processes.append(procfile_process("worker", private_redis.url))
    wait_for(lambda: Job.objects.get(pk=job.pk).attempt_set.count() == 2, timeout=60,
             what="the interrupted job's next attempt")
    first = Job.objects.get(pk=job.pk).attempt_set.get(number=1)
    assert first.outcome in (Outcome.ABANDONED, Outcome.FAILED), first.outcome
    assert first.ended_at is not None
    processes.pop().kill9()  # not a warm stop, which would wait out the second attempt's 20 seconds


class Sentinel:
    """A redis-server in Sentinel mode watching `master_port` under the name `jobs`."""

    def __init__(self, master_port: int) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="jobs-test-sentinel-")
        config = Path(self.dir) / "sentinel.conf"
        config.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                          f"sentinel monitor jobs 127.0.0.1 {master_port} 1\n")
        self.process = subprocess.Popen(["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

    def master(self):
        import redis

        try:
            return redis.Redis(port=self.port, socket_timeout=1).sentinel_get_master_addr_by_name("jobs")
        except redis.RedisError:
            return None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def test_workers_and_the_scheduler_find_redis_through_sentinel(acme, private_redis, processes):
    sentinel = Sentinel(private_redis.port)
    try:
        wait_for(lambda: sentinel.master() is not None, timeout=10, what="the sentinel to know the master")
        env = {"REDIS_SENTINELS": f"127.0.0.1:{sentinel.port}", "REDIS_SENTINEL_MASTER": "jobs",
               "REDIS_URL": "redis://127.0.0.1:1/0"}  # unused: nothing may fall back to it
        processes.append(procfile_process("worker", private_redis.url, env=env))
        processes.append(procfile_process("scheduler", private_redis.url, env=env))
        now = enqueue("diagnostics.ping", tenant=acme, payload={})
        later = enqueue("diagnostics.ping", tenant=acme, payload={}, delay=1)  # relayed by the scheduler
        wait_for(lambda: status_of(now) == status_of(later) == Status.SUCCEEDED, timeout=30,
                 what="both jobs to run through the Sentinel-found master")
    finally:
        sentinel.stop()


class WebProcess:
    """The Procfile's web command (gunicorn with config/gunicorn.py) on a free loopback port, with the
    production settings; its stdout and stderr kept apart."""

    def __init__(self, redis_url: str, **extra_env: str) -> None:
        self.port = free_port()
        self.stdout = tempfile.NamedTemporaryFile(prefix="jobs-test-web-", suffix=".out", delete=False)
        self.stderr = tempfile.NamedTemporaryFile(prefix="jobs-test-web-", suffix=".err", delete=False)
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "false",
               "ALLOWED_HOSTS": "127.0.0.1", "DATABASE_URL": database_url(), "REDIS_URL": redis_url,
               "BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": "1", "FORWARDED_ALLOW_IPS": "127.0.0.1",
               "LOG_FORMAT": "json", **extra_env}
        argv = shlex.split(procfile()["web"])
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.popen = subprocess.Popen([str(gunicorn), *argv[1:]], cwd=ROOT, env=env, stdout=self.stdout,
                                      stderr=self.stderr)
        wait_for(self.answers, timeout=30, what="gunicorn to answer")

    def answers(self) -> bool:
        try:
            return self.get("/healthz")[0] == 200
        except OSError:
            return False

    def get(self, path: str, **headers: str) -> tuple[int, dict[str, str]]:
        status, headers, _ = self.fetch(path, **headers)
        return status, headers

    def fetch(self, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def send_raw(self, request_line: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(request_line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(100)

    def stop(self) -> tuple[str, str]:
        """Stops gunicorn (its access lines are flushed by then) and returns (stdout, stderr)."""
        if self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(timeout=30)
        return (Path(self.stdout.name).read_text(errors="replace"), Path(self.stderr.name).read_text(errors="replace"))


@pytest.fixture
def web(private_redis):
    process = WebProcess(private_redis.url)
    yield process
    process.stop()


def access_lines(stderr: str) -> list[dict]:
    """Every access line, each parsed as the JSON object it must be on its own."""
    return [json.loads(line) for line in stderr.splitlines() if "gunicorn.access" in line]


def test_it_logs_each_request_as_one_json_line_with_secret_paths_masked(web, alice):
    download = report_signed_url(report=Report(), absolute=False)  # a 404 once followed: no such report
    download_token = download.split("/")[-2]
    reset_token = default_token_generator.make_token(alice)
    reset = f"/accounts/reset/{urlsafe_base64_encode(force_bytes(alice.pk))}/{reset_token}/"
    hostile = [
        b'GET /x"},"forged":"quote","y":{" HTTP/1.1',
        b'GET /x\\"},"forged":"backslash","y":{" HTTP/1.1',
        b'GET /x\n{"logger":"gunicorn.access","forged":"newline"} HTTP/1.1',
    ]

    as_proxied = {"X-Forwarded-Proto": "https"}  # from 127.0.0.1, one of FORWARDED_ALLOW_IPS
    assert web.get(download, **as_proxied)[0] == 404
    status, headers = web.get(reset, **as_proxied)
    assert status == 302 and headers["Location"].endswith("/set-password/")  # the token was good
    assert web.get(download.replace("download", "%64ownload"), **as_proxied)[0] == 404
    for request_line in hostile:
        assert web.send_raw(request_line).startswith(b"HTTP/1.1 ")
    stdout, stderr = web.stop()

    lines = access_lines(stderr)
    # A thread logs its request after answering it, so the next request's line may come first.
    assert sorted(line["request"] for line in lines[-6:]) == sorted([
        "GET /reports/download/[redacted]/ HTTP/1.1",
        "GET /accounts/reset/[redacted]/ HTTP/1.1",
        "GET /reports/download/[redacted]/ HTTP/1.1",
        *(line.decode() for line in hostile),
    ])
    assert all(line["logger"] == "gunicorn.access" and "forged" not in line for line in lines)
    assert download_token not in stderr and reset_token not in stderr  # nor in Django's "Not Found" line
    assert "gunicorn.access" not in stdout


def test_it_redirects_plain_http_to_https_but_not_the_probes_or_the_proxy_s_https(web):
    status, headers = web.get("/accounts/login/")
    assert status == 301 and headers["Location"] == f"https://127.0.0.1:{web.port}/accounts/login/"
    assert web.get("/healthz")[0] == 200
    assert web.get("/readyz")[0] in (200, 503)  # answered, not redirected
    status, headers = web.get("/accounts/login/", **{"X-Forwarded-Proto": "https"})
    assert status == 200 and headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_the_release_step_collects_static_files_that_the_web_process_serves_itself(private_redis, tmp_path):
    # As deployed: the Procfile's release command, then its web command, with DEBUG off and no proxy rule.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "false", "SECRET_KEY": "x" * 50,
           "DATABASE_URL": database_url(), "STATIC_ROOT": str(tmp_path / "static"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # `python` is this virtualenv's
    release = subprocess.run(procfile()["release"], shell=True, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300)
    assert release.returncode == 0, release.stderr
    web = WebProcess(private_redis.url, STATIC_ROOT=str(tmp_path / "static"))
    try:
        proxied = {"X-Forwarded-Proto": "https"}
        status, headers, body = web.fetch("/static/admin/css/base.css", **proxied)
        assert status == 200 and headers["Content-Type"].startswith("text/css") and b"body" in body
        status, headers, _ = web.fetch("/static/admin/css/base.css", **proxied, **{"Accept-Encoding": "gzip"})
        assert status == 200 and headers.get("Content-Encoding") == "gzip"
        assert web.get("/static/nothing-here.css", **proxied)[0] == 404
    finally:
        web.stop()
