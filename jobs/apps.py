from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from jobs.rq_lockdown import lock_down

        lock_down()  # before anything in this process reads from Redis
        # Every installed app's `kinds` module registers its job kinds, in web and worker alike.
        autodiscover_modules("kinds")
        from jobs import batches  # noqa: F401  (connects members settling to their batch)
