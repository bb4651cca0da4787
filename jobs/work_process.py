"""The work process: one long-lived child of a worker that runs its handlers, one job at a time.

A worker claims each attempt and records its outcome itself; the handler runs here, in a process of its
own, so a crash, a leak or a runaway job is confined to it, as with a fork per job, without paying for a
fork (and new connections) per job. It is forked when the worker starts, from the warm worker, and again
whenever it is gone:

- a job that kills it (a crash, `os._exit`, the kernel's OOM killer) is recorded as `WorkHorseDied`;
- stopping a job (staff's Stop), a timeout, or a second SIGTERM kill it at once; the worker goes on;
- after JOBS_WORK_PROCESS_MAX_JOBS jobs, or once it holds more than JOBS_WORK_PROCESS_RECYCLE_MB of
  memory after a job, it is replaced between jobs (a slow leak never grows without bound);
- JOBS_WORK_PROCESS_MAX_MEMORY_MB, when set, bounds its address space: a job that wants more fails
  with MemoryError instead of taking the host's memory.

The claim goes to it over a socket pair as JSON (the Job, its Attempt and its tenant, as Django
serializes rows) and the outcome comes back as JSON: nothing either side reads can run code.
"""
from __future__ import annotations

import gc
import logging
import os
import resource
import signal
import socket
import struct

from django.conf import settings
from django.db import connections

from jobs import pusher, runtime
from jobs.exceptions import WorkHorseDied

logger = logging.getLogger(__name__)

_LENGTH = struct.Struct("!I")


class WorkProcess:
    def __init__(self, *, on_fork=None) -> None:
        self.pid: int | None = None
        self.exit_status: int | None = None
        self.running_job: str | None = None
        self._socket: socket.socket | None = None
        self._jobs = 0
        self._on_fork = on_fork

    # --- The worker's side ----------------------------------------------------------------------

    def start(self) -> None:
        """Fork the work process now (between jobs), unless it is already there and alive."""
        if self.pid is not None:
            if self._exited() is None:
                return
            self._forget()  # it died between jobs
        ours, theirs = socket.socketpair()
        gc.freeze()  # what the worker holds is not copied-on-write by the child's collections
        pid = os.fork()
        if pid == 0:  # the work process
            ours.close()
            try:
                _serve(theirs, parent=os.getppid(), on_fork=self._on_fork)
            finally:
                os._exit(0)
        theirs.close()
        self.pid, self._socket, self._jobs, self.exit_status = pid, ours, 0, None

    def execute(self, claim: runtime.Claim) -> runtime.AttemptResult:
        """Run the claimed attempt there and return its outcome. Raises WorkHorseDied if the process dies
        (or is killed: a stop) before answering; any exception raised while waiting (the timeout's, a
        cold shutdown) kills it first."""
        self.start()
        self.running_job = str(claim.job.pk)
        try:
            _send(self._socket, claim.to_json())
            answer = _receive(self._socket)
        except BrokenPipeError:
            answer = None  # it died before it could take the job
        except BaseException:
            self.kill()
            self._reap()
            raise
        finally:
            self.running_job = None
        if answer is None:
            self._reap()
            raise WorkHorseDied(f"The work process died ({_describe(self.exit_status)})")
        result = runtime.AttemptResult.from_json(answer[4:])
        self._jobs += 1
        self._recycle_if_due(_LENGTH.unpack(answer[:4])[0])
        return result

    def kill(self, job_id: str | None = None) -> bool:
        """Kill the process at once (if it runs `job_id`, when given); it is forked again for the next job."""
        pid = self.pid
        if pid is None or (job_id is not None and job_id != self.running_job):
            return False
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return True

    def stop(self) -> None:
        """End the process between jobs: it reads the closed socket and exits."""
        if self.pid is None:
            return
        self._socket.close()
        self._reap()

    def _recycle_if_due(self, rss_mb: int) -> None:
        too_many = settings.JOBS_WORK_PROCESS_MAX_JOBS and self._jobs >= settings.JOBS_WORK_PROCESS_MAX_JOBS
        too_big = settings.JOBS_WORK_PROCESS_RECYCLE_MB and rss_mb >= settings.JOBS_WORK_PROCESS_RECYCLE_MB
        if too_many or too_big:
            logger.info("Work process %s replaced after %d jobs, holding %d MB", self.pid, self._jobs, rss_mb)
            self.stop()
            self.start()

    def _exited(self) -> int | None:
        """The exit status if the process has ended (it is reaped then), else None."""
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return 0
        if pid == 0:
            return None
        self.exit_status = status
        return status

    def _reap(self) -> None:
        if self._socket is not None:
            self._socket.close()
        try:
            _, self.exit_status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self._forget()

    def _forget(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self.pid, self._socket = None, None


# --- The work process's side ---------------------------------------------------------------------

def _serve(sock: socket.socket, *, parent: int, on_fork) -> None:
    # The worker decides when to stop (a first SIGTERM lets the current job finish); it kills this
    # process when it must.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if on_fork is not None:
        on_fork(parent)
    limit = settings.JOBS_WORK_PROCESS_MAX_MEMORY_MB
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit * 1024 * 1024, limit * 1024 * 1024))
    while True:
        request = _receive(sock)
        if request is None:
            connections.close_all()
            return
        claim = runtime.Claim.from_json(request)
        result = runtime.attempt_execute(claim)
        pusher.flush()  # what the job enqueued is in Redis before its outcome is: this process may be ended next
        _send(sock, _LENGTH.pack(_rss_mb()) + result.to_json())


def _rss_mb() -> int:
    # The most it has held (kilobytes on Linux): a job that needed that much leaves it reserved anyway.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _receive(sock: socket.socket) -> bytes | None:
    """One message, or None when the other side is gone."""
    header = _read(sock, _LENGTH.size)
    if header is None:
        return None
    return _read(sock, _LENGTH.unpack(header)[0])


def _read(sock: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        try:
            chunk = sock.recv(min(left, 1 << 20))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _describe(status: int | None) -> str:
    if status is None:
        return "no exit status"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"
