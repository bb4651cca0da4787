"""What someone who can write to Redis plants: RQ job hashes made by hand, in every list and registry.

Nothing here goes through RQ's own enqueue: the hashes are written field by field, as an attacker would.
"""
from __future__ import annotations

import json
import os
import pickle
import socket
import threading
import time
import zlib
from pathlib import Path

from jobs import transport
from jobs.transport import ENTRY_POINT

QUEUES = ("critical", "high", "default", "low")
# Where a planted job can sit, as the dashboard lists them.
PLACES = ("queue", "started", "expired-started", "failed", "finished", "deferred", "scheduled")
SCHEDULER_ENTRIES = "rq:scheduler:scheduled_jobs"


class Marker:
    """Unpickling this creates the marker file: proof that a pickle from Redis ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def touch_marker(*args, **kwargs) -> None:
    """A callback planted jobs name: it leaves a file where PLANTED_MARKER_DIR says if anything calls it."""
    folder = Path(os.environ.get("PLANTED_MARKER_DIR", "/nonexistent"))
    if folder.is_dir():
        (folder / f"called-{os.getpid()}-{time.monotonic_ns()}").touch()


def data_blob(func: str, args: list, kwargs: dict | None = None) -> bytes:
    return zlib.compress(json.dumps([func, None, args, kwargs or {}]).encode())


def plant(client, job_id: str, *, queue: str = "default", where: str = "queue", data: bytes | None = None,
          meta: bytes | None = None, status: str | None = None, **fields) -> None:
    """Write an RQ job hash by hand and put it where `where` says (see PLACES, or "scheduler")."""
    rq_queue = transport.get_queue(queue)
    now = time.time()
    status = status or {"queue": "queued", "started": "started", "expired-started": "started", "failed": "failed",
                        "finished": "finished", "deferred": "deferred", "scheduled": "scheduled",
                        "scheduler": "scheduled"}[where]
    mapping = {"data": data if data is not None else data_blob(ENTRY_POINT, [job_id]), "origin": queue,
               "status": status, "created_at": "2026-01-01T00:00:00.000000Z",
               "enqueued_at": "2026-01-01T00:00:00.000000Z", "description": f"planted {where}", **fields}
    if meta is not None:
        mapping["meta"] = meta
    client.hset(f"rq:job:{job_id}", mapping=mapping)
    client.sadd("rq:queues", rq_queue.key)
    if where == "queue":
        client.rpush(rq_queue.key, job_id)
    elif where in ("started", "expired-started"):
        # Members of the started registry are "<job id>:<execution id>", scored by when they expire.
        score = now - 3600 if where == "expired-started" else now + 3600
        client.zadd(rq_queue.started_job_registry.key, {f"{job_id}:exec-{where}": score})
        client.hset(f"rq:execution:{job_id}:exec-{where}", mapping={
            "created_at": "2026-01-01T00:00:00.000000Z", "last_heartbeat": "2026-01-01T00:00:00.000000Z",
            "worker_name": "nobody"})
    elif where == "scheduler":
        client.zadd(SCHEDULER_ENTRIES, {job_id: now - 5})
    else:
        registry = {"failed": rq_queue.failed_job_registry, "finished": rq_queue.finished_job_registry,
                    "deferred": rq_queue.deferred_job_registry, "scheduled": rq_queue.scheduled_job_registry}[where]
        client.zadd(registry.key, {job_id: now + 3600})


def plant_pickles(client, marker_dir: Path) -> list[tuple[str, str, str]]:
    """A pickled-meta job and a pickled-data job in every list and registry of every queue, and in
    rq-scheduler's entries; (queue, place, job id) of each."""
    planted = []
    for queue in QUEUES:
        for where in (*PLACES, "scheduler"):
            for part in ("meta", "data"):
                job_id = f"pickle-{part}-{where}-{queue}"
                payload = pickle.dumps(Marker(marker_dir / job_id))
                blob = {"meta": payload} if part == "meta" else {"data": zlib.compress(payload)}
                plant(client, job_id, queue=queue, where=where, **blob)
                planted.append((queue, where, job_id))
    return planted


class ConnectionTrap:
    """A loopback listener standing in for a metadata service or any other place a planted job would
    have a worker call: it records every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/computeMetadata/v1/instance/service-accounts"
        self.connections = 0
        self._open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self._open:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def webhooks(self) -> bytes:
        hooks = [{"url": self.url, "job_status": status, "method": method, "headers": {"Metadata-Flavor": "Google"},
                  "timeout": 2} for status in ("finished", "failed") for method in ("GET", "POST")]
        return json.dumps(hooks).encode()

    def close(self) -> None:
        self._open = False
        self.sock.close()
