"""`manage.py rqscheduler` with the benchmark's job kinds registered (run by the soak as a subprocess)."""
from __future__ import annotations

import os

from common import setup_django

setup_django(os.environ["REDIS_URL"])

from django.core.management import call_command  # noqa: E402

call_command("rqscheduler")
