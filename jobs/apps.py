from __future__ import annotations

from importlib import import_module

from django.apps import AppConfig
from django.conf import settings
from django.utils.module_loading import autodiscover_modules


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from jobs import batches  # noqa: F401  (connects members settling to their batch)
        from jobs import maintenance, registry, stats, tasks_backend
        from jobs.rq_lockdown import lock_down

        lock_down()  # before anything in this process reads from Redis
        # Every installed app's `kinds` module registers its job kinds, in web and worker alike; Django
        # tasks register as kinds too: those of apps' `tasks` modules and TRACKED_TASK_MODULES now (the
        # admin lists them, schedules may name them), any other allowed one when first used.
        autodiscover_modules("kinds")
        registry.kind_resolver_add(tasks_backend.resolve_kind)
        tasks_backend.connect_signals()
        autodiscover_modules("tasks")
        for module in settings.TRACKED_TASK_MODULES:
            import_module(module)
        # The daily retention cleanup, at JOBS_CLEANUP_HOUR UTC when first made (edit it in the admin after);
        # a day missed while no scheduler ran is caught up once.
        maintenance.system_schedule_register(maintenance.SystemSchedule(
            name=maintenance.CLEANUP_SCHEDULE_NAME, kind=maintenance.CLEANUP_KIND,
            cron=lambda: f"0 {settings.JOBS_CLEANUP_HOUR} * * *", misfire_policy="once"))
        # The dashboard's figures of days gone by, summarized once each (hourly, so a missed run costs an hour).
        maintenance.system_schedule_register(maintenance.SystemSchedule(
            name=stats.SUMMARIZE_SCHEDULE_NAME, kind=stats.SUMMARIZE_KIND, cron="7 * * * *", misfire_policy="once"))
