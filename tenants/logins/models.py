from __future__ import annotations

from django.db import models
from django.utils import timezone


class LoginFailure(models.Model):
    """One failed login: the account name tried and the client address it came from.

    Rows older than the window count for nothing; recording a failure deletes them.
    """

    # The name as typed, casefolded; None once the account has logged in since (the failure still
    # counts against its address).
    username = models.CharField(max_length=150, null=True)
    # An IPv4 address, or the /64 network of an IPv6 one (one subscriber's share).
    address = models.CharField(max_length=64)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["username", "at"], name="login_failure_by_account"),
            models.Index(fields=["address", "at"], name="login_failure_by_address"),
            models.Index(fields=["at"], name="login_failure_by_time"),
        ]

    def __str__(self) -> str:
        return f"{self.username} from {self.address} at {self.at:%Y-%m-%d %H:%M:%S}"
