"""Signed outbound webhooks (Standard Webhooks), delivered as tracked `webhooks.deliver` jobs.

    from jobs import webhooks
    webhooks.send(tenant, "invoice.paid", {"invoice": 42})
"""
from __future__ import annotations

from typing import Any


def send(tenant, event_type: str, payload: dict[str, Any], *, user=None) -> list:
    """One signed message to each of `tenant`'s active endpoints subscribed to `event_type`; each is
    delivered (and retried for about three days) by its own job. Returns the stored messages."""
    # Imported when called: this package is loaded while Django registers its apps, before any model.
    from jobs.webhooks.services import webhook_send

    return webhook_send(tenant=tenant, event_type=event_type, payload=payload, user=user)
