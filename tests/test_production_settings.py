"""Production settings as docs/deploy.md documents them: `check --deploy` passes, HTTPS behind a proxy."""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT


def documented_production_env() -> dict[str, str]:
    """The example environment under docs/deploy.md's "Settings a production deploy sets"."""
    section = (ROOT / "docs" / "deploy.md").read_text().split("## Settings a production deploy sets", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL).group(1)
    pairs = (line.split("=", 1) for line in block.splitlines() if line.strip() and not line.startswith("#"))
    return {name: value for name, value in pairs}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """manage.py with only `env` (and PATH): nothing of the test run's own environment leaks in."""
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "config.settings", **env}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def with_secret_files(env: dict[str, str], folder: Path, **secret_values: str) -> dict[str, str]:
    """`env` with every `*_FILE` path replaced by a file in `folder` holding a long random secret (or
    the value given for that variable)."""
    env = dict(env)
    for name in [name for name in env if name.endswith("_FILE")]:
        path = folder / name.lower()
        path.write_text(secret_values.get(name.removesuffix("_FILE"), secrets.token_urlsafe(50)) + "\n")
        env[name] = str(path)
    return env


def test_it_passes_check_deploy_with_the_documented_production_environment(tmp_path):
    env = documented_production_env()
    assert env["DEBUG"] == "false" and "RQ_API_TOKEN_FILE" in env

    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=with_secret_files(env, tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def setting_values(env: dict[str, str], *names: str) -> dict[str, str]:
    """The repr of each named setting, as a process started with `env` sees it."""
    script = "from django.conf import settings; " + "; ".join(f"print(repr(settings.{name}))" for name in names)
    result = run_manage("shell", "-v", "0", "-c", script, env=env)
    assert result.returncode == 0, result.stderr
    return dict(zip(names, result.stdout.splitlines(), strict=True))


def test_it_warns_when_production_turns_the_redirect_and_hsts_off():
    env = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "jobs.example.com",
           "SECURE_SSL_REDIRECT": "false", "SECURE_HSTS_SECONDS": "0"}
    output = run_manage("check", "--deploy", env=env).stderr
    assert "security.W008" in output and "security.W004" in output


def test_it_reports_a_short_rq_api_token(tmp_path):
    env = with_secret_files(documented_production_env(), tmp_path, RQ_API_TOKEN="short-token")

    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode != 0
    assert "ops.W001" in result.stderr and "RQ_API_TOKEN is shorter than 32 characters" in result.stderr


def test_it_reads_rq_api_token_from_its_file(tmp_path):
    token = secrets.token_urlsafe(32)
    env = with_secret_files(documented_production_env(), tmp_path, RQ_API_TOKEN=token)
    assert setting_values(env, "RQ_API_TOKEN") == {"RQ_API_TOKEN": repr(token)}


def test_it_turns_on_the_https_redirect_hsts_and_secure_cookies_in_production(tmp_path):
    env = with_secret_files(documented_production_env(), tmp_path)

    values = setting_values(env, "SECURE_SSL_REDIRECT", "SECURE_REDIRECT_EXEMPT", "SECURE_HSTS_SECONDS",
                            "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER",
                            "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE")

    assert values == {
        "SECURE_SSL_REDIRECT": "True", "SECURE_REDIRECT_EXEMPT": "['^healthz$', '^readyz$']",
        "SECURE_HSTS_SECONDS": "31536000", "SECURE_HSTS_INCLUDE_SUBDOMAINS": "True", "SECURE_HSTS_PRELOAD": "True",
        # gunicorn decides what came over HTTPS (FORWARDED_ALLOW_IPS), unless this is set.
        "SECURE_PROXY_SSL_HEADER": "None", "SESSION_COOKIE_SECURE": "True", "CSRF_COOKIE_SECURE": "True",
    }


def test_it_leaves_subdomains_and_preload_to_the_deployment():
    env = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50)}
    assert setting_values(env, "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SECURE_SSL_REDIRECT") == {
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "False", "SECURE_HSTS_PRELOAD": "False", "SECURE_SSL_REDIRECT": "True"}


def test_it_reads_the_proxy_ssl_header_by_its_name():
    env = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"}
    assert setting_values(env, "SECURE_PROXY_SSL_HEADER") == {
        "SECURE_PROXY_SSL_HEADER": "('HTTP_X_FORWARDED_PROTO', 'https')"}


@pytest.mark.django_db
def test_it_redirects_pages_to_https_but_answers_probes_over_plain_http(client, settings):
    settings.SECURE_SSL_REDIRECT = True  # the test settings turn it off for the test client

    assert client.get("/admin/login/").status_code == 301
    assert client.get("/admin/login/")["Location"] == "https://testserver/admin/login/"
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)
    secure = client.get("/admin/login/", secure=True)
    assert secure.status_code == 200 and secure["Strict-Transport-Security"].startswith("max-age=31536000")
