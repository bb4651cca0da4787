from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Reports"

    def ready(self) -> None:
        from jobs import maintenance, signals
        from reports import receivers
        from reports.services import report_delete_expired

        # Every installed app's `report_types` module registers its report types (ours: the built-ins).
        autodiscover_modules("report_types")
        maintenance.cleaner_register("reports", report_delete_expired)
        signals.job_failed.connect(receivers.report_job_failed, dispatch_uid="reports.job_failed")
        signals.job_cancelled.connect(receivers.report_job_cancelled, dispatch_uid="reports.job_cancelled")
