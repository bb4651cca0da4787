from __future__ import annotations

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "jobs.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from jobs import maintenance
        from jobs.webhooks import checks, events  # noqa: F401  (checks registers itself)
        from jobs.webhooks.services import deliveries_delete_expired

        events.connect()
        maintenance.cleaner_register("webhook_deliveries", deliveries_delete_expired)
