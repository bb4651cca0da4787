from __future__ import annotations

from django.apps import AppConfig


class MailConfig(AppConfig):
    name = "jobs.mail"
    label = "mail"
    verbose_name = "Email"

    def ready(self) -> None:
        from jobs import maintenance
        from jobs.mail.services import emails_delete_expired

        maintenance.cleaner_register("emails", emails_delete_expired)
