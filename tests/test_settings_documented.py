"""Every setting read from the environment is documented: a row of docs/configuration.md's table and a line
of .env.example (`NAME=...`, or commented out as `# NAME=...`).

What reads the environment, read here as text (parsed, never imported, so the test run's own environment
plays no part):
- config/settings.py: `env.str("NAME", ...)` and every other `env.<cast>("NAME", ...)` (int, bool, float,
  list, json, db, path...), `env("NAME", ...)`, and `env_secret("NAME")`, which also reads `NAME_FILE`;
  `os.environ` and `os.getenv` too, should they appear. A call whose name is not a string literal fails
  the test: it would be a setting nobody can check.
- config/gunicorn.py: `os.environ.get("NAME", ...)` (PORT, BIND, WEB_*...).
- deploy/systemd/*.service: `Environment=NAME=...` (WORKER_QUEUES).

Every name those files read needs a row in the table; every name the two Python files read needs a line
in .env.example too (WORKER_QUEUES belongs in /etc/tracked-jobs/env, which the unit reads, not in .env).
A secret's `NAME_FILE` counts as documented when its `NAME` is; `NAME` itself must be there.

The other way round, the table and .env.example list environment variables only: a name in either that
none of those files reads is stale and fails. There is no exception for Django or library settings: one
that is not read from the environment (RQ_QUEUES, SECURE_REDIRECT_EXEMPT) has no row, and one that is
(SECURE_HSTS_SECONDS) is read by config/settings.py like any other. Each name has one row, and no other
table in README.md or docs/ lists a setting again.
"""
from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION = ROOT / "docs" / "configuration.md"
ENV_EXAMPLE = ROOT / ".env.example"
NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def string_argument(call: ast.Call) -> str | None:
    first = call.args[0] if call.args else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str) and NAME.fullmatch(first.value):
        return first.value
    return None


def is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) \
        and node.value.id == "os"


