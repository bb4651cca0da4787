from __future__ import annotations

from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "jobs.schedules"
    label = "schedules"
    verbose_name = "Schedules"

    def ready(self) -> None:
        from jobs import maintenance
        from jobs.schedules.services import schedule_runs_delete_expired

        if schedule_runs_delete_expired not in maintenance.EXTRA_CLEANERS:
            maintenance.EXTRA_CLEANERS.append(schedule_runs_delete_expired)
