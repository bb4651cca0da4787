from __future__ import annotations

from django.apps import AppConfig


class LoginsConfig(AppConfig):
    name = "tenants.logins"
    label = "logins"
    verbose_name = "Logins"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from tenants.logins import checks, receivers  # noqa: F401 (checks register themselves)

        user_login_failed.connect(receivers.count_failed_login, dispatch_uid="logins.count_failed_login")
        user_logged_in.connect(receivers.forgive_account, dispatch_uid="logins.forgive_account")
