"""A worker says at start when PostgreSQL will never vacuum the job tables (each attempt updates its job
row twice; unvacuumed, the dead rows slow every claim, refill and admin list down by the day)."""
from __future__ import annotations

import logging

import pytest
from django.db import connection

from jobs import postgres, workers

pytestmark = pytest.mark.django_db


def server_autovacuum_on() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        autovacuum = cursor.fetchone()[0] == "on"
        cursor.execute("SHOW track_counts")
        return autovacuum and cursor.fetchone()[0] == "on"


def test_a_job_table_with_autovacuum_disabled_is_named_at_worker_start(caplog):
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE jobs_attempt SET (autovacuum_enabled = false)")
    assert postgres.autovacuum_state() == (server_autovacuum_on(), ["jobs_attempt"])
    with caplog.at_level(logging.WARNING, logger="jobs.workers"):
        workers._warn_without_autovacuum()
    assert "Autovacuum is disabled on jobs_attempt" in caplog.text


def test_the_server_setting_is_reported_as_the_server_has_it(caplog):
    assert postgres.autovacuum_state() == (server_autovacuum_on(), [])
    with caplog.at_level(logging.WARNING, logger="jobs.workers"):
        workers._warn_without_autovacuum()
    assert ("PostgreSQL's autovacuum is off" in caplog.text) == (not server_autovacuum_on())
    assert "disabled on" not in caplog.text
