"""Tracked RQ workers: what `manage.py rqworker` runs (settings.RQ["WORKER_CLASS"]).

The worker process claims each attempt and records its outcome itself, over its own long-lived database
connection; the handler runs elsewhere and hands the outcome back:

- `TrackedWorker` (the default): in the worker's long-lived work process (`jobs.work_process`), forked
  once and replaced when it dies, is killed (a stop, a timeout) or has run enough: a fork's isolation
  without a fork per job;
- `TrackedForkingWorker`: in a work horse forked for each job, as RQ's `Worker` does;
- `TrackedSimpleWorker`: in the worker process itself (fastest, no isolation; stop is cooperative).

A child never reuses its parent's database connection and opens one only if the handler uses the database.
"""
from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import tempfile
import time
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.backends.signals import connection_created
from rq.executions import Execution
from rq.job import JobStatus
from rq.job_lifecycle import call_exception_handlers
from rq.serializers import JSONSerializer
from rq.utils import now
from rq.worker import SimpleWorker, Worker, WorkerStatus

from jobs import postgres, pusher, reconciler, relay, runtime, transport
from jobs.models import Outcome, Status
from jobs.transport import TrackedRQJob
from jobs.work_process import WorkProcess

logger = logging.getLogger(__name__)

_ACCEPTED_SERIALIZERS = {None, "json", "rq.serializers.JSONSerializer", JSONSerializer,
                         # django-rq's rqworker passes its pickle default even when nobody asked for it.
                         "rq.serializers.DefaultSerializer"}

# Outcomes the entry point reports to RQ as a success; RQ files every other one as failed.
_RQ_SUCCESSES = (Outcome.SUCCEEDED, Outcome.SNOOZED)

# Connections inherited from the parent; kept referenced so their finalizers never run in the horse
# (closing them there would end the parent's session on the shared socket).
_inherited_connections: list[object] = []


