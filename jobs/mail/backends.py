"""An email backend for development: one log line per message (its recipients and subject), never the
body, which may hold links that sign someone in. The admin's Outbound emails page has the rest."""
from __future__ import annotations

import logging

from django.core.mail.backends.base import BaseEmailBackend

logger = logging.getLogger("jobs.mail")


class LogEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        for message in email_messages:
            logger.info("email to %s: %s", ", ".join(message.recipients()), message.subject)
        return len(email_messages)
