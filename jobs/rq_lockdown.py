"""RQ, locked down in every process: nothing read from Redis is unpickled, and nothing in Redis calls out.

Whoever can write to Redis can plant a job. RQ falls back to pickle wherever nobody passes a serializer,
and django-rq's dashboard, its stats, RQ's own registry clean-ups (which run on any read of a registry's
length) and rq-scheduler do not pass one: a planted pickle would run in the web process when a superuser
opens the dashboard. An RQ job may also name callbacks, which RQ imports and calls, and webhooks, which
RQ requests with urllib (any URL, any header, redirects followed).

`lock_down()` runs first thing in every process that loads Django (`JobsConfig.ready`), web, workers,
scheduler and management commands alike, and changes RQ's classes themselves, so that it holds whatever
code builds the job object:
- RQ's default serializer is JSON: the pickle fallback is unreachable (a pickle fails to decode);
- every RQ job, of any class, resolves only the engine's entry point, never has a callback and never
  sends a webhook (the engine sets neither; `jobs.workers` refuses a job that names any).
"""
from __future__ import annotations

import logging

from rq import serializers
from rq.job import Job
from rq.serializers import JSONSerializer

from jobs.transport import ENTRY_POINT, ForbiddenJobFunction

logger = logging.getLogger(__name__)

_job_func = Job.func


def lock_down() -> None:
    """Make RQ JSON-only and inert in this process; calling it again changes nothing."""
    # The default (pickle) serializer is also what the "pickle" alias and every `serializer=None` resolve to.
    serializers.DefaultSerializer.dumps = staticmethod(JSONSerializer.dumps)
    serializers.DefaultSerializer.loads = staticmethod(JSONSerializer.loads)
    Job.func = property(_allowed_func)
    Job.success_callback = property(_no_callback("success"))
    Job.failure_callback = property(_no_callback("failure"))
    Job.stopped_callback = property(_no_callback("stopped"))
    Job.send_webhooks = _send_no_webhooks


def is_locked_down() -> bool:
    return serializers.DefaultSerializer.loads is JSONSerializer.loads and Job.send_webhooks is _send_no_webhooks


def _allowed_func(job: Job):
    if job.func_name != ENTRY_POINT:
        logger.error("Refused RQ job %s: function %r is not allowed", job.id, job.func_name)
        raise ForbiddenJobFunction(f"function {job.func_name!r} is not allowed")
    if job.instance is not None:
        raise ForbiddenJobFunction("bound-method jobs are not allowed")
    return _job_func.fget(job)


def _no_callback(which: str):
    def callback(job: Job) -> None:
        name = getattr(job, f"_{which}_callback_name", None)
        if name:
            logger.error("RQ job %s names a %s callback %r; callbacks are never run", job.id, which, name)
        return None

    return callback


def _send_no_webhooks(job: Job, status, *, exc_string: str | None = None) -> None:
    if job.webhooks:
        logger.error("RQ job %s carries %d webhook(s); RQ's webhooks are never sent", job.id, len(job.webhooks))
