"""What a handler may raise to steer its job, besides plain exceptions (which fail the attempt and
retry by the kind's backoff)."""
from __future__ import annotations


class RetryAfter(Exception):
    """This attempt failed; the next one should wait at least `seconds` (a server's Retry-After, say)."""

    def __init__(self, message: str, *, seconds: float) -> None:
        super().__init__(message)
        self.seconds = max(0.0, float(seconds))


class GiveUp(Exception):
    """This attempt failed and another cannot help (a permanent refusal): the job fails now."""


class Snooze(Exception):
    """Nothing failed, the work is just not done yet: run again in `seconds` without spending an attempt.

    The job waits as `scheduled`; the attempt is recorded with the outcome `snoozed`. Use it to wait for
    other jobs without holding a worker.
    """

    def __init__(self, message: str = "", *, seconds: float) -> None:
        super().__init__(message)
        self.seconds = max(0.0, float(seconds))


# What an attempt ended with when the handler itself raised nothing: recorded by class path on the
# attempt (`Attempt.error_class`), as a raised exception's is.

class WorkerLost(Exception):
    """The worker running the attempt stopped heartbeating (killed, its host lost); the reconciler ended it."""


class WorkHorseDied(Exception):
    """The process running the attempt died (out of memory, a signal) without reporting an outcome."""


class Cancelled(Exception):
    """The job was cancelled before it could finish (by staff, or with its tenant's waiting jobs)."""
