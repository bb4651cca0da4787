"""Shared set-up for the benchmarks: a private redis-server and a benchmark PostgreSQL database."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from tests.support import RedisServer  # noqa: E402


def setup_database(name: str) -> str:
    """Point DATABASE_URL at a benchmark database of our own (created when missing) and migrate it."""
    import psycopg

    admin = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + "/" + name
    os.environ["DATABASE_URL"] = url
    return url


def setup_django(redis_url: str) -> None:
    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "bench")
    os.environ["JOBS_LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("TRACKED_TASK_MODULES", "tasks")  # bench/tasks.py's Django task
    # ... which every process the bench starts must find too (manage.py rqscheduler failed at start without it).
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "bench"), os.environ.get("PYTHONPATH")]))
    import django

    django.setup()
    import tasks  # noqa: F401  (registers bench.noop)


def reset(redis_server: RedisServer) -> None:
    """Empty Redis and the job tables between runs. TRUNCATE rather than DELETE: deleted rows stay in the
    tables and their indexes as dead tuples until a VACUUM, and a PostgreSQL without autovacuum (this
    machine's, for one) never runs one, so each repetition would be slower than the one before it."""
    from django.db import connection

    from jobs.models import Job

    redis_server.client().flushall()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {Job._meta.db_table} CASCADE")


__all__ = ["RedisServer", "reset", "setup_database", "setup_django", "ROOT"]
