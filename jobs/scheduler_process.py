"""The rq-scheduler process (`manage.py rqscheduler`), which is also the engine's clock.

Every tick it relays due jobs (delayed, retrying, pending after a Redis outage) and fires the cron
schedules whose rq-scheduler entries are due, from the database (`jobs.tasks.fire_schedule`); any other
entry is not the engine's and is dropped. At start and on
every reconcile pass it makes the schedules' entries match the database (`schedules_sync`: idempotent,
so restarts never double a schedule) and runs a reconciler pass; at start it also makes sure the
built-in "Retention cleanup" system schedule exists. A Redis outage is logged and waited out instead of ending the process.
"""
from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import close_old_connections
from django_rq.queues import DjangoScheduler

from jobs import reconciler, tasks, transport
from jobs.relay import relay
from jobs.schedules.services import schedules_sync, system_schedules_ensure

logger = logging.getLogger(__name__)


TICK_OFFSET = 0.01  # just past the boundary, so a clock a few milliseconds behind is in the new second


def until_next_tick(now: float | None = None) -> float:
    """Seconds to the next whole multiple of JOBS_TICK_SECONDS on the wall clock. Limits by rate count per
    calendar second (`transport.rate_take`): a tick early in every second hands over that second's
    share, where ticks a second apart from whenever the process started would now and then miss one."""
    tick = settings.JOBS_TICK_SECONDS
    now = time.time() if now is None else now
    return tick - now % tick + TICK_OFFSET if tick > 0 else 0.0


class TrackedScheduler(DjangoScheduler):
    def run(self, burst: bool = False) -> None:
        self._register_birth_when_reachable()
        self._install_signal_handlers()
        synced = False
        next_reconcile = 0.0
        try:
            while True:
                now = time.monotonic()
                try:
                    self.heartbeat()
                    if not synced:
                        system_schedules_ensure()
                        schedules_sync()  # this process's first look, whoever leads the passes
                        synced = True
                    # Every tick, not rq-scheduler's minute: a cron firing is due to the second.
                    self._move_rq_scheduler_jobs()
                    if now >= next_reconcile:
                        next_reconcile = now + settings.JOBS_RECONCILE_SECONDS
                        if reconciler.reconcile_if_leader() is not None:
                            schedules_sync()
                        else:
                            relay()  # another process ran the pass: this tick still hands over what is due
                    else:
                        relay()
                except transport.TransportError as exc:
                    logger.warning("Scheduler: Redis unreachable (%s); retrying", exc)
                except Exception:
                    logger.exception("Scheduler tick failed; retrying")
                    close_old_connections()
                if burst:
                    break
                time.sleep(until_next_tick())
        finally:
            try:
                self.remove_lock()
                self.register_death()
                transport.scheduler_beat(self.name, alive=False)
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
        transport.scheduler_beat(self.name)  # what the dashboard and the probes read

    def acquire_lock(self) -> bool:
        # rq-scheduler's lock lives for its interval plus 10 s (70 s by default): a scheduler killed
        # while holding it would keep every other one from firing for over a minute, past a schedule's
        # misfire grace. A pass takes milliseconds and duplicates are refused by the database anyway.
        self._lock_acquired = bool(self.connection.set(self.scheduler_lock_key, time.time(), nx=True,
                                                       ex=int(settings.JOBS_TICK_SECONDS) + 10))
        return self._lock_acquired

    def enqueue_jobs(self) -> None:
        """Fire the cron schedules whose entries are due. rq-scheduler would fetch each due entry and
        push it to the queue its meta names (importing the queue class named there); the engine makes
        no entries but its schedules' (delayed jobs wait in the database), so any other entry was
        written into Redis by someone else and is dropped unread."""
        for entry_id in transport.schedule_entries_due():
            schedule_id = transport.schedule_of_entry(entry_id)
            if schedule_id is None:
                logger.error("Scheduler: dropped rq-scheduler entry %r, which is not a cron schedule's", entry_id)
                transport.schedule_entries_drop([entry_id])
                continue
            # Firing re-registers the entry at the next fire time (or removes it); if it fails the entry
            # stays due and the next tick tries again, without holding up the other entries.
            try:
                tasks.fire_schedule(schedule_id)
            except transport.TransportError:
                raise
            except Exception:
                logger.exception("Schedule %s could not fire; trying again at the next tick", schedule_id)
                close_old_connections()

    def _move_rq_scheduler_jobs(self) -> None:
        if self.acquire_lock():
            try:
                self.enqueue_jobs()
            finally:
                self.remove_lock()
