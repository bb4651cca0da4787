from __future__ import annotations

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "jobs.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from jobs.webhooks import checks, events  # noqa: F401  (checks registers itself)

        events.connect()
