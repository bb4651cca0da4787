"""Hands newly committed jobs to RQ from a thread of the enqueuing process, so `enqueue()` returns once its
INSERT has committed instead of also waiting on Redis (`JOBS_PUSH_IN_BACKGROUND`).

Nothing about the record changes: an admitted job is `queued` from its commit on, and RQ's copy is only
transport. Jobs submitted within `LINGER_SECONDS` of each other, or while a push is under way, go in one
round trip. A job the process never pushed (it died first) is a queued job Redis never got, which the
reconciler already re-pushes; a job cancelled, paused or pushed twice meanwhile is refused by the claim,
as before.

One thread per process, started at the first submit in that process (a forked child starts its own), and
flushed at exit with a deadline (`atexit`; the work process, which leaves with `os._exit`, flushes first).
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time

from django.db import connections

from jobs import transport
from jobs.relay import hand_over

logger = logging.getLogger(__name__)

EXIT_FLUSH_SECONDS = 5.0
LINGER_SECONDS = 0.002  # a job waits at most this long for others to share its round trip


class Pusher:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A fresh state: at start, and in a forked child, whose copy of the lock may be held by a thread
        it does not have (the parent's jobs are the parent's to push)."""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiting: list[transport.Handover] = []
        self._in_flight = 0
        self._pid: int | None = None

    def submit(self, handovers: list[transport.Handover]) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use in this process (or a fork's child, which has no thread)
                self._waiting, self._in_flight, self._pid = [], 0, os.getpid()
                threading.Thread(target=self._run, name="jobs-pusher", daemon=True).start()
            self._waiting.extend(handovers)
            self._changed.notify_all()

    def flush(self, timeout: float = EXIT_FLUSH_SECONDS) -> bool:
        """Wait until every job submitted so far has been handed over (or given back); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._waiting or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0 or self._pid != os.getpid():
                    return not (self._waiting or self._in_flight)
                self._changed.wait(left)
        return True

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiting:
                    self._changed.wait()
                if LINGER_SECONDS:
                    self._changed.wait(LINGER_SECONDS)  # let a few more join this round trip
                batch, self._waiting = self._waiting, []
                self._in_flight = len(batch)
            try:
                hand_over(batch)  # on failure the jobs go back to `pending` and the relay retries them
            except Exception:
                logger.exception("Pushing %d job(s) failed; the relay hands them over later", len(batch))
            finally:
                connections.close_all()  # this thread's own, opened only when a failed push gave jobs back
                with self._lock:
                    self._in_flight = 0
                    self._changed.notify_all()


pusher = Pusher()
os.register_at_fork(after_in_child=pusher.reset)


def submit(handovers: list[transport.Handover]) -> None:
    pusher.submit(handovers)


def flush(timeout: float = EXIT_FLUSH_SECONDS) -> bool:
    return pusher.flush(timeout)


atexit.register(flush)
