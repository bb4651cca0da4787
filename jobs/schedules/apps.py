from __future__ import annotations

from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "jobs.schedules"
    label = "schedules"
    verbose_name = "Schedules"

    def ready(self) -> None:
        from jobs import maintenance
        from jobs.schedules.services import schedule_runs_delete_expired

        maintenance.cleaner_register("schedule_runs", schedule_runs_delete_expired)
