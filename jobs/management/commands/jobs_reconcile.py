from __future__ import annotations

from django.core.management.base import BaseCommand

from jobs.reconciler import reconcile


class Command(BaseCommand):
    help = "Run one reconciler pass (relay, requeue jobs Redis lost, rescue abandoned attempts) and report."

    def handle(self, *args, **options) -> None:
        self.stdout.write(str(reconcile()))
