"""Signals for host code; each is sent with `job=` (and `attempt=` where there is one) after commit."""
from __future__ import annotations

from django.dispatch import Signal

job_started = Signal()
job_succeeded = Signal()
job_failed = Signal()
job_cancelled = Signal()
