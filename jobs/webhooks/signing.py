"""Standard Webhooks signatures: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
from __future__ import annotations

import base64
import hashlib
import hmac

from jobs.webhooks.models import SECRET_PREFIX


def signing_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(*, secret: str, message_id: str, timestamp: int, body: str) -> str:
    digest = hmac.new(signing_key(secret), f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(*, secrets: list[str], message_id: str, timestamp: int, body: str) -> str:
    """One signature per valid secret, space-separated: receivers on the old secret keep verifying
    during a rotation's grace period."""
    return " ".join(sign(secret=secret, message_id=message_id, timestamp=timestamp, body=body) for secret in secrets)
