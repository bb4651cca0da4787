"""The rq-scheduler process (`manage.py rqscheduler`), which is also the engine's clock.

Every tick it relays due jobs (delayed, retrying, pending after a Redis outage); every reconcile
interval it runs a reconciler pass and enqueues the daily retention cleanup when it is due (so the
cleanup needs no set-up); at rq-scheduler's own interval it moves rq-scheduler's jobs.
A Redis outage is logged and waited out instead of ending the process.
"""
from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import close_old_connections
from django_rq.queues import DjangoScheduler

from jobs import maintenance, reconciler, transport
from jobs.relay import relay

logger = logging.getLogger(__name__)


class TrackedScheduler(DjangoScheduler):
    def run(self, burst: bool = False) -> None:
        self._register_birth_when_reachable()
        self._install_signal_handlers()
        next_rq_pass = next_reconcile = 0.0
        try:
            while True:
                now = time.monotonic()
                try:
                    self.heartbeat()
                    if now >= next_rq_pass:
                        next_rq_pass = now + self._interval
                        self._move_rq_scheduler_jobs()
                    if now >= next_reconcile:
                        next_reconcile = now + settings.JOBS_RECONCILE_SECONDS
                        if reconciler.reconcile_if_leader() is not None:
                            maintenance.cleanup_ensure_daily()
                    else:
                        relay()
                except transport.TransportError as exc:
                    logger.warning("Scheduler: Redis unreachable (%s); retrying", exc)
                except Exception:
                    logger.exception("Scheduler tick failed; retrying")
                    close_old_connections()
                if burst:
                    break
                time.sleep(max(0.0, settings.JOBS_TICK_SECONDS - (time.monotonic() - now)))
        finally:
            try:
                self.remove_lock()
                self.register_death()
            except transport.TransportError:
                pass

    def _register_birth_when_reachable(self) -> None:
        while True:
            try:
                self.register_birth()
                return
            except transport.TransportError as exc:
                logger.warning("Scheduler: Redis unreachable at start (%s); retrying", exc)
                time.sleep(2)

    def heartbeat(self) -> None:
        # The key must outlive our short tick, not rq-scheduler's long interval alone.
        self.connection.expire(self.key, int(max(self._interval, settings.JOBS_TICK_SECONDS)) + 10)

    def _move_rq_scheduler_jobs(self) -> None:
        if self.acquire_lock():
            try:
                self.enqueue_jobs()
            finally:
                self.remove_lock()
