from __future__ import annotations

from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The project package as an app, for checks of settings that belong to no app (config/checks.py)."""

    name = "config"
    verbose_name = "Project settings"

    def ready(self) -> None:
        from config import checks  # noqa: F401 (checks register themselves)
