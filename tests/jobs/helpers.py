from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import transport
from jobs.models import Job
from jobs.workers import TrackedSimpleWorker
from jobs.reconciler import reconcile


def work(*queues: str) -> None:
    """Drain the queues with an in-process tracked SimpleWorker."""
    names = queues or ("critical", "high", "default", "low")
    worker = TrackedSimpleWorker([transport.get_queue(name) for name in names],
                                 connection=transport.get_connection())
    worker.work(burst=True)


def status_of(job: Job) -> str:
    """The job's status as stored now: a worker in another process moves it, not this copy."""
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)


def run_until_settled(job: Job, rounds: int = 10) -> Job:
    """Work and reconcile (which relays due retries) until the job is finished."""
    for _ in range(rounds):
        work()
        job.refresh_from_db()
        if job.is_finished:
            return job
        Job.objects.filter(pk=job.pk, run_at__isnull=False).update(run_at=job.created_at)  # retries due now
        reconcile()
    return job


class CountUpdates(CaptureQueriesContext):
    def updates_of(self, table: str, column: str) -> int:
        return sum(1 for q in self.captured_queries
                   if q["sql"].startswith(f'UPDATE "{table}"') and f'"{column}"' in q["sql"])


def count_queries():
    return CountUpdates(connection)