class TrackedWorkerMixin:
    def __init__(self, *args, serializer=None, job_class=None, **kwargs) -> None:
        if serializer not in _ACCEPTED_SERIALIZERS:
            raise ImproperlyConfigured(f"Tracked workers use JSON only; refusing serializer {serializer!r}")
        if not (isinstance(job_class, type) and issubclass(job_class, TrackedRQJob)):
            job_class = TrackedRQJob
        super().__init__(*args, serializer=JSONSerializer, job_class=job_class, **kwargs)
        _relax_commit_durability()
        self._outbox = tempfile.TemporaryFile(prefix="jobs-outbox-")
        self._stop_seen: str | None = None
        self._horse_exit: int | None = None
        self._last_reconcile = 0.0

    def bootstrap(self, *args, **kwargs) -> None:
        super().bootstrap(*args, **kwargs)
        _warn_without_autovacuum()

    # RQ sets this from its pubsub thread when staff stop a job; remember it for the outcome and
    # tell the runtime, which is how a SimpleWorker (no horse to kill) stops at ctx.progress().
    @property
    def _stopped_job_id(self) -> str | None:
        return self.__dict__.get("_stopped_job")

    @_stopped_job_id.setter
    def _stopped_job_id(self, value: str | None) -> None:
        self.__dict__["_stopped_job"] = value
        if value:
            self._stop_seen = value
            runtime.request_stop(value)

    def subscribe(self) -> None:
        # RQ listens for commands (stop a job, shut down) in reads of up to 60 s, and stopping the worker
        # closes that connection only once the read ends: up to a minute added to every shutdown. Reads
        # of a second cost a wake-up a second and let a worker stop at once; commands arrive as before.
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(sleep_time=1, daemon=True,
                                                       exception_handler=self._pubsub_exception_handler)

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        # RQ renews the worker's key several times per job, a round trip each; its TTL is minutes long,
        # so once a second is plenty (running attempts have their own heartbeat in the database).
        now = time.monotonic()
        if pipeline is None and timeout is None and now - self.__dict__.get("_last_beat", -1e9) < 1.0:
            return
        self.__dict__["_last_beat"] = now
        super().heartbeat(timeout, pipeline=pipeline)

    def set_state(self, state: str, pipeline=None) -> None:
        # RQ writes IDLE twice between two jobs; skip the write that changes nothing.
        if pipeline is None and state == self.__dict__.get("_state_written"):
            self._state = state
            return
        self.__dict__["_state_written"] = state
        super().set_state(state, pipeline=pipeline)

    def check_for_suspension(self, burst: bool) -> None:
        # `rqsuspend` is checked once a second rather than before every job (a round trip each).
        now = time.monotonic()
        if now - self.__dict__.get("_suspension_checked", -1e9) < 1.0:
            return
        self.__dict__["_suspension_checked"] = now
        super().check_for_suspension(burst)

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        # Only the engine's own jobs, as the engine made them, get further than this: anything else
        # found in Redis is dropped before RQ marks it started, runs it, or calls out on its behalf.
        while True:
            try:
                taken = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            except Exception as exc:
                # RQ attaches the id to a job it could not even fetch; without this, one unreadable
                # hash planted in a queue would end every worker that pops it.
                if getattr(exc, "job_id", None) is None or getattr(exc, "queue", None) is None:
                    raise
                transport.refuse(exc.job_id, exc.queue, f"it cannot be read ({type(exc).__name__})")
                continue
            if taken is None:
                return None
            job, queue = taken
            reason = transport.refusal_reason(job)
            if reason is None:
                return taken
            transport.refuse(job.id, queue, reason)

    @property
    def dequeue_timeout(self) -> int:
        # Wake up while idle so reconciler passes run even when no job arrives.
        return max(1, min(super().dequeue_timeout, int(settings.JOBS_RECONCILE_SECONDS)))

    @property
    def should_run_maintenance_tasks(self) -> bool:
        return super().should_run_maintenance_tasks or self._reconcile_due()

    def _shutdown(self) -> None:
        # RQ stops an idle worker by raising StopRequested from the signal handler, wherever the worker
        # is: inside a reconciler pass or while recording an outcome, a handler that keeps the worker
        # alive through errors would swallow it, and the worker would never stop. There, the stop waits.
        if self.__dict__.get("_stop_deferred"):
            self.__dict__["_stop_pending"] = True
            return
        super()._shutdown()

    @contextmanager
    def _deferring_stop(self):
        self.__dict__["_stop_deferred"] = True
        try:
            yield
        finally:
            self.__dict__["_stop_deferred"] = False
        if self.__dict__.pop("_stop_pending", False):
            # Now what RQ would have done when the signal came: stop at once if idle (this may be deep
            # in RQ's dequeue loop, which never looks at the flag), after the job if busy.
            super()._shutdown()

    def run_maintenance_tasks(self) -> None:
        if super().should_run_maintenance_tasks:
            super().run_maintenance_tasks()
        if self._reconcile_due():
            self._last_reconcile = time.monotonic()
            with self._deferring_stop():
                try:
                    reconciler.reconcile_if_leader()
                except Exception:
                    # A database or Redis outage must not end the worker; the next pass tries again.
                    logger.exception("Reconciler pass failed")
                    connections.close_all()

    def _reconcile_due(self) -> bool:
        return time.monotonic() - self._last_reconcile >= settings.JOBS_RECONCILE_SECONDS

    def execute_job(self, job, queue) -> None:
        claim = self._claim(job.id)
        os.ftruncate(self._outbox.fileno(), 0)
        self._stop_seen, self._horse_exit = None, None
        runtime.prepare(job_id=job.id, claim=claim, deliver=self._deliver, execute=self.execute_attempt)
        if claim is not None:
            job.timeout = claim.job.timeout  # the record's, not whatever the copy in Redis says
        started = time.monotonic()
        try:
            if claim is None:
                super().execute_job(job, queue)
                return
            try:
                with runtime.heartbeat.beating(claim.attempt.pk):
                    super().execute_job(job, queue)
            finally:
                # Even when RQ's own bookkeeping fails afterwards (Redis gone), the outcome the horse
                # handed back is recorded; a stop asked for meanwhile takes effect once it is.
                with self._deferring_stop():
                    self._finish(claim, self._collect(claim, time.monotonic() - started))
        finally:
            runtime.take_prepared(job.id)
            runtime.forget_stop_request(job.id)

    # Where the handler runs (None: in the process running RQ's job function).
    execute_attempt = None

    def _finish(self, claim: runtime.Claim, result: runtime.AttemptResult) -> None:
        # A database blip must not end the worker (RQ quits on an unhandled error) nor lose the
        # outcome; keep trying for a while, then leave the open attempt to the reconciler.
        for delay in (0.5, 1, 2, 4, 8, 15, 0):
            try:
                finished = runtime.attempt_finish(claim=claim, result=result)
                if result.outcome not in _RQ_SUCCESSES and not (finished and finished.status == Status.FAILED):
                    transport.drop_failed_copy(str(claim.job.pk), claim.job.queue)
                # The slot this job held is free: its tenant's next held job goes now, not at a sweep.
                relay.slot_freed(claim.job.tenant_id, kind=claim.job.kind, queue=claim.job.queue)
                return
            except Exception:
                logger.exception("Job %s: could not record the attempt's outcome; retrying", claim.job.pk)
                connections.close_all()  # reconnect on the next try
                time.sleep(delay)
        logger.error("Job %s: outcome not recorded; the reconciler will treat the attempt as abandoned",
                     claim.job.pk)

    def _claim(self, job_id: str) -> runtime.Claim | None:
        try:
            return runtime.attempt_claim(job_id=job_id, worker=runtime.WorkerIdentity(name=self.name))
        except Exception:
            # The database is unreachable: leave the row queued; the reconciler re-delivers it.
            logger.exception("Job %s: could not claim the attempt; leaving it for the reconciler", job_id)
            connections.close_all()
            return None

    def _deliver(self, result: runtime.AttemptResult) -> None:
        os.pwrite(self._outbox.fileno(), result.to_json(), 0)

    def _collect(self, claim: runtime.Claim, elapsed: float) -> runtime.AttemptResult:
        size = os.fstat(self._outbox.fileno()).st_size
        if size:
            return runtime.AttemptResult.from_json(os.pread(self._outbox.fileno(), size, 0))
        if self._stop_seen == str(claim.job.pk):
            return runtime.AttemptResult(Outcome.STOPPED, error_type="JobStopped",
                                         error_class="jobs.runtime.JobStopped",
                                         error_message="Stopped on request; the work horse was terminated")
        if elapsed >= claim.job.timeout:
            return runtime.AttemptResult(Outcome.TIMED_OUT, error_type="JobTimeoutException",
                                         error_class="rq.timeouts.JobTimeoutException",
                                         error_message=f"No result after the {claim.job.timeout}s timeout")
        return runtime.AttemptResult(Outcome.ABANDONED, error_type="WorkHorseDied",
                                     error_class="jobs.exceptions.WorkHorseDied",
                                     error_message=f"The work horse died ({_describe_exit(self._horse_exit)})")

    def handle_execution_ended(self, job, queue, heartbeat_ttl: int) -> None:
        # RQ extends the execution's heartbeat here so success callbacks have time to run; a tracked
        # job has none, and its execution is deleted in the next round trip anyway.
        if _is_plain_tracked(job):
            job.ended_at = now()
            return
        super().handle_execution_ended(job, queue, heartbeat_ttl)

    def handle_job_success(self, job, queue, started_job_registry, execution) -> None:
        """RQ's bookkeeping for a succeeded run, in one round trip for tracked jobs.

        A tracked job has no RQ dependents, callbacks, repeats, group, rate limit or stored result (the
        database holds all of that), so RQ's general path (a WATCH transaction, a status read, result
        and registry writes) reduces to: count it, end the execution, delete the job hash.
        """
        if not _is_plain_tracked(job):
            return super().handle_job_success(job, queue, started_job_registry, execution)
        with self.connection.pipeline() as pipe:
            self.increment_successful_job_count(pipeline=pipe)
            self.increment_total_working_time(job.ended_at - job.started_at, pipe)
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            pipe.delete(job.key, job.dependents_key, job.dependencies_key)
            if not self.is_horse:
                self.set_state(WorkerStatus.IDLE, pipeline=pipe)  # what RQ writes next, in this round trip
            pipe.execute()
        job._status = JobStatus.FINISHED

    def handle_exception(self, job, *exc_info) -> None:
        # A handler's failure is already on the attempt's record, traceback included (the admin shows
        # it): one line says so. RQ's log would add a traceback of the engine's own entry point.
        if _is_plain_tracked(job) and isinstance(exc_info[1], runtime.AttemptFailed | SystemExit):
            if isinstance(exc_info[1], SystemExit):  # a cold shutdown ended the job's process
                logger.warning("Job %s: ended by the worker's cold shutdown; its attempt is recorded", job.id)
            else:
                logger.warning("Job %s: attempt failed: %s", job.id, exc_info[1])
            call_exception_handlers(self._exc_handlers, job, *exc_info)
            return
        super().handle_exception(job, *exc_info)

    def handle_work_horse_killed(self, job, retpid, ret_val, rusage) -> None:
        self._horse_exit = ret_val
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)

    def main_work_horse(self, job, queue) -> None:
        _detach_inherited_connections()
        _die_with_parent(expected_parent=self.pid)
        super().main_work_horse(job, queue)

    def perform_job(self, job, queue, *args) -> bool:
        try:
            return super().perform_job(job, queue, *args)
        finally:
            if self.is_horse:  # it leaves with os._exit, past atexit: what the job enqueued goes first
                pusher.flush()
                connections.close_all()


