from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from jobs import enqueue
from jobs.mail.services import email_bulk, email_send
from jobs.models import Job, Source
from jobs.schedules.models import MisfirePolicy, Schedule
from jobs.schedules.services import schedule_save
from jobs.services import job_cancel
from jobs.webhooks.models import WebhookEndpoint
from jobs.webhooks.services import webhook_send
from reports.services import report_request
from tenants.models import Membership, Role, Tenant

LOGINS = [
    # username, password, superuser, tenant slug, role
    ("admin", "admin-demo", True, None, None),
    ("alice", "alice-demo", False, "acme", Role.ADMIN),
    ("bob", "bob-demo", False, "globex", Role.OPERATOR),
    ("victor", "victor-demo", False, "acme", Role.VIEWER),
]
TENANTS = [("acme", "Acme Corp"), ("globex", "Globex Inc")]


class Command(BaseCommand):
    help = "Create demo tenants, logins and jobs in several states (idempotent; DEBUG only)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="the development server's port (its webhook receiver)")

    def handle(self, *args, **options) -> None:
        self.port = options["port"]
        if not settings.DEBUG:
            raise CommandError("demo_setup creates well-known passwords; it runs only with DEBUG on.")
        with transaction.atomic():
            tenants = {slug: Tenant.objects.get_or_create(slug=slug, defaults={"name": name})[0]
                       for slug, name in TENANTS}
            for username, password, superuser, slug, role in LOGINS:
                self._user(username, password, superuser, tenants.get(slug), role)
            if not Job.objects.filter(tenant__in=tenants.values()).exists():
                self._jobs(tenants)
            self._schedules(tenants)
            self._webhook_endpoints(tenants["acme"])
        lines = ["logins (development only):"] + [
            f"  {u:<6} / {p:<12} {'superuser' if s else f'staff, {r} of {t}'}" for u, p, s, t, r in LOGINS
        ]
        text = "\n".join(lines) + "\n"
        (Path(settings.BASE_DIR) / ".run").mkdir(exist_ok=True)
        (Path(settings.BASE_DIR) / ".run" / "demo-logins.txt").write_text(text)
        if options["verbosity"]:
            self.stdout.write(text)

    def _user(self, username, password, superuser, tenant, role) -> None:
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": superuser,
                                         "email": f"{username}@example.com"})
        if created:
            user.set_password(password)
            user.save()
        if tenant is not None:
            Membership.objects.get_or_create(user=user, tenant=tenant, defaults={"role": role})

    def _jobs(self, tenants) -> None:
        acme, globex = tenants["acme"], tenants["globex"]
        for tenant in (acme, globex):
            for _ in range(3):
                enqueue("diagnostics.ping", tenant=tenant, payload={"seconds": 1, "steps": 4}, source=Source.CLI)
        enqueue("diagnostics.ping", tenant=acme, payload={"fail_times": 1}, source=Source.CLI)
        enqueue("diagnostics.ping", tenant=acme, payload={"fail_times": 5}, source=Source.CLI)
        enqueue("diagnostics.ping", tenant=globex, payload={"seconds": 45, "steps": 45}, source=Source.CLI)
        enqueue("diagnostics.ping", tenant=acme, payload={"seconds": 60, "steps": 60}, source=Source.CLI)
        enqueue("diagnostics.ping", tenant=acme, payload={}, run_at=timezone.now() + timedelta(hours=1),
                source=Source.CLI)
        doomed = enqueue("diagnostics.ping", tenant=globex, payload={},
                         run_at=timezone.now() + timedelta(hours=2), source=Source.CLI)
        job_cancel(job=doomed)
        self._built_in_work(acme)

    def _schedules(self, tenants) -> None:
        alice = get_user_model().objects.get(username="alice")
        for slug, name, cron, zone, policy, payload in [
            ("acme", "Health check every 5 minutes", "*/5 * * * *", "Europe/Berlin", MisfirePolicy.SKIP, {"steps": 3}),
            ("acme", "Weekly deep check", "30 2 * * 1", "Europe/Berlin", MisfirePolicy.ONCE, {"seconds": 5, "steps": 5}),
            ("globex", "Nightly ping", "0 2 * * *", "America/New_York", MisfirePolicy.ALL, {}),
        ]:
            if not Schedule.objects.filter(tenant=tenants[slug], name=name).exists():
                schedule_save(schedule=Schedule(tenant=tenants[slug], name=name, kind="diagnostics.ping", cron=cron,
                                                timezone=zone, misfire_policy=policy, payload=payload),
                              user=alice if slug == "acme" else None)

    def _built_in_work(self, acme) -> None:
        email_send(tenant=acme, to=["alice@example.com"], template="notice", key="demo-notice", source=Source.CLI,
                   context={"subject": "Your weekly summary", "body": "Twelve jobs ran this week."})
        email_bulk(tenant=acme, template="notice", recipients=[f"customer{n}@example.com" for n in range(1, 21)],
                   context={"subject": "Maintenance on Sunday", "body": "We will be down for ten minutes."},
                   source=Source.CLI)
        self._webhook_endpoints(acme)
        webhook_send(tenant=acme, event_type="invoice.paid", payload={"invoice": 1042, "amount": "99.00"})
        self._reports(acme)

    def _webhook_endpoints(self, acme) -> None:
        """Two endpoints on the development server's own receiver (jobs.webhooks.demo): one takes events, one is
        down (503), so deliveries show both outcomes and retries. Their address follows the port in use."""
        base = f"http://127.0.0.1:{self.port}/demo/webhook-sink"
        for behaviour, description in (("ok", "Demo: a receiver that answers"), ("down", "Demo: a receiver that is down")):
            WebhookEndpoint.objects.update_or_create(tenant=acme, description=description,
                                                     defaults={"url": f"{base}/{behaviour}/"})

    def _reports(self, acme) -> None:
        alice = get_user_model().objects.get(username="alice")
        today = timezone.localdate()
        report_request(tenant=acme, user=alice, type="jobs.activity", format="pdf", source=Source.CLI,
                       title="Demo: job activity this week",
                       parameters={"start": today - timedelta(days=6), "end": today})
        report_request(tenant=acme, user=alice, type="exports.tenant_data", format="csv", source=Source.CLI)
