"""Celery with django-celery-results, the peer `./run bench` compares the default worker with.

The bench calls `ensure()` (a virtualenv of its own under .run/, installed from
celery-requirements.txt) and then `run(...)`, which runs this file in that virtualenv:

    python celery_peer.py run --n 2000 --job noop --concurrency 2 [--reuse 1000]

It publishes the tasks, starts `celery worker` (prefork), waits until every result is stored, stops
the worker and prints one JSON line: jobs/s between the first and the last stored result, and per task
the Redis commands, PostgreSQL transactions and new PostgreSQL sessions of the run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENV = ROOT / ".run" / "bench-celery-venv"
REQUIREMENTS = HERE / "celery-requirements.txt"


# --- The benchmark's side (the project's virtualenv) -----------------------------------------------

def ensure() -> Path:
    """The peer's Python, its virtualenv created or brought up to date with the requirements."""
    python = VENV / "bin" / "python"
    stamp = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    marker = VENV / ".installed"
    if python.exists() and marker.exists() and marker.read_text() == stamp:
        return python
    print("setting up the Celery peer's virtualenv (.run/bench-celery-venv)", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
                               capture_output=True, text=True)
    if installed.returncode:
        sys.exit(f"could not install the Celery peer's packages:\n{installed.stdout}{installed.stderr}")
    marker.write_text(stamp)
    return python


def run(python: Path, *, n: int, job: str, concurrency: int, broker_url: str, database: str,
        reuse: int | None = None, ms: int = 20) -> dict:
    args = [str(python), str(HERE / "celery_peer.py"), "run", "--n", str(n), "--job", job, "--ms", str(ms),
            "--concurrency", str(concurrency)]
    if reuse:
        args += ["--reuse", str(reuse)]
    env = {**os.environ, "PEER_BROKER_URL": broker_url, "PEER_DB_NAME": database, "PYTHONPATH": str(HERE)}
    out = subprocess.run(args, check=True, env=env, capture_output=True, text=True, cwd=HERE)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- The peer's side (its own virtualenv) ----------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--job", choices=["noop", "sleep", "burn"], default="noop")
    parser.add_argument("--ms", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--reuse", type=int, default=0, help="CELERY_DB_REUSE_MAX (0: Celery's default)")
    args = parser.parse_args()

    import django
    import redis
    from django.core.management import call_command
    from django.db import connection

    os.environ["DJANGO_SETTINGS_MODULE"] = "celery_settings"
    django.setup()
    call_command("migrate", verbosity=0)
    from celery_project import app
    from django_celery_results.models import TaskResult

    broker = redis.Redis.from_url(os.environ["PEER_BROKER_URL"])
    broker.flushdb()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {TaskResult._meta.db_table}")
    task = app.tasks[f"peer.{args.job}"]
    with app.producer_or_acquire() as producer:
        for i in range(args.n):
            task.apply_async((i if args.job == "noop" else args.ms,), producer=producer)
    connection.close()

    before = counters(broker)
    env = {**os.environ}
    if args.reuse:
        env["PEER_DB_REUSE_MAX"] = str(args.reuse)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_project", "worker", "--pool", "prefork",
         "--concurrency", str(args.concurrency), "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
         "--without-heartbeat"],
        env=env, cwd=HERE, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600
        while TaskResult.objects.count() < args.n:
            if worker.poll() is not None:
                raise SystemExit(f"celery worker exited: {worker.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise SystemExit("celery run timed out")
            time.sleep(0.2)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    connection.close()
    after = counters(broker)
    done = sorted(TaskResult.objects.values_list("date_done", flat=True))
    failed = TaskResult.objects.exclude(status="SUCCESS").count()
    if failed:
        raise SystemExit(f"{failed} Celery tasks did not succeed")
    window = (done[-1] - done[0]).total_seconds()
    per_task = {key: (after[key] - before[key]) / args.n for key in before}
    print(json.dumps({"rate": (len(done) - 1) / window, **per_task}))


def counters(broker) -> dict[str, int]:
    """Redis commands (INFO commandstats), and PostgreSQL transactions and sessions of this database."""
    from django.db import connection

    stats = broker.info("commandstats")
    commands = sum(entry["calls"] for name, entry in stats.items() if name != "cmdstat_info")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT xact_commit + xact_rollback, sessions FROM pg_stat_database "
                       "WHERE datname = current_database()")
        transactions, sessions = cursor.fetchone()
    return {"redis_commands": commands, "pg_transactions": transactions, "pg_sessions": sessions}


if __name__ == "__main__":
    main()