class InProcessStart:
    """RQ starts a job it runs in its own process in two round trips (the execution; then the worker's
    heartbeat and the job's status); these workers do it in one."""

    def prepare_execution(self, job) -> Execution:
        queue = transport.get_queue(job.origin) if job.origin in settings.RQ_QUEUES else None
        with self.connection.pipeline() as pipe:
            ttl = self.get_heartbeat_ttl(job)
            execution = Execution.create(job, ttl, pipeline=pipe, worker_name=self.name)
            self.executions[execution.id] = execution
            self.set_state(WorkerStatus.BUSY, pipeline=pipe)
            # What prepare_job_execution would write next: the worker's key outlives the job, the job is
            # started (its own heartbeat is the same field), and no longer waiting in the intermediate list.
            self.heartbeat(ttl, pipeline=pipe)
            job.prepare_for_execution(self.name, pipeline=pipe)
            pipe.persist(job.key)
            if len(self.queues) == 1 and queue is not None:
                pipe.lrem(queue.intermediate_queue_key, 1, job.id)
            pipe.execute()
        self.__dict__["_prepared_job"] = job.id
        return execution

    def prepare_job_execution(self, job, remove_from_intermediate_queue: bool = False) -> None:
        if self.__dict__.pop("_prepared_job", None) == job.id:
            return
        super().prepare_job_execution(job, remove_from_intermediate_queue)


