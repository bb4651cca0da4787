from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from jobs import enqueue
from jobs.models import Source
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Enqueue a job of KIND for a tenant and print the new job's id."

    def add_arguments(self, parser) -> None:
        parser.add_argument("kind")
        parser.add_argument("--tenant", help="Tenant slug; omit for a system job.")
        parser.add_argument("--payload", default="{}", help="The payload as a JSON object.")
        parser.add_argument("--idempotency-key", default=None)

    def handle(self, *args, kind: str, tenant: str | None, payload: str, idempotency_key: str | None,
               **options) -> None:
        try:
            data = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--payload is not valid JSON: {exc}") from None
        owner = None
        if tenant:
            owner = Tenant.objects.filter(slug=tenant).first()
            if owner is None:
                raise CommandError(f"--tenant: no tenant with slug {tenant!r}")
        try:
            job = enqueue(kind, tenant=owner, payload=data, idempotency_key=idempotency_key, source=Source.CLI)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()))
        self.stdout.write(str(job.pk))
