"""Cron schedules managed in the admin: each firing is one tracked Job, never two (see models.ScheduleRun)."""
