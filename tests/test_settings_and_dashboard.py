from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import ROOT


def run_check(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "ALLOWED_HOSTS")}
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = run_check(DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_it_refuses_a_wildcard_allowed_hosts_when_debug_is_off():
    result = run_check(DEBUG="false", SECRET_KEY="x" * 50, ALLOWED_HOSTS="*")
    assert result.returncode != 0 and "ALLOWED_HOSTS" in result.stderr


def test_debug_runs_fall_back_to_a_development_key():
    assert run_check(DEBUG="true").returncode == 0


def test_every_queue_uses_the_json_serializer(settings):
    assert set(settings.RQ_QUEUES) == {"critical", "high", "default", "low"}
    assert {q["SERIALIZER"] for q in settings.RQ_QUEUES.values()} == {"rq.serializers.JSONSerializer"}


@pytest.mark.django_db
def test_the_rq_dashboard_is_for_superusers_only(client, alice, root):
    client.force_login(alice)
    assert client.get("/admin/rq/").status_code == 403
    client.force_login(root)
    assert client.get("/admin/rq/").status_code == 200


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get("/admin/rq/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_redis_urls_get_timeouts_unless_they_set_their_own():
    from config.settings import with_redis_timeouts

    url = with_redis_timeouts("redis://h:6379/2?socket_timeout=9")
    assert url.startswith("redis://h:6379/2?")
    assert "socket_timeout=9" in url and "socket_connect_timeout=2" in url


@pytest.mark.django_db
def test_it_serves_rq_stats_json_for_a_bearer_token_but_never_a_token_in_the_url(client, settings, alice):
    settings.RQ_API_TOKEN = "s3cret-token-value"
    assert client.get("/admin/rq/stats.json").status_code == 401
    assert client.get("/admin/rq/stats.json", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/admin/rq/stats.json", HTTP_AUTHORIZATION="Bearer s3cret-token-value")
    assert response.status_code == 200 and "queues" in response.json()
    in_url = client.get("/admin/rq/stats.json/s3cret-token-value/")
    assert in_url.status_code in (302, 404) and b"queues" not in in_url.content
    client.force_login(alice)  # staff, not superuser: django-rq alone would let her in
    assert client.get("/admin/rq/stats.json").status_code == 403
