from __future__ import annotations

from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "jobs.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from jobs import maintenance
        from jobs.ops import checks  # noqa: F401  (registers the settings checks)
        from jobs.ops.services import alerts_schedule_ensure

        if alerts_schedule_ensure not in maintenance.EXTRA_SYSTEM_SCHEDULES:
            maintenance.EXTRA_SYSTEM_SCHEDULES.append(alerts_schedule_ensure)
