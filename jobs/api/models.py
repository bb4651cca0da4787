"""API tokens: a tenant's credentials for integrating code. Only a SHA-256 digest of each is stored."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

# `tj_<prefix>_<secret>`: the prefix names the token in lists and logs, the secret (32 random bytes)
# proves it. Log lines mask this shape (jobs.eventlog).
TOKEN_START = "tj_"
PREFIX_LENGTH = 10


class Scope(models.TextChoices):
    READ = "read", "Read"
    READ_WRITE = "read-write", "Read and write"


def token_digest(token: str) -> str:
    # The secret is high-entropy random, so a plain hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def token_new() -> tuple[str, str]:
    """A fresh token and its visible prefix (`tj_` and 10 random lowercase letters and digits)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    prefix = TOKEN_START + "".join(secrets.choice(alphabet) for _ in range(PREFIX_LENGTH))
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def token_prefix(token: str) -> str | None:
    """The prefix part of a presented token, or None when it does not have the token's shape."""
    size = len(TOKEN_START) + PREFIX_LENGTH
    if not token.startswith(TOKEN_START) or token[size:size + 1] != "_" or len(token) <= size + 1:
        return None
    return token[:size]


class ApiToken(models.Model):
    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="api_tokens",
                               help_text="Empty for a platform token (superusers only): it reads every queue, "
                                         "tenant and figure and pauses queues, but reaches no tenant's jobs.")
    name = models.CharField(max_length=100, help_text="What uses it, e.g. \"billing service\".")
    prefix = models.CharField(max_length=20, unique=True, editable=False,
                              help_text="The token's first characters, to tell tokens apart.")
    key_hash = models.CharField(max_length=64, editable=False)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.READ,
                             help_text="Read: list and read jobs. Read and write: also enqueue, retry and cancel.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False,
                                        help_text="Updated at most once per API_TOKEN_LAST_USED_SECONDS.")
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def is_platform(self) -> bool:
        """A platform token: made by a superuser, tied to no tenant, for operators' runbooks and monitoring."""
        return self.tenant_id is None

    @property
    def can_write(self) -> bool:
        return self.scope == Scope.READ_WRITE

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(self.key_hash, token_digest(token))

    def mark_used(self, now=None) -> None:
        """Record a use, at most once per API_TOKEN_LAST_USED_SECONDS: not a write per request."""
        now = now or timezone.now()
        stale = now - timedelta(seconds=settings.API_TOKEN_LAST_USED_SECONDS)
        if self.last_used_at is not None and self.last_used_at > stale:
            return
        # Conditional, so concurrent requests with the same token write once.
        ApiToken.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale), pk=self.pk).update(
            last_used_at=now)
        self.last_used_at = now
