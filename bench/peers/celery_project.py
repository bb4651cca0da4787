"""The Celery peer's app: prefork workers, Redis as the broker, every result stored in PostgreSQL by
django-celery-results (what a Django team running Celery with an auditable task history uses). Runs in
its own virtualenv (bench/peers/celery_peer.py) and never imports the project."""
from __future__ import annotations

import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "celery_settings")

from celery import Celery  # noqa: E402

app = Celery("peer", broker=os.environ["PEER_BROKER_URL"])
app.conf.update(
    result_backend="django-db",
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
# Celery's Django fixup closes the database connection around every task unless told to reuse it
# (PEER_DB_REUSE_MAX: the tasks a connection serves before it is closed).
if os.environ.get("PEER_DB_REUSE_MAX"):
    app.conf["CELERY_DB_REUSE_MAX"] = int(os.environ["PEER_DB_REUSE_MAX"])


@app.task(name="peer.noop")
def noop(x: int) -> int:
    return x + 1


@app.task(name="peer.sleep")
def sleep(ms: int) -> int:
    time.sleep(ms / 1000)
    return ms


@app.task(name="peer.burn")
def burn(ms: int) -> int:
    end = time.process_time() + ms / 1000
    while time.process_time() < end:
        pass
    return ms
