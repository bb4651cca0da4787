from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from django.utils.module_loading import autodiscover_modules


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from jobs import batches  # noqa: F401  (connects members settling to their batch)
        from jobs import maintenance
        from jobs.rq_lockdown import lock_down

        lock_down()  # before anything in this process reads from Redis
        # Every installed app's `kinds` module registers its job kinds, in web and worker alike.
        autodiscover_modules("kinds")
        # The daily retention cleanup, at JOBS_CLEANUP_HOUR UTC when first made (edit it in the admin after);
        # a day missed while no scheduler ran is caught up once.
        maintenance.system_schedule_register(maintenance.SystemSchedule(
            name=maintenance.CLEANUP_SCHEDULE_NAME, kind=maintenance.CLEANUP_KIND,
            cron=lambda: f"0 {settings.JOBS_CLEANUP_HOUR} * * *", misfire_policy="once"))
