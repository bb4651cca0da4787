"""`Authorization: Bearer <secret>` for the routes that take a shared secret (metrics, dashboard stats)."""
from __future__ import annotations

from hmac import compare_digest

from django.http import HttpRequest


def bearer_matches(request: HttpRequest, secret: str) -> bool:
    """True only when the request carries exactly `secret`; never raises, whatever the header holds."""
    if not secret:
        return False
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    # As bytes: compare_digest raises on non-ASCII text (a 500) instead of answering False.
    return scheme.lower() == "bearer" and compare_digest(offered.strip().encode(), secret.encode())
