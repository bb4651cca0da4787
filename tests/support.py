"""Real processes for the tests: private redis-servers and worker/scheduler subprocesses."""
from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of our own on a free port; tests may stop, restart or flush it freely."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="jobs-test-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self.is_up, timeout=10, what=f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def is_up(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=1)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def database_url() -> str:
    """The test database as a URL, for subprocesses."""
    from django.db import connection

    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = settings["USER"] or ""
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgresql://{auth}{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"


class Process:
    """A manage.py subprocess in its own process group (so kill -9 takes its work horses too)."""

    def __init__(self, *args: str, redis_url: str, env: dict[str, str] | None = None, clock_shift: float = 0) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="jobs-test-proc-", suffix=".log", delete=False)
        full_env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url(),
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        # A host whose clock is `clock_shift` seconds off (tests/shifted_clock.py).
        launcher = ["tests/shifted_clock.py", str(clock_shift)] if clock_shift else []
        self.popen = subprocess.Popen([sys.executable, *launcher, "manage.py", *args], cwd=ROOT, env=full_env,
                                      stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def kill9(self) -> None:
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def terminate(self, timeout: float = 20) -> int:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        return self.popen.returncode


FAST_ENGINE_ENV = {
    "JOBS_RECONCILE_SECONDS": "1",
    "JOBS_HEARTBEAT_SECONDS": "0.5",
    "JOBS_ABANDON_AFTER_SECONDS": "3",
    "JOBS_LOST_AFTER_SECONDS": "1",
    "JOBS_TICK_SECONDS": "0.2",
}


class HttpReceiver:
    """An HTTP server on loopback standing in for a remote endpoint (a customer's webhook receiver, the
    ops team's). Each POST gets the next of `replies` (the last one repeats): (status, headers, body), or
    a callable(handler) that answers itself. Keeps every request as (headers, body)."""

    def __init__(self, *replies, path: str = "/hook") -> None:
        self.replies = list(replies) or [(200, {}, b"")]
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                reply = receiver.replies.pop(0) if len(receiver.replies) > 1 else receiver.replies[0]
                if callable(reply):
                    return reply(self)
                status, headers, content = reply
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def answer(self, status: int, body: bytes = b"") -> None:
        """From now on, answer every POST with `status`."""
        self.replies = [(status, {}, body)]

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
