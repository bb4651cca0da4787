"""Log lines that name a request's path: gunicorn's access line, and Django's own ("Not Found: ...").

Some paths are secrets: a report's signed download link works without logging in, and a password-reset
link sets the password of the account it names. Whoever reads the logs must not be able to use them, so
those parts of a path are masked wherever a line names it.

gunicorn's access line is a JSON object (config/gunicorn.py, `access_log_format`): the request line,
headers and the rest are put between quotes there, so each is escaped as JSON string content. Then a
quote, a backslash or a line break sent in a request line stays inside its string and cannot end the
object or start a forged line.

Nothing here imports Django: gunicorn's master process loads this module before any application.
"""
from __future__ import annotations

import json
import logging
import re
import sys
from urllib.parse import unquote

from gunicorn.glogging import Logger, SafeAtoms

REDACTED = "[redacted]"

_SEGMENT = r"[^/?#\s]+"
SECRET_PATHS = (
    # reports.urls "signed_download": /reports/download/<token>/
    re.compile(rf"(/reports/download/){_SEGMENT}"),
    # config.urls "password_reset_confirm": /accounts/reset/<uidb64>/<token>/ (not /accounts/reset/done/).
    re.compile(rf"(/accounts/reset/){_SEGMENT}/{_SEGMENT}"),
)


def redact_secret_paths(text: str) -> str:
    """`text` with the secret part of any path in it masked.

    A path may arrive percent-encoded (`/reports/%64ownload/...` reaches the same view), so text that
    only names a secret path once decoded is given decoded, masked.
    """
    masked = _mask(text)
    if "%" in text:
        decoded = unquote(text)
        if _mask(decoded) != decoded:
            return _mask(decoded)
    return masked


def _mask(text: str) -> str:
    for pattern in SECRET_PATHS:
        text = pattern.sub(rf"\1{REDACTED}", text)
    return text


class JsonAtoms(SafeAtoms):
    """gunicorn's atoms as JSON string contents, secret paths masked.

    gunicorn's own SafeAtoms puts a backslash before a quote but leaves backslashes and control
    characters alone: a request line ending in a backslash swallows the closing quote.
    """

    def __init__(self, atoms: dict) -> None:
        dict.__init__(self, atoms)

    def __getitem__(self, key: str) -> object:
        # Only the atoms the format names are escaped: the rest (every environ variable) never shows.
        value = super().__getitem__(key)
        return json.dumps(redact_secret_paths(value))[1:-1] if isinstance(value, str) else value


class AccessLogger(Logger):
    """gunicorn's logger (`logger_class` in config/gunicorn.py) with JSON-safe, redacted access lines.

    With `accesslog = "-"` gunicorn writes access lines to stdout; here they go to stderr, with every
    other log line of the web process.
    """

    atoms_wrapper_class = JsonAtoms

    def setup(self, cfg) -> None:
        super().setup(cfg)
        if cfg.accesslog == "-":
            for handler in self.access_log.handlers:
                if getattr(handler, "_gunicorn", False) and isinstance(handler, logging.StreamHandler):
                    handler.setStream(sys.stderr)


class SecretPathFilter(logging.Filter):
    """For Django's logging (settings.LOGGING): masks secret paths in a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record: the handler reports it when it formats the record
            return True
        redacted = redact_secret_paths(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
