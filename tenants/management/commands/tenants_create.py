from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from jobs.models import Source
from tenants.services import tenant_create


class Command(BaseCommand):
    help = "Create a tenant and enqueue its onboarding (first admin, welcome email, defaults)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--slug", default="")
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-username", default="")
        parser.add_argument("--webhook-url", default="")

    def handle(self, *args, **options) -> None:
        try:
            tenant, job = tenant_create(name=options["name"], slug=options["slug"], admin_email=options["admin_email"],
                                        admin_username=options["admin_username"], webhook_url=options["webhook_url"],
                                        source=Source.CLI)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{field}: {' '.join(messages)}"
                                         for field, messages in exc.message_dict.items())) from None
        self.stdout.write(f"Tenant {tenant.slug} created; onboarding job {job.pk} ({job.status}).")
