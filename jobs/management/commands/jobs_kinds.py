from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from jobs.registry import all_kinds


class Command(BaseCommand):
    help = ("List the registered job kinds (queue, timeout, attempts) and each queue's longest timeout: a "
            "worker's stop grace period should exceed the longest timeout of the queues it serves.")

    def handle(self, *args, **options) -> None:
        kinds = sorted(all_kinds(), key=lambda kind: (list(settings.RQ_QUEUES).index(kind.queue), kind.name))
        self.stdout.write(f"{'kind':<32} {'queue':<10} {'timeout s':>9} {'attempts':>8}  public")
        for kind in kinds:
            self.stdout.write(f"{kind.name:<32} {kind.queue:<10} {kind.timeout:>9} {kind.max_attempts:>8}  "
                              f"{'yes' if kind.public else ''}")
        self.stdout.write("")
        for queue in settings.RQ_QUEUES:
            timeouts = [kind.timeout for kind in kinds if kind.queue == queue]
            if timeouts:
                self.stdout.write(f"longest timeout on {queue}: {max(timeouts)} s")
