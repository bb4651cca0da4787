from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class OpsConfig(AppConfig):
    name = "jobs.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from jobs import maintenance
        from jobs.ops import checks  # noqa: F401  (registers the settings checks)
        from jobs.ops.services import ALERTS_KIND, SCHEDULE_NAME

        # Every minute while alerts are on; a missed minute is skipped (a check of the past is no use).
        maintenance.system_schedule_register(maintenance.SystemSchedule(
            name=SCHEDULE_NAME, kind=ALERTS_KIND, cron="* * * * *", misfire_policy="skip",
            wanted=lambda: settings.OPS_ALERTS_ENABLED))