def environment_reads(path: Path) -> tuple[set[str], set[str], list[str]]:
    """(names read, names read as secrets (`NAME` and `NAME_FILE`), calls whose name could not be read)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    helper_bodies = {id(node) for function in ast.walk(tree) if isinstance(function, ast.FunctionDef)
                     and function.name == "env_secret" for node in ast.walk(function)}
    names: set[str] = set()
    secrets: set[str] = set()
    unreadable: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and is_environ(node.value):
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add(key.value)
            else:
                unreadable.append(f"{path.name}:{node.lineno}")
            continue
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        is_env = (isinstance(func, ast.Name) and func.id == "env") or (
            isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "env")
        is_secret = isinstance(func, ast.Name) and func.id == "env_secret"
        is_os = (isinstance(func, ast.Attribute) and func.attr == "get" and is_environ(func.value)) or (
            isinstance(func, ast.Attribute) and func.attr == "getenv" and isinstance(func.value, ast.Name)
            and func.value.id == "os")
        if not (is_env or is_secret or is_os):
            continue
        name = string_argument(node)
        if name is None:
            if id(node) not in helper_bodies:  # env_secret's own reads of `name` and f"{name}_FILE"
                unreadable.append(f"{path.name}:{node.lineno}")
        elif is_secret:
            secrets.update({name, f"{name}_FILE"})
        else:
            names.add(name)
    return names, secrets, unreadable


def systemd_environment() -> set[str]:
    names = set()
    for unit in (ROOT / "deploy" / "systemd").glob("*.service"):
        names.update(re.findall(r"^Environment=\"?([A-Z][A-Z0-9_]*)=", unit.read_text(), re.MULTILINE))
    return names


def settings_reads() -> tuple[set[str], set[str]]:
    """(names config/settings.py reads, of which secrets), after checking every read names its variable."""
    names, secrets, unreadable = environment_reads(ROOT / "config" / "settings.py")
    assert not unreadable, f"environment reads whose name is not a string literal: {unreadable}"
    return names, secrets


def all_reads() -> set[str]:
    settings_names, secrets = settings_reads()
    gunicorn_names, gunicorn_secrets, unreadable = environment_reads(ROOT / "config" / "gunicorn.py")
    assert not unreadable, f"environment reads whose name is not a string literal: {unreadable}"
    return settings_names | secrets | gunicorn_names | gunicorn_secrets | systemd_environment()


def table_rows(text: str) -> list[list[str]]:
    """Every table's body rows in a Markdown text, as lists of cells; each table's header is left out."""
    rows: list[list[str]] = []
    previous_was_row = False
    for line in text.splitlines():
        is_row = line.lstrip().startswith("|")
        if is_row and previous_was_row and not re.fullmatch(r"\s*\|[\s|:-]+\|\s*", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        previous_was_row = is_row
    return rows


def first_column_names(text: str) -> list[str]:
    return [name for row in table_rows(text) for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row[0])]


def configuration_names() -> list[str]:
    return first_column_names(CONFIGURATION.read_text())


def env_example_names() -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))


def documented(name: str, secrets: set[str], listed: set[str]) -> bool:
    """`NAME_FILE` of a secret is documented with its `NAME`; `NAME` itself must be listed."""
    return name in listed or (name in secrets and name.endswith("_FILE") and name.removesuffix("_FILE") in listed)


def test_it_finds_the_settings_it_checks():
    names, secrets = settings_reads()
    # Each form of read the settings use, so a parser that stopped seeing one fails here, not silently.
    assert {"DEBUG", "ALLOWED_HOSTS", "DATABASE_URL", "REPORTS_ROOT", "REPORTS_STORAGE_OPTIONS",
            "JOBS_TICK_SECONDS", "DB_CONN_MAX_AGE", "REDIS_URL"} <= names
    assert {"SECRET_KEY", "SECRET_KEY_FILE", "RQ_API_TOKEN", "METRICS_TOKEN_FILE"} <= secrets
    assert len(names) > 100
    assert "WORKER_QUEUES" in systemd_environment()


def test_it_documents_every_setting_in_the_configuration_table():
    names, secrets = settings_reads()
    gunicorn_names, _, _ = environment_reads(ROOT / "config" / "gunicorn.py")
    listed = set(configuration_names())
    missing = sorted(name for name in names | secrets | gunicorn_names | systemd_environment()
                     if not documented(name, secrets, listed))
    assert not missing, f"read from the environment, missing from docs/configuration.md's table: {missing}"


def test_it_lists_every_setting_in_env_example():
    names, secrets = settings_reads()
    gunicorn_names, _, _ = environment_reads(ROOT / "config" / "gunicorn.py")
    listed = env_example_names()
    missing = sorted(name for name in names | secrets | gunicorn_names if not documented(name, secrets, listed))
    assert not missing, f"read from the environment, missing from .env.example: {missing}"


def test_it_documents_no_stale_setting():
    read = all_reads()
    stale_in_table = sorted(set(configuration_names()) - read)
    stale_in_example = sorted(env_example_names() - read)
    assert not stale_in_table, f"in docs/configuration.md's table but read by nothing: {stale_in_table}"
    assert not stale_in_example, f"in .env.example but read by nothing: {stale_in_example}"


def test_it_documents_each_setting_in_one_row_of_one_table():
    text = CONFIGURATION.read_text()
    tables = re.findall(r"^\|.*\n\|[\s|:-]+\|$", text, re.MULTILINE)
    assert len(tables) == 1, "docs/configuration.md has one table of settings"
    repeated = sorted(name for name, count in Counter(configuration_names()).items() if count > 1)
    assert not repeated, f"in more than one row of docs/configuration.md: {repeated}"
    read = all_reads()
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    elsewhere = {str(page.relative_to(ROOT)): names for page in pages if page != CONFIGURATION
                 if (names := sorted(set(first_column_names(page.read_text())) & read))}
    assert not elsewhere, f"settings in another table than docs/configuration.md's: {elsewhere}"
