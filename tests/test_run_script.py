"""The ./run script as a new user meets it: a busy port stops ./run dev with a hint before anything
starts, and ./run manage runs manage.py with ./run dev's settings (the README's examples use it)."""
from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "run"), *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120)


def test_a_busy_port_stops_dev_with_a_hint_before_anything_starts(private_redis):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("dev", env={"PORT": str(port), "REDIS_URL": private_redis.url})
    assert result.returncode != 0
    assert f"port {port} is in use" in result.stderr and f"PORT={port + 1} ./run dev" in result.stderr
    assert "admin:" not in result.stdout + result.stderr and "logins" not in result.stdout


def test_manage_runs_a_management_command_with_the_dev_settings(private_redis):
    result = run("manage", "jobs_kinds", env={"REDIS_URL": private_redis.url, "DEBUG": "", "SECRET_KEY": ""})
    assert result.returncode == 0, result.stderr
    assert "diagnostics.ping" in result.stdout and "email.send" in result.stdout