class TrackedWorker(InProcessStart, TrackedWorkerMixin, SimpleWorker):
    """Runs each handler in the worker's long-lived work process: a crash, a leak or a runaway job is
    confined to it, a stop or a timeout kills it at once, and it is forked again for the next job."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.work_process = WorkProcess(on_fork=_as_child_of)

    def bootstrap(self, *args, **kwargs) -> None:
        super().bootstrap(*args, **kwargs)
        self.work_process.start()  # forked now, from the warm worker, not at the first job

    def execute_attempt(self, claim: runtime.Claim) -> runtime.AttemptResult:
        try:
            return self.work_process.execute(claim)
        finally:
            self._horse_exit = self.work_process.exit_status

    def kill_horse(self, sig=None) -> None:
        # RQ's stop command (staff's Stop) and cold shutdown end the running job this way.
        self.work_process.kill()

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            self.work_process.stop()


class TrackedForkingWorker(TrackedWorkerMixin, Worker):
    """Forks a work horse per job, as RQ's Worker does: a fresh process for every job, at a fork's cost."""

    def fork_work_horse(self, job, queue) -> None:
        # Objects the worker already has move out of the collector's reach, so a horse's garbage
        # collection does not touch (and copy-on-write) every page it inherited.
        gc.freeze()
        super().fork_work_horse(job, queue)


class TrackedSimpleWorker(InProcessStart, TrackedWorkerMixin, SimpleWorker):
    """Runs jobs in the worker process: fastest, no isolation; stop is cooperative (ctx.progress)."""


def _as_child_of(parent: int) -> None:
    """In a freshly forked work process: its own database connections, and it dies with its worker."""
    _detach_inherited_connections()
    _die_with_parent(expected_parent=parent)


def _is_plain_tracked(job) -> bool:
    # Every job that reaches execution is the engine's (see dequeue_job_and_maintain_ttl); RQ keeps
    # its result only when JOBS_RQ_RESULT_TTL asks for it.
    return job.result_ttl == 0


def _warn_without_autovacuum() -> None:
    """Say at start when PostgreSQL will not vacuum the job tables: the worker still runs, slower by the day."""
    if not postgres.supported():
        return
    try:
        server, tables = postgres.autovacuum_state()
    except Exception:
        logger.warning("Could not check PostgreSQL's autovacuum settings", exc_info=True)
        return
    if not server:
        logger.warning("PostgreSQL's autovacuum is off (or track_counts is): the job tables will bloat and "
                       "every claim, refill and admin list will slow down; turn it on (docs/deploy.md, PostgreSQL)")
    if tables:
        logger.warning("Autovacuum is disabled on %s: those tables will bloat and slow down; turn it back "
                       "on with ALTER TABLE ... RESET (autovacuum_enabled)", ", ".join(tables))


def _relax_commit_durability() -> None:
    """Worker writes commit without waiting for the WAL flush (PostgreSQL `synchronous_commit=off`).

    A database server crash may then lose the last fraction of a second of attempt records: the
    reconciler sees those attempts as abandoned and runs them again, the same at-least-once promise
    RQ itself makes with Redis AOF `everysec`. It never corrupts data, and enqueues (made by web
    processes, in the caller's transaction) stay fully durable. JOBS_WORKER_SYNCHRONOUS_COMMIT=true
    turns it off; it is most of the cost of the mirror at worker speeds.
    """
    if settings.JOBS_WORKER_SYNCHRONOUS_COMMIT:
        return
    connection_created.connect(_set_async_commit, dispatch_uid="jobs-worker-async-commit")
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _set_async_commit(sender=None, connection=conn)


def _set_async_commit(sender, connection, **kwargs) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")


def _detach_inherited_connections() -> None:
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _inherited_connections.append(conn.connection)
            conn.connection = None


def _load_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: orphaned horses still end at their job timeout


# Loaded once in the worker; a horse only calls it (loading it in every horse costs a fork's worth).
_prctl = _load_prctl()


def _die_with_parent(*, expected_parent: int | None) -> None:
    """If the worker process is killed, its horse dies too instead of running on as an orphan."""
    if _prctl is None:
        return
    _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if expected_parent and os.getppid() != expected_parent:
        os._exit(1)


def _describe_exit(status: int | None) -> str:
    if status is None:
        return "no exit status"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"
